"""QMIX-DA, the paper's first learned baseline (section V-B, Fig. 7): QMIX (Rashid et al. 2018)
with the same ESN data augmentation, on the same environment, replay, training loop, policy
files and solver path as MAASN-DA (docs/maasn.md section 9).

- **Agents**: per-agent recurrent Q-networks (DRQN; separate parameters per agent, stored
  stacked as the MAASN-DA networks are): o_n -> 64 (ReLU) -> GRU cell (64) -> Q-values. The
  GRU's state runs over the steps (PBs) of an episode.
- **Actions, factored per bit** (documented choice: a joint head over the 2^N actions of eq. 11
  would have 64 outputs at N = 6 and 4,096 at N = 12): Q_n(d_n) = Q^a_n(a_n) + a_n sum_m
  Q^b_{n,m}(b_{n,m}), so the greedy action is exact in O(N): b_{n,m} = argmax Q^b_{n,m},
  a_n = 1 iff Q^a_n(1) + sum_m max Q^b_{n,m} > Q^a_n(0) (and a_n = 0 where PB k does not fit;
  b needs a, eq. 2).
- **Exploration**: epsilon-greedy per agent (a uniformly random cache bit and migration bits),
  epsilon on the trainer's exploration schedule (``explore_noise``: 1 -> 0.1 by default).
- **Mixing**: TorchRL's ``QMixer`` (torchrl.modules; the monotonic hypernetwork mixer of the
  QMIX paper, state = the concatenated observations), so this file does not write it again.
- **Targets**: double Q-learning (online greedy action, target network's value), soft target
  updates, Huber loss, value clip (learner.py), n-step returns from the trainer.
- **Recurrent states in the replay**: each transition stores the GRU state before its step and
  before the bootstrap step (the "stored state" strategy of R2D2, Kapturowski et al. 2019,
  without burn-in); updates unroll one step from them.

Demonstrations (``--teacher``) are not supported: the paper trains QMIX-DA from scratch.
"""

from __future__ import annotations

import torch
from torch import nn

from .learner import LearnerConfig, _soft_update
from .networks import AgentLinear


class AgentGRU(nn.Module):
    """N independent GRU cells applied at once (the per-agent recurrent layer)."""

    def __init__(self, n_agents: int, d_in: int, hidden: int):
        super().__init__()
        self.x = AgentLinear(n_agents, d_in, 3 * hidden)
        self.h = AgentLinear(n_agents, hidden, 3 * hidden)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gx, gh = self.x(x), self.h(h)
        xr, xz, xn = gx.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


class DrqnAgents(nn.Module):
    """Per-agent DRQN: obs (B, N, D), h (B, N, H) -> (Q^a (B, N, 2), Q^b (B, N, N-1, 2), h')."""

    def __init__(self, n_agents: int, obs_dim: int, hidden: int = 64):
        super().__init__()
        self.n = n_agents
        self.inp = AgentLinear(n_agents, obs_dim, hidden)
        self.gru = AgentGRU(n_agents, hidden, hidden)
        self.head = AgentLinear(n_agents, hidden, 2 * n_agents)
        self.hidden = hidden

    def forward(self, obs: torch.Tensor, h: torch.Tensor):
        h2 = self.gru(torch.relu(self.inp(obs)), h)
        q = self.head(h2).reshape(*obs.shape[:2], self.n, 2)
        return q[:, :, 0], q[:, :, 1:], h2


def greedy(qa: torch.Tensor, qb: torch.Tensor, mask: torch.Tensor):
    """Greedy binary actions (B, N, N) in the action layout and their values (B, N)."""
    fits = mask[..., 0] > 0
    best_b = qb.max(dim=-1)
    with_copy = qa[..., 1] + best_b.values.sum(-1)
    a = fits & (with_copy > qa[..., 0])
    b = (best_b.indices == 1) & a.unsqueeze(-1) & (mask[..., 1:] > 0)
    value = torch.where(a, with_copy, qa[..., 0])
    act = torch.cat([a.unsqueeze(-1), b], dim=-1).to(qa.dtype)
    return act, value


def chosen_value(qa: torch.Tensor, qb: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Q_n of the given actions (B, N): Q^a(a) + a * sum_m Q^b_m(b_m)."""
    a = act[..., 0].long()
    b = act[..., 1:].long()
    va = qa.gather(-1, a.unsqueeze(-1)).squeeze(-1)
    vb = qb.gather(-1, b.unsqueeze(-1)).squeeze(-1).sum(-1)
    return va + act[..., 0] * vb


class QmixLearner:
    """The same interface as learner.MaasnLearner (act, update, state_dict), plus the
    recurrent state: ``begin_episode`` resets it, ``episode_hidden`` returns the states each
    step started from (for the replay)."""

    algo = "qmix"

    def __init__(self, cfg: LearnerConfig, n_agents: int, block_dim: int, seed: int = 0,
                 layout=None):
        from torchrl.modules import QMixer

        if layout is not None:
            raise ValueError("QMIX-DA works on the paper's padded observation only")
        torch.manual_seed(seed)
        self.cfg = cfg
        self.n = n_agents
        self.block_dim = block_dim
        self.layout = None
        obs_dim = n_agents * block_dim
        h = int(cfg.rnn_hidden)
        self.actor = DrqnAgents(n_agents, obs_dim, h)  # "actor": what a policy file holds
        self.actor_t = DrqnAgents(n_agents, obs_dim, h)
        self.mixer = QMixer((n_agents * obs_dim,), cfg.mixer_embed, n_agents, "cpu")
        self.mixer_t = QMixer((n_agents * obs_dim,), cfg.mixer_embed, n_agents, "cpu")
        for t, s in ((self.actor_t, self.actor), (self.mixer_t, self.mixer)):
            t.load_state_dict(s.state_dict())
            t.requires_grad_(False)
        self.opt = torch.optim.Adam([*self.actor.parameters(), *self.mixer.parameters()],
                                    lr=cfg.lr_critic)
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.updates = 0
        self.r_min, self.r_max = 0.0, 0.0
        self.begin_episode()

    # ---- acting ------------------------------------------------------------------------
    def begin_episode(self) -> None:
        self._h = torch.zeros(1, self.n, self.actor.hidden)
        self._hist: list[torch.Tensor] = []

    def episode_hidden(self) -> torch.Tensor:
        """(T + 1, N, H): the state before each step of the episode, and after the last."""
        return torch.cat([*self._hist, self._h]) if self._hist else self._h.clone()

    @torch.no_grad()
    def act(self, obs, mask, explore: bool, noise: float = 1.0) -> torch.Tensor:
        """Binary joint action (N, N); with ``explore``, epsilon-greedy with epsilon =
        ``noise`` per agent."""
        obs = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
        mask = torch.as_tensor(mask, dtype=torch.float32).unsqueeze(0)
        self._hist.append(self._h)
        qa, qb, self._h = self.actor(obs, self._h)
        act, _ = greedy(qa, qb, mask)
        act = act[0]
        if explore and noise > 0:
            pick = torch.rand(self.n, generator=self.gen) < noise
            rnd = (torch.rand(self.n, self.n, generator=self.gen) < 0.5).float()
            rnd[:, 0] *= mask[0, :, 0]
            rnd[:, 1:] *= rnd[:, :1] * mask[0, :, 1:]
            act = torch.where(pick.unsqueeze(-1), rnd, act)
        return act

    # ---- learning ----------------------------------------------------------------------
    def update(self, batch: dict, demo_batch: dict | None = None, train_actor: bool = True,
               noise: float = 1.0) -> dict:
        cfg = self.cfg
        obs = torch.as_tensor(batch["obs"], dtype=torch.float32)
        nobs = torch.as_tensor(batch["next_obs"], dtype=torch.float32)
        nmask = torch.as_tensor(batch["next_mask"], dtype=torch.float32)
        act = torch.as_tensor(batch["act"], dtype=torch.float32)
        r = torch.as_tensor(batch["reward"], dtype=torch.float32)
        done = torch.as_tensor(batch["done"], dtype=torch.float32)
        disc = (torch.as_tensor(batch["discount"], dtype=torch.float32)
                if "discount" in batch else torch.full_like(r, cfg.gamma))
        h = torch.as_tensor(batch["hidden"], dtype=torch.float32)
        nh = torch.as_tensor(batch["next_hidden"], dtype=torch.float32)
        b = obs.shape[0]
        state, nstate = obs.reshape(b, -1), nobs.reshape(b, -1)
        with torch.no_grad():
            qa2, qb2, _ = self.actor(nobs, nh)
            nact, _ = greedy(qa2, qb2, nmask)  # double Q: online argmax ...
            qa_t, qb_t, _ = self.actor_t(nobs, nh)  # ... target value
            nq = chosen_value(qa_t, qb_t, nact)
            target = r + disc * (1 - done) * self.mixer_t(nq.unsqueeze(-1), nstate).squeeze(-1)
            if cfg.value_clip:
                self.r_min = min(self.r_min, float(r.min()))
                self.r_max = max(self.r_max, float(r.max()))
                target = torch.maximum(torch.minimum(target, self.r_max / (1 - disc)),
                                       self.r_min / (1 - disc))
        qa, qb, _ = self.actor(obs, h)
        q = chosen_value(qa, qb, act)
        q_tot = self.mixer(q.unsqueeze(-1), state).squeeze(-1)
        err = target - q_tot
        if cfg.huber_delta > 0:
            loss = torch.nn.functional.huber_loss(err, torch.zeros_like(err),
                                                  delta=cfg.huber_delta)
        else:
            loss = (err ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], cfg.grad_clip)
        self.opt.step()
        _soft_update(self.actor_t, self.actor, cfg.soft_tau)
        _soft_update(self.mixer_t, self.mixer, cfg.soft_tau)
        self.updates += 1
        return {"critic_loss": loss.item(), "actor_loss": float("nan")}

    # ---- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "actor_t": self.actor_t.state_dict(),
                "mixer": self.mixer.state_dict(), "mixer_t": self.mixer_t.state_dict(),
                "opt": self.opt.state_dict(), "gen": self.gen.get_state(),
                "updates": self.updates,
                "r_range": torch.tensor([self.r_min, self.r_max], dtype=torch.float64)}

    def load_state_dict(self, d: dict) -> None:
        for name in ("actor", "actor_t", "mixer", "mixer_t", "opt"):
            getattr(self, name).load_state_dict(d[name])
        self.gen.set_state(d["gen"])
        self.updates = int(d["updates"])
        self.r_min, self.r_max = (float(x) for x in d["r_range"])


class QmixPolicy:
    """Greedy acting of a trained QMIX-DA agent network (recurrent: ``begin_episode``)."""

    def __init__(self, agents: DrqnAgents):
        self.agents = agents
        self.begin_episode()

    def begin_episode(self) -> None:
        self._h = torch.zeros(1, self.agents.n, self.agents.hidden)

    @torch.no_grad()
    def __call__(self, obs, mask):
        o = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
        m = torch.as_tensor(mask, dtype=torch.float32).unsqueeze(0)
        qa, qb, self._h = self.agents(o, self._h)
        return greedy(qa, qb, m)[0][0].numpy()
