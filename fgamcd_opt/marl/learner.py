"""The MAASN-DA learner (paper sections III-C..E, Algorithm 1 lines 20-24; docs/model.md
section 9): action-semantics actors, local critics, QMIX mixing, target networks with soft
updates.

Critic loss (eq. 21): (Q_tar - Q_tot(s, d))^2 with
Q_tar = r + gamma (1 - done) Q^_tot(s', pi^(o')) from the target actor, critics and mixer.
Actor loss (eq. 22): -Q_n(o_n, pi(o_n; phi_n)) for every agent, through the Gumbel-Softmax
relaxation (eq. 13) with the storage/migration masks applied (a_n forced 0 where PB k does not
fit, b_{n,m} multiplied by a_n). Ablations: ``action_semantics=False`` uses a flat actor,
``value_decomposition=False`` trains each local critic on its own TD target (no mixer).

Defaults are Appendix C's sizes and Table II's gamma; the learning rates, batch, soft-update
rate, temperature and updates per episode are not given by the paper and are our choices
(documented in docs/maasn.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .networks import (
    ActionSemanticsActor,
    FlatActor,
    LocalCritics,
    QMixer,
    SharedActor,
    SharedCritics,
    SharedMixer,
    masked_actions,
    set_cache_prior,
)


@dataclass
class LearnerConfig:
    gamma: float = 0.95  # Table II
    lr_actor: float = 1e-4
    lr_critic: float = 1e-3
    soft_tau: float = 0.01  # target networks: theta^ <- tau theta + (1 - tau) theta^
    temperature: float = 1.0  # s_temp of eq. 13
    logit_scale: float = 5.0
    actor_hidden: tuple = (128, 64)  # Fig. 19 (a)
    flat_actor_hidden: tuple = (256, 256)  # ablation "without action semantics"
    critic_hidden: tuple = (256, 256)  # Fig. 19 (b)
    mixer_embed: int = 32
    mixer_hyper: int = 64
    grad_clip: float = 10.0
    action_semantics: bool = True
    value_decomposition: bool = True
    # "paper": separate networks per agent over eq. 10's padded observation (Fig. 19);
    # "shared": one set of networks for every agent over the graph observation (graph.py), for
    # any N and any users per node (docs/maasn.md section 8)
    architecture: str = "paper"
    user_hidden: int = 16  # shared: width of the per-user encoder
    # weight of the behaviour-cloning term added to the actor loss when the trainer has
    # demonstrations (demo.py; 0: the paper's actor loss only)
    bc_weight: float = 0.0
    # the critic is trained on executed binary actions, so the actor step and the target query
    # it at binary actions: straight-through Gumbel-Softmax (hard forward, relaxed gradient);
    # False: the relaxed sample itself (the v1/v2 learner, inconsistent with the critic's data)
    straight_through: bool = True
    # the actor's gradient for the caching bit a_n: "st" (straight-through, the slope of the
    # critic at the sampled binary action) or "expected" (the exact gradient of the expected
    # local Q over a_n ~ Bernoulli(p_n): dE/dp_n = Q_n(a_n = 1) - Q_n(a_n = 0), both at the
    # sampled migration bits); measured: the critic's Q_n(1) - Q_n(0) was +0.04 where a node's
    # own users request the PB and -0.06 where not, while its slope at the sampled actions
    # pushed both logits down (docs/maasn.md section 2.1). Migration bits stay straight-through.
    actor_gradient: str = "expected"
    # target actions: "greedy" (the target actor's deterministic binary action, TD3-style
    # without smoothing) or "sample" (a Gumbel sample at the acting temperature)
    target_actions: str = "greedy"
    # critic loss: Huber with this threshold on the TD error (0: plain squared error)
    huber_delta: float = 1.0
    # clamp the critic's targets to the returns the rewards allow, [r_min, r_max] / (1 -
    # discount) with r_min, r_max the extreme (n-step) rewards seen: eq. 12's rewards are <= 0,
    # so Q <= 0, and the deterministic actor cannot drive the mixed Q above it (measured
    # without: Q_tot +13 against true returns near -1.4 after 100 episodes)
    value_clip: bool = True
    # initial caching logit of every agent (networks.set_cache_prior); None: the networks'
    # own initialisation (the paper's)
    cache_prior: float | None = None
    # "maasn" (this file) or "qmix" (QMIX-DA, qmix.py: per-agent DRQN, epsilon-greedy)
    algo: str = "maasn"
    rnn_hidden: int = 64  # qmix: GRU width

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def build_actor(cfg: LearnerConfig, n_agents: int, block_dim: int, layout=None
                ) -> torch.nn.Module:
    if cfg.architecture == "shared":
        if not cfg.action_semantics:
            raise ValueError("the shared architecture has the action-semantics actor only")
        return SharedActor(layout, tuple(cfg.actor_hidden), cfg.logit_scale, cfg.user_hidden)
    if cfg.architecture != "paper":
        raise ValueError(f"architecture: {cfg.architecture!r} is not one of paper, shared")
    if cfg.action_semantics:
        return ActionSemanticsActor(n_agents, block_dim, tuple(cfg.actor_hidden),
                                    cfg.logit_scale)
    return FlatActor(n_agents, block_dim, tuple(cfg.flat_actor_hidden), cfg.logit_scale)


def build_critics(cfg: LearnerConfig, n_agents: int, block_dim: int, layout=None):
    """(local critics, mixer) of the architecture."""
    if cfg.architecture == "shared":
        return (SharedCritics(layout, tuple(cfg.critic_hidden), user_hidden=cfg.user_hidden),
                SharedMixer(layout, cfg.mixer_embed, cfg.mixer_hyper, cfg.user_hidden))
    obs_dim = n_agents * block_dim
    return (LocalCritics(n_agents, obs_dim, tuple(cfg.critic_hidden)),
            QMixer(n_agents, n_agents * obs_dim, cfg.mixer_embed, cfg.mixer_hyper))


def build_learner(cfg: LearnerConfig, n_agents: int, block_dim: int, seed: int = 0,
                  layout=None):
    """The learner of ``cfg.algo`` (MAASN-DA or QMIX-DA), same interface."""
    if cfg.algo == "qmix":
        from .qmix import QmixLearner

        return QmixLearner(cfg, n_agents, block_dim, seed, layout)
    if cfg.algo != "maasn":
        raise ValueError(f"algo: {cfg.algo!r} is not one of maasn, qmix")
    return MaasnLearner(cfg, n_agents, block_dim, seed, layout)


def _soft_update(target: torch.nn.Module, source: torch.nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.mul_(1 - tau).add_(s, alpha=tau)


class MaasnLearner:
    def __init__(self, cfg: LearnerConfig, n_agents: int, block_dim: int, seed: int = 0,
                 layout=None):
        """``layout`` (graph.GraphLayout): the graph observation of the shared architecture
        (then ``n_agents`` is its n_max)."""
        torch.manual_seed(seed)
        self.cfg = cfg
        self.n = n_agents
        self.block_dim = block_dim
        self.layout = layout
        self.actor = build_actor(cfg, n_agents, block_dim, layout)
        self.critics, self.mixer = build_critics(cfg, n_agents, block_dim, layout)
        if cfg.cache_prior is not None:
            set_cache_prior(self.actor, cfg.cache_prior)
        self.actor_t = build_actor(cfg, n_agents, block_dim, layout)
        self.critics_t, self.mixer_t = build_critics(cfg, n_agents, block_dim, layout)
        for t, s in ((self.actor_t, self.actor), (self.critics_t, self.critics),
                     (self.mixer_t, self.mixer)):
            t.load_state_dict(s.state_dict())
            t.requires_grad_(False)
        critic_params = list(self.critics.parameters())
        if cfg.value_decomposition:
            critic_params += list(self.mixer.parameters())
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor)
        self.opt_critic = torch.optim.Adam(critic_params, lr=cfg.lr_critic)
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.updates = 0
        self.r_min, self.r_max = 0.0, 0.0  # extreme rewards seen (value_clip)

    # ---- acting ------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs, mask, explore: bool, noise: float = 1.0) -> torch.Tensor:
        """Binary joint action (N, N) for one step (obs (N, D), mask (N, N)); ``noise``: scale
        of the exploration noise (a bit is 1 with probability sigmoid(logit / noise))."""
        obs = torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)
        mask = torch.as_tensor(mask, dtype=torch.float32).unsqueeze(0)
        logits = self.actor(obs)
        return masked_actions(logits, mask, self.cfg.temperature, self.gen, hard=True,
                              explore=explore, noise=noise)[0]

    # ---- learning ----------------------------------------------------------------------
    def _agents(self, obs: torch.Tensor) -> torch.Tensor | None:
        """(B, N) 1 for real agents (graph observations pad to n_max), None: all real."""
        if self.layout is None:
            return None
        return self.layout.unpack(obs.reshape(obs.shape[0], -1))["agents"]

    def _td_loss(self, err: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if self.cfg.huber_delta > 0:
            loss = torch.nn.functional.huber_loss(err, torch.zeros_like(err),
                                                  delta=self.cfg.huber_delta, reduction="none")
        else:
            loss = err ** 2
        if weight is None:
            return loss.mean()
        return (loss * weight).sum() / weight.sum().clamp(min=1.0)

    def update(self, batch: dict, demo_batch: dict | None = None,
               train_actor: bool = True, noise: float = 1.0) -> dict:
        """One critic and (``train_actor``) one actor step. ``batch["discount"]`` (optional)
        is gamma^n of n-step transitions (default gamma). ``demo_batch``: demonstrated actions
        whose behaviour-cloning loss (demo.bc_loss), times ``bc_weight``, is added to the actor
        loss. ``noise``: the acting exploration noise (schedule), used for the samples of the
        actor step and sampled targets, so the actor step optimises the policy that acts."""
        cfg = self.cfg
        temp = cfg.temperature
        obs = torch.as_tensor(batch["obs"], dtype=torch.float32)
        nobs = torch.as_tensor(batch["next_obs"], dtype=torch.float32)
        mask = torch.as_tensor(batch["mask"], dtype=torch.float32)
        nmask = torch.as_tensor(batch["next_mask"], dtype=torch.float32)
        act = torch.as_tensor(batch["act"], dtype=torch.float32)
        r = torch.as_tensor(batch["reward"], dtype=torch.float32)
        done = torch.as_tensor(batch["done"], dtype=torch.float32)
        disc = (torch.as_tensor(batch["discount"], dtype=torch.float32)
                if "discount" in batch else torch.full_like(r, cfg.gamma))
        b = obs.shape[0]
        state, nstate = obs.reshape(b, -1), nobs.reshape(b, -1)

        with torch.no_grad():
            logits_t = self.actor_t(nobs)
            if cfg.target_actions == "greedy":
                nact = masked_actions(logits_t, nmask, temp, hard=True, explore=False)
            elif cfg.straight_through:
                nact = masked_actions(logits_t, nmask, temp, self.gen, hard=True, noise=noise)
            else:  # the v2 learner: relaxed samples
                nact = masked_actions(logits_t, nmask, temp, self.gen, noise=noise)
            nq = self.critics_t(nobs, nact)
            if cfg.value_decomposition:
                target = r + disc * (1 - done) * self.mixer_t(nq, nstate)
            else:
                target = r[:, None] + (disc * (1 - done))[:, None] * nq
            if cfg.value_clip:
                self.r_min = min(self.r_min, float(r.min()))
                self.r_max = max(self.r_max, float(r.max()))
                lo, hi = self.r_min / (1 - disc), self.r_max / (1 - disc)
                if target.dim() > 1:
                    lo, hi = lo[:, None], hi[:, None]
                target = torch.maximum(torch.minimum(target, hi), lo)
        q = self.critics(obs, act)
        if cfg.value_decomposition:
            critic_loss = self._td_loss(target - self.mixer(q, state))
        else:
            critic_loss = self._td_loss(target - q, self._agents(obs))
        self.opt_critic.zero_grad()
        critic_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.opt_critic.param_groups[0]["params"], cfg.grad_clip)
        self.opt_critic.step()

        actor_loss = float("nan")
        if train_actor:
            actor_loss = self._actor_step(obs, mask, demo_batch, noise)
            _soft_update(self.actor_t, self.actor, cfg.soft_tau)
        _soft_update(self.critics_t, self.critics, cfg.soft_tau)
        if cfg.value_decomposition:
            _soft_update(self.mixer_t, self.mixer, cfg.soft_tau)
        self.updates += 1
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss}

    def _actor_step(self, obs, mask, demo_batch: dict | None, noise: float) -> float:
        """Eq. 22 through the Gumbel-Softmax relaxation (straight-through by default); with
        demonstrations the TD3+BC loss."""
        cfg = self.cfg
        logits = self.actor(obs)
        agents = self._agents(obs)
        if cfg.actor_gradient == "expected" and cfg.straight_through:
            actor_loss, q_size = self._expected_actor_loss(logits, obs, mask, noise, agents)
        else:
            pi = masked_actions(logits, mask, cfg.temperature, self.gen,
                                straight_through=cfg.straight_through, noise=noise)
            q_pi = self.critics(obs, pi)
            if agents is not None:
                q_pi = q_pi[agents > 0]
            actor_loss = -q_pi.mean()
            q_size = q_pi.abs().mean().detach()
        if demo_batch is not None and cfg.bc_weight > 0:
            from .demo import bc_loss

            # TD3+BC: the Q term normalised by its own magnitude, so bc_weight means the same
            # whatever the reward scale
            actor_loss = (actor_loss / q_size.clamp(min=1e-6)
                          + cfg.bc_weight * bc_loss(self.actor, demo_batch, cfg.temperature)[0])
        self.opt_actor.zero_grad()
        actor_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
        self.opt_actor.step()
        self.critics.zero_grad(set_to_none=True)
        return actor_loss.item()

    def _expected_actor_loss(self, logits, obs, mask, noise: float, agents) -> tuple:
        """``actor_gradient="expected"``: for the caching bit the exact gradient of the expected
        local Q over a_n ~ Bernoulli(p_n): the surrogate -p_n (Q_n(1, b) - Q_n(0, 0)) with the
        advantage held fixed, b the actor's greedy migration bits and p_n = sigmoid(l_n /
        temperature) (the acting probability at noise 1; at lower noise the same sign with a
        steeper slope, which would stop the gradient of a nearly deterministic bit); for the
        migration bits the straight-through
        term with a_n at its sample. Returns (loss, mean |Q| of the sampled actions)."""
        from .networks import gumbel_sigmoid

        cfg = self.cfg
        soft = gumbel_sigmoid(logits, cfg.temperature, self.gen, noise)
        st = ((soft > 0.5).to(logits.dtype) + soft - soft.detach()) * mask
        a = st[..., :1].detach()
        q_b = self.critics(obs, torch.cat([a, st[..., 1:] * a], dim=-1))
        with torch.no_grad():
            # the migration bits at the actor's greedy choice: with sampled ones a copy was
            # blamed for the exploring migration offers that came with it (measured: the
            # caching logits fell everywhere although Q_n(1, 0) > Q_n(0, 0) everywhere)
            b = (logits[..., 1:] > 0).to(logits.dtype) * mask[..., 1:]
            cache = mask[..., :1]
            adv = (self.critics(obs, torch.cat([cache, b * cache], dim=-1))
                   - self.critics(obs, torch.zeros_like(st))) * cache[..., 0]
        p = torch.sigmoid(logits[..., 0] / cfg.temperature)
        per_agent = p * adv + q_b
        if agents is not None:
            per_agent = per_agent[agents > 0]
            q_b = q_b[agents > 0]
        return -per_agent.mean(), q_b.abs().mean().detach()

    # ---- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critics": self.critics.state_dict(),
                "mixer": self.mixer.state_dict(), "actor_t": self.actor_t.state_dict(),
                "critics_t": self.critics_t.state_dict(), "mixer_t": self.mixer_t.state_dict(),
                "opt_actor": self.opt_actor.state_dict(),
                "opt_critic": self.opt_critic.state_dict(),
                "gen": self.gen.get_state(), "updates": self.updates,
                "r_range": torch.tensor([self.r_min, self.r_max], dtype=torch.float64)}

    def load_state_dict(self, d: dict) -> None:
        for name in ("actor", "critics", "mixer", "actor_t", "critics_t", "mixer_t",
                     "opt_actor", "opt_critic"):
            getattr(self, name).load_state_dict(d[name])
        self.gen.set_state(d["gen"])
        self.updates = int(d["updates"])
        if "r_range" in d:
            self.r_min, self.r_max = (float(x) for x in d["r_range"])
