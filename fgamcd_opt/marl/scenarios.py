"""Distributions of training scenarios (docs/maasn.md section 8): a *mix* is a list of
components, each a generator scenario with a weight and ranges for some of its parameters;
training instance ``seed`` draws one component and its parameters from ``seed`` alone, so a
pool of instances is reproducible and the same seed always gives the same instance.

A range is ``[lo, hi]`` (an int range when both are ints, a float range otherwise),
``{"log": [lo, hi]}`` (log-uniform) or ``{"choice": [...]}``. The generalist policy's
distribution (``GENERALIST``) spans N 3-12, U 10-60, C_n 0.25-2 GB (log-uniform), M 20-70,
Zipf 0.5-2, reuse 0-35% on paper-default, plus the two calibrated LLM scenarios of section
V-E (N 3-12, U 10-60); every component keeps the paper-default calibration (grid nodes, QoS
1-2 Gbps) so that QoS is reachable.
"""

from __future__ import annotations

import math

import numpy as np

GENERALIST: tuple[dict, ...] = (
    {"scenario": "paper-default", "weight": 0.8,
     "params": {"n_nodes": [3, 12], "n_users": [10, 60], "storage_gb": {"log": [0.25, 2.0]},
                "antennas": [20, 70], "zipf": [0.5, 2.0], "reuse_ratio": [0.0, 0.35]}},
    {"scenario": "llm-7b-calibrated", "weight": 0.1,
     "params": {"n_nodes": [3, 12], "n_users": [10, 60]}},
    {"scenario": "llm-13b-calibrated", "weight": 0.1,
     "params": {"n_nodes": [3, 12], "n_users": [10, 60]}},
)


def _draw_value(spec, rng: np.random.Generator):
    if isinstance(spec, dict) and "choice" in spec:
        choices = list(spec["choice"])
        return choices[int(rng.integers(len(choices)))]
    if isinstance(spec, dict) and "log" in spec:
        lo, hi = (float(x) for x in spec["log"])
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    lo, hi = spec
    if isinstance(lo, int) and isinstance(hi, int):
        return int(rng.integers(lo, hi + 1))
    return float(rng.uniform(float(lo), float(hi)))


def draw(mix, seed: int) -> tuple[str, dict]:
    """(scenario, overrides) of training instance ``seed`` (reproducible from the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 17]))
    w = np.array([float(c.get("weight", 1.0)) for c in mix])
    comp = mix[int(rng.choice(len(mix), p=w / w.sum()))]
    over = {k: _draw_value(v, rng) for k, v in sorted(comp.get("params", {}).items())}
    return comp["scenario"], over


def validate(mix) -> None:
    """A mix that cannot be drawn or whose parameters a scenario does not declare fails here,
    in one line (ParameterError)."""
    from ..errors import ParameterError
    from ..generators import SCENARIOS, scenario_params_declared

    if not mix:
        raise ParameterError("scenario mix: empty")
    names = {p.name for p in scenario_params_declared()}
    rng = np.random.default_rng(0)
    for i, comp in enumerate(mix):
        if not isinstance(comp, dict) or "scenario" not in comp:
            raise ParameterError(f"scenario mix [{i}]: needs a 'scenario'")
        if comp["scenario"] not in SCENARIOS:
            raise ParameterError(f"scenario mix [{i}]: unknown scenario {comp['scenario']!r}")
        for k, v in comp.get("params", {}).items():
            if k not in names:
                raise ParameterError(f"scenario mix [{i}].params.{k}: not a scenario parameter")
            try:
                _draw_value(v, rng)
            except (TypeError, ValueError) as exc:
                raise ParameterError(f"scenario mix [{i}].params.{k}: {v!r} is not a range "
                                     f"[lo, hi], {{'log': [lo, hi]}} or {{'choice': [...]}} "
                                     f"({exc})") from None
