"""The shared robust CoMP beamforming oracle: one interface, several methods."""

from .core import (
    METHOD_OPTIONS,
    METHODS,
    BeamformingOracle,
    BeamResult,
    OracleOptionError,
    OracleStatus,
    check_options,
    default_oracle,
    normalised_problem,
)
from .problem import BeamProblem

__all__ = ["METHODS", "METHOD_OPTIONS", "BeamProblem", "BeamResult", "BeamformingOracle",
           "OracleOptionError", "OracleStatus", "check_options", "default_oracle",
           "normalised_problem"]
