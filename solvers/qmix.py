"""qmix: QMIX-DA, the paper's first learned baseline (section V-B; docs/maasn.md section 9).

The same rollout as ``maasn`` (one step per requested PB, the coverage guard, the shared planner
and oracle for delivery), driven by a trained QMIX-DA policy: per-agent recurrent Q-networks
whose greedy factored actions decide caching and migration. ``policy``: a QMIX-DA policy file
written by ``fgamcd-train --algo qmix`` (default: the shipped paper-default one).
"""

from __future__ import annotations

from .maasn import MaasnSolver


class QmixSolver(MaasnSolver):
    name = "qmix"
    description = ("QMIX-DA (the paper's learned baseline): per-agent recurrent Q-networks "
                   "decide caching and migration per PB; delivery by the shared planner")
    params = MaasnSolver.params
    default_policies = ("qmix-paper-default",)
    algo = "qmix"


__solvers__ = [QmixSolver]
