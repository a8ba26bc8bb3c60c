"""QMIX-DA (docs/maasn.md section 9): the factored greedy action is the exact argmax, training
runs and resumes like MAASN-DA's, the policy file drives the qmix solver, and the two solvers
refuse each other's policies."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchrl")

from marl_helpers import one_torch_thread, resumed_rows  # noqa: E402,F401

from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.marl.env import EnvConfig  # noqa: E402
from fgamcd_opt.marl.learner import LearnerConfig  # noqa: E402
from fgamcd_opt.marl.qmix import chosen_value, greedy  # noqa: E402
from fgamcd_opt.marl.training import TrainConfig, Trainer  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402

ORACLE = BeamformingOracle()
QCFG = dict(algo="qmix", rnn_hidden=16, mixer_embed=8)




def test_factored_greedy_is_the_argmax_over_every_joint_action():
    torch.manual_seed(0)
    n = 4
    qa, qb = torch.randn(5, n, 2), torch.randn(5, n, n - 1, 2)
    mask = torch.ones(5, n, n)
    mask[0, 2] = 0  # node 2 cannot store the PB
    act, value = greedy(qa, qb, mask)
    for b in range(5):
        for i in range(n):
            best = -np.inf
            for bits in itertools.product((0, 1), repeat=n):
                d = torch.tensor(bits, dtype=torch.float32)
                if (d * (1 - mask[b, i])).any() or (d[1:].sum() and not d[0]):
                    continue  # masked, or a migration without the copy (eq. 2)
                v = float(chosen_value(qa[b:b + 1, i:i + 1], qb[b:b + 1, i:i + 1],
                                       d.view(1, 1, n)))
                best = max(best, v)
            assert float(value[b, i]) == pytest.approx(best, abs=1e-5)
            assert float(chosen_value(qa[b:b + 1, i:i + 1], qb[b:b + 1, i:i + 1],
                                      act[b:b + 1, i:i + 1])) == pytest.approx(best, abs=1e-5)


def _trainer(tmp=None, episodes=3):
    env = EnvConfig(scenario="tiny", pool=2, max_users_per_node=6, guard=True)
    cfg = TrainConfig(episodes=episodes, batch=32, buffer=2000, updates_per_episode=3,
                      reservoir=32, checkpoint_every=2, eval_every=2, n_step=2)
    return Trainer(env, LearnerConfig(**QCFG), cfg, tmp, oracle=ORACLE)


def test_qmix_trains_resumes_and_drives_its_solver(tmp_path):
    from fgamcd_solvers.maasn import MaasnSolver
    from fgamcd_solvers.qmix import QmixSolver

    from fgamcd_opt.runner import run_solver

    def strip(rows):  # timings differ; NaN (qmix has no actor loss) never equals itself;
        # the ESN's fit error may differ in its last digit (BLAS summation order)
        return [{k: ((None if math.isnan(v) else round(v, 9)) if isinstance(v, float) else v)
                 for k, v in r.items() if not k.endswith("_s")} for r in rows]
    full = _trainer(episodes=4).train(progress=False).rows
    rows = resumed_rows(_trainer, tmp_path)
    assert strip(rows) == strip(full)
    assert any(r["synthetic_kept"] > 0 for r in rows)
    policy = str(tmp_path / "policy.pt")
    inst = generate("tiny", seed=1, storage_gb=0.04)
    run = run_solver(inst, QmixSolver, {"policy": policy, "workers": 1})
    assert run.record.verdict == "feasible" and run.record.undelivered_users == 0
    again = run_solver(inst, QmixSolver, {"policy": policy, "workers": 1})
    assert again.record.total_delay_s == run.record.total_delay_s  # the state restarts
    wrong = run_solver(inst, MaasnSolver, {"policy": policy, "workers": 1})
    assert wrong.plan is None and "--solver qmix" in wrong.record.message
    from fgamcd_opt.testing import assert_conforms

    assert_conforms(QmixSolver, instances=[generate("tiny", seed=0, n_users=6)],
                    params={"policy": policy, "workers": 1})
