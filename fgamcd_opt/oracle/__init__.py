"""The shared robust CoMP beamforming oracle: one interface, several methods."""

from .core import (
    METHODS,
    BeamformingOracle,
    BeamResult,
    OracleStatus,
    default_oracle,
    normalised_problem,
)
from .problem import BeamProblem

__all__ = ["METHODS", "BeamProblem", "BeamResult", "BeamformingOracle", "OracleStatus",
           "default_oracle", "normalised_problem"]
