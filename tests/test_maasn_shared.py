"""The shared MAASN-DA architecture (docs/maasn.md section 8): one set of parameters for any N
and any users per node, permutation-invariant over users, equivariant over nodes, a monotonic
mixer for any number of agents; trained on a scenario mix and used by the maasn solver."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from marl_helpers import one_torch_thread  # noqa: E402,F401 (autouse fixture)

from fgamcd_opt.errors import ParameterError  # noqa: E402
from fgamcd_opt.generators import generate  # noqa: E402
from fgamcd_opt.marl.env import EnvConfig, FgamcdParallelEnv  # noqa: E402
from fgamcd_opt.marl.graph import GraphLayout  # noqa: E402
from fgamcd_opt.marl.learner import LearnerConfig, MaasnLearner  # noqa: E402
from fgamcd_opt.marl.networks import SharedActor, SharedCritics, SharedMixer  # noqa: E402
from fgamcd_opt.marl.training import TrainConfig, Trainer  # noqa: E402
from fgamcd_opt.oracle import BeamformingOracle  # noqa: E402

ORACLE = BeamformingOracle()
LAYOUT = GraphLayout(6, 14)
SMALL = dict(actor_hidden=(32, 16), critic_hidden=(32, 32), mixer_embed=8, mixer_hyper=16,
             architecture="shared")




def _graph(rng, n, u, perm_nodes=None, perm_users=None):
    node = rng.random((n, 2))
    bh = rng.random((n, n))
    np.fill_diagonal(bh, 0.0)
    vis = rng.random((n, n)) < 0.7
    np.fill_diagonal(vis, True)
    req = (rng.random(u) < 0.5).astype(float)
    unode = rng.integers(0, n, u)
    if perm_nodes is not None:  # node i becomes node p[i]
        p = perm_nodes
        inv = np.argsort(p)
        node, bh, vis = node[inv], bh[np.ix_(inv, inv)], vis[np.ix_(inv, inv)]
        unode = p[unode]
    if perm_users is not None:
        req, unode = req[perm_users], unode[perm_users]
    return LAYOUT.pack(node, 0.3, bh, vis, req, unode)


def _matrix(logits, n):
    """Action layout (n_max, n_max) -> matrix layout (n, n), diag a~, off-diagonal b~."""
    out = np.zeros((n, n))
    for i in range(n):
        out[i, i] = logits[i, 0]
        for j, m in enumerate(m for m in range(LAYOUT.n_max) if m != i):
            if m < n:
                out[i, m] = logits[i, 1 + j]
    return out


def test_pack_unpack_round_trip():
    rng = np.random.default_rng(0)
    x = _graph(rng, 4, 9)
    g = LAYOUT.unpack(torch.as_tensor(x)[None])
    assert g["agents"][0].tolist() == [1, 1, 1, 1, 0, 0]
    assert (g["unode"][0, 9:] == -1).all() and (g["unode"][0, :9] >= 0).all()
    with pytest.raises(ParameterError, match="N=7"):
        LAYOUT.pack(np.zeros((7, 2)), 0.1, np.zeros((7, 7)), np.eye(7), np.zeros(3),
                    np.zeros(3))


def test_actor_is_invariant_to_user_order_and_equivariant_to_node_labels():
    torch.manual_seed(0)
    actor = SharedActor(LAYOUT, (32, 16))
    n, u = 5, 11
    base = _graph(np.random.default_rng(1), n, u)
    users = _graph(np.random.default_rng(1), n, u, perm_users=np.random.default_rng(2)
                   .permutation(u))
    p = np.array([3, 0, 4, 1, 2])
    nodes = _graph(np.random.default_rng(1), n, u, perm_nodes=p)
    with torch.no_grad():
        out = [actor(torch.as_tensor(x)[None, None])[0].numpy() for x in (base, users, nodes)]
    assert np.allclose(out[0], out[1], atol=1e-5)
    m0, m2 = _matrix(out[0], n), _matrix(out[2], n)
    assert np.allclose(m2[np.ix_(p, p)], m0, atol=1e-5)


def test_same_parameters_for_any_n_and_a_monotonic_mixer():
    torch.manual_seed(0)
    actor, critics = SharedActor(LAYOUT, (32, 16)), SharedCritics(LAYOUT, (32, 32))
    mixer = SharedMixer(LAYOUT, 8, 16)
    rng = np.random.default_rng(3)
    for n, u in ((2, 3), (3, 14), (6, 7)):
        x = torch.as_tensor(np.stack([_graph(rng, n, u) for _ in range(4)]))[:, None]
        logits = actor(x)
        assert logits.shape == (4, 6, 6) and torch.isfinite(logits).all()
        act = (torch.rand(4, 6, 6) > 0.5).float()
        q = critics(x, act).detach().requires_grad_(True)
        mixer(q, x.reshape(4, -1)).sum().backward()
        assert (q.grad >= 0).all()
        assert (q.grad[:, n:] == 0).all()  # padded agents do not count


def test_learner_updates_with_padded_agents():
    rng = np.random.default_rng(4)
    b = 8
    obs = np.stack([_graph(rng, 3, 5) for _ in range(b)])[:, None]
    mask = np.zeros((b, 6, 6), bool)
    mask[:, :3, :3] = True
    batch = {"obs": obs, "next_obs": obs, "mask": mask, "next_mask": mask,
             "act": mask & (rng.random((b, 6, 6)) > 0.5), "reward": -np.ones(b, np.float32),
             "done": np.zeros(b, bool)}
    lr = MaasnLearner(LearnerConfig(**SMALL), 6, 0, layout=LAYOUT)
    first = lr.update(batch)["critic_loss"]
    for _ in range(60):
        last = lr.update(batch, train_actor=False)["critic_loss"]
    assert np.isfinite(first) and last < first


def test_mix_training_and_a_policy_for_every_n(tmp_path):
    from fgamcd_solvers.maasn import MaasnSolver

    from fgamcd_opt.runner import run_solver

    mix = ({"scenario": "tiny", "params": {"n_nodes": [2, 4], "n_users": [3, 9]}},)
    env = EnvConfig(obs_format="graph", mix=mix, pool=3, graph_n_max=4, graph_u_max=12,
                    guard=True)
    cfg = TrainConfig(episodes=2, batch=16, buffer=500, updates_per_episode=2,
                      augmentation=False, eval_every=0, checkpoint_every=1)
    tr = Trainer(env, LearnerConfig(**SMALL), cfg, tmp_path, oracle=ORACLE)
    result = tr.train(progress=False)
    assert {r["instance"] for r in result.rows} and len(tr._envs) >= 1
    policy = str(result.policy_path)
    for n, u in ((2, 5), (3, 9), (4, 12)):
        inst = generate("tiny", seed=n, n_nodes=n, n_users=u)
        run = run_solver(inst, MaasnSolver, {"policy": policy, "workers": 1})
        assert run.record.solver_status == "feasible", run.record.message
        assert run.record.undelivered_users == 0  # the guard covers every PB
    big = generate("tiny", seed=0, n_nodes=5, n_users=6)
    run = run_solver(big, MaasnSolver, {"policy": policy, "workers": 1})
    assert run.plan is None and "N=4" in run.record.message and "\n" not in run.record.message
    # an environment in the graph format never refuses an instance for its cell sizes
    crowded = generate("tiny", seed=1, n_nodes=2, n_users=12)
    FgamcdParallelEnv(EnvConfig(instance=crowded, obs_format="graph", graph_n_max=4,
                                graph_u_max=12), oracle=ORACLE).reset(seed=0)
    # without a policy the solver takes the first shipped default that serves the instance:
    # the generalist (here the tiny policy above, N <= 4) where it fits, else the N = 6 one
    import shutil

    import fgamcd_opt.marl.policy as policy_mod

    real = policy_mod.shipped_policy_path
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for suffix in (".pt", ".json"):
        shutil.copy(real("paper-default").with_suffix(suffix),
                    shipped / f"paper-default{suffix}")
        shutil.copy(result.policy_path.with_suffix(suffix), shipped / f"generalist{suffix}")
    try:
        policy_mod.shipped_policy_path = lambda name="paper-default": shipped / f"{name}.pt"
        small = generate("tiny", seed=3, n_nodes=3, n_users=9)
        run = run_solver(small, MaasnSolver, {"workers": 1})
        assert run.record.solver_status == "feasible", run.record.message
        assert run.plan.metadata["policy"].endswith("generalist.pt")
        named = run_solver(small, MaasnSolver, {"workers": 1, "policy": "generalist"})
        assert named.record.total_delay_s == run.record.total_delay_s
        pd = generate("paper-default", seed=0)
        run = run_solver(pd, MaasnSolver, {"workers": 1})
        assert run.plan.metadata["policy"].endswith("paper-default.pt")
        # none serves: the first default's refusal, in one line
        huge = generate("tiny", seed=0, n_nodes=5, n_users=6)
        run = run_solver(huge, MaasnSolver, {"workers": 1})
        assert run.plan is None and "generalist" in run.record.message
    finally:
        policy_mod.shipped_policy_path = real
