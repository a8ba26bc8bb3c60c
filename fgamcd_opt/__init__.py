"""fgamcd-opt: fine-grained AI model caching and downloading in multi-cell edge networks.

Data flows one way: instance -> solver -> plan -> oracle (beams) + evaluator (delay,
violations) -> run records -> reports. The front door::

    from fgamcd_opt import generate, load_instance, get_solver, run_solver, evaluate

    inst = load_instance("instances/paper-default.json")     # or generate("paper-default", seed=3)
    run = run_solver(inst, get_solver("trimcaching"), seed=0)
    print(run.record.total_delay_s, run.record.verdict)
    ev = evaluate(inst, run.plan)                              # score any plan

Writing a solver: a class with ``name``, ``description``, ``params`` (``Param``) and
``solve(instance, ctx: SolveContext, params) -> SolveResult``; check it with
``check_solver(MySolver)``. The model these names implement is documented in docs/model.md.
Names are imported on first use, so ``import fgamcd_opt`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Instance": "instance",
    "load_instance": "instance_io",
    "save_instance": "instance_io",
    "generate": "generators",
    "Plan": "plan",
    "DeliveryUnit": "plan",
    "Migration": "plan",
    "load_plan": "plan_io",
    "evaluate": "evaluator",
    "score_block": "evaluator",
    "Evaluation": "evaluator",
    "BeamformingOracle": "oracle",
    "get_solver": "registry",
    "run_solver": "runner",
    "RunRecord": "runner",
    "Solver": "solver",
    "SolveContext": "solver",
    "SolveResult": "solver",
    "SolveStatus": "solver",
    "Param": "params",
    "check_solver": "testing",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fgamcd_opt' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
