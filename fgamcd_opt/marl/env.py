"""The Dec-POMDP of MAASN-DA (docs/model.md section 9, paper section III-B) as a PettingZoo
``ParallelEnv``.

Agents are the edge nodes ``node_0 .. node_{N-1}``. **One step = one requested PB**, in PB index
order. PBs that no user requests are skipped: eq. 12 gives them reward 0 whatever the agents do,
and caching them only wastes storage, so the agents never see them (an episode has
``len(inst.requested_blocks)`` steps, 242 on paper-default seed 0 instead of K = 435).

Observation of agent n (eq. 10), a flat float32 vector of N blocks of ``2 + P`` numbers
(``3 + P`` with ``observe_demand``, below):

- own block ``[S(k) / S_max, I{k in K_{r_u}} for the users of n (padded to P), C~_n(k) / C_ref]``
- then, for every other node m in ascending order, ``varpi_{n,m} * [R^bac_{n,m}(k) / R_ref,
  I{k in K_{r_u}} for the users of m (padded to P), C~_m(k) / C_ref]`` (zeros when m is beyond
  the information-exchange range).

S_max is the largest PB of the repository, R_ref = 1e10 bit/s, C~ the remaining storage in
units of ``storage_ref_bytes`` (1 GB), so C_n itself is visible to the policy.
With ``observe_demand`` (default on; off reproduces eq. 10 exactly) every node block ends with one
more number, ``D_m(k) / C_ref``: the bytes of the PBs from step k on (k included) that some user
of node m requests, in the same units as C~. It is what the node's own users will still ask for
(the requests are known when the episode starts, as in the paper's model), so a node can weigh a
copy now against the room its later PBs need when storage binds; without it that trade-off is
invisible until storage runs out, 20+ steps later, beyond what gamma = 0.95 credits.
**Padding**: users of a node fill the first slots of its P-slot block in user-index order; the
remaining slots read 0. P (``max_users_per_node``) is fixed so one policy applies to every
instance with the same N; ``observation["user_mask"]`` (N x P flattened, 1 = a real user) says
which slots are real. An instance with more users at some node than P is refused with a clear error.

Action of agent n (eq. 11): ``MultiBinary(N)``, ``[a_n(k), b_{n,m}(k) for m != n ascending]``.
``observation["action_mask"]`` (N,) is 1 where an action bit may be 1 (0 is always allowed; the
shape of the action, as TorchRL's PettingZoo wrapper expects); every bit is 0 when PB k does not
fit in C~_n(k) (a_n forced to 0, so no migration from n either, paper section III-C). The env
enforces the mask and the remaining rules by construction: b_{n,m} is dropped when a_n = 0
(eq. 2) or when m caches k itself; of several migrations to the same m only the one over the
fastest backhaul is kept (one copy suffices).

Delivery and reward (eq. 12). The joint action fixes the holders (a) and the migrated copies (b);
``delivery="planner"`` (default) hands them to the shared planner (``plan_transmissions`` with
holders = cached nodes, received = migrated nodes, no further migration), which picks the
participating subset and splits users a common beam cannot reach, exactly as for the baselines;
offered migrations the planner does not use are dropped (they would only add delay).
``delivery="group"`` is the paper's literal delivery: every participant broadcasts PB k to all
its requesters in one unit. The delay comes from the evaluator's per-PB scorer
(``fgamcd_opt.evaluator.score_block``) with the shared oracle's beams:

    r(k) = -reward_scale * T(k) - r1 * Lambda(k)   if some node participates
    r(k) = -r2                                      if no node can deliver k

with Lambda(k) = 1 when some requester misses Q_u or has rate 0. ``reward_scale`` (default 10
per second, i.e. delay counted in units of 0.1 s) makes the per-PB delays of paper-default
(milliseconds to ~0.2 s) comparable with r1 = r2 = 10 (Table II): a QoS violation costs as much
as one second of delay. All agents receive the same reward.

Episodes draw their instance from a seeded generator scenario (``EnvConfig.scenario`` with
``overrides``): with ``pool = P > 0`` the episode's instance is one of P fixed generator seeds
(``pool_seed0 .. pool_seed0 + P - 1``, chosen by the reset seed), so the shared oracle's memo
is reused across episodes (``storage_gb_choices`` spreads C_n over the pool, so one policy sees
both loose and binding storage); ``pool = 0`` generates a fresh instance per reset seed. A fixed
instance (``EnvConfig.instance``) is used as is (fine-tuning, the solver's rollout).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from ..errors import ParameterError
from ..evaluator import score_block
from ..instance import Instance
from ..lru import LRU
from ..oracle import BeamformingOracle, default_oracle
from ..plan import DeliveryUnit, Migration, Plan
from ..planner import (
    SEARCH_GREEDY_MAX_USERS,
    BlockData,
    PlannerOptions,
    plan_transmissions,
    pooled_partitions,
)
from .graph import GraphLayout

R_REF_BPS = 1e10


@dataclass
class EnvConfig:
    scenario: str = "paper-default"
    overrides: dict = field(default_factory=dict)
    instance: Instance | None = None  # a fixed instance (overrides scenario)
    pool: int = 8  # instances per generator pool (0: a fresh instance per reset seed)
    pool_seed0: int = 1000  # first generator seed of the pool (held-out seeds stay below)
    storage_gb_choices: tuple = ()  # if given: pool instance i gets C_n = choices[i % len]
    storage_ref_bytes: float = 1e9  # C~ is observed in units of this (1 GB)
    max_users_per_node: int = 14  # P, the padding
    reward_scale: float = 10.0  # per second of delay
    r1: float = 10.0  # QoS / power infeasibility penalty (Table II)
    r2: float = 10.0  # nobody delivers a requested PB (Table II)
    delivery: str = "planner"  # planner | group (the paper's one-group broadcast)
    max_cluster: int = 3  # planner: most nodes in one transmission
    # planner search effort: "full" (the baselines' planner: best partition into groups,
    # screened clusters) or "quick" (one common transmission from the best single holder grown
    # one candidate at a time, users it cannot reach served apart; the full search only where
    # that misses a QoS floor): several times fewer oracle calls per step, for training
    # episodes (docs/maasn.md section 2.1)
    effort: str = "full"
    method: str | None = None  # oracle method (None: the oracle's default, fast)
    # name of the mask entry in the observation dict; TorchRL 0.14's PettingZoo wrapper cannot
    # apply a mask to Binary actions (it expects a one-hot mask), so it is renamed there
    mask_key: str = "action_mask"
    # coverage guard (off in training, on in the maasn solver): keep room for one copy of every
    # later PB and cache a PB nobody chose at the fitting node that can serve it best
    guard: bool = False
    # fallback: the guard places a PB only when the policy's copies leave it nowhere;
    # additive: the guard's copy first, the policy's copies on top (FgamcdParallelEnv._guarded);
    # reserve: the guard-only placement of every PB is worked out at reset and its storage
    # reserved, so the policy's copies only use the room it leaves (never displace it)
    # reserve-local: as reserve, and the copies of guard-fill rule=local too (a node caches
    # the PBs its own users request wherever that leaves the guard's later copies their room,
    # in step order): reserved at reset and placed whatever the policy asks, so the policy's
    # copies only use the room beyond both and never push a later one off its node
    guard_mode: str = "additive"
    # the agents' migration bits b_{n,m} (eq. 11): False masks them, and with the guard on the
    # planner alone decides migrations from the holders (it does anyway); the executed
    # actions then carry no migration bits, since the agents did not choose them
    policy_migrations: bool = True
    # one more observation entry per node block: bytes its users still request (module doc)
    observe_demand: bool = True
    # with the reserve guard (and observe_demand): a node's storage entry is the room beyond
    # the guard's reservations of the steps from k on, its demand entry the bytes of the PBs of
    # steps k.. its users request that are not reserved at it: the room the policy's copies
    # compete for and the own demand that room must still hold (docs/maasn.md section 2.1)
    observe_reserve: bool = False
    # "flat": eq. 10's padded vector per agent (the paper's per-agent networks); "graph": the
    # state as a graph packed into one vector (graph.py; the shared networks, any N and users
    # per node up to graph_n_max / graph_u_max); the flat observations are still returned
    obs_format: str = "flat"
    graph_n_max: int = 12
    graph_u_max: int = 64
    # a scenario mix (scenarios.py): training instances drawn from several scenarios and
    # parameter ranges (one environment per instance: training.Trainer.env_for)
    mix: tuple = ()

    def card(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "instance"}
        d["instance"] = self.instance.name if self.instance is not None else None
        return d


RESERVING = ("reserve", "reserve-local")  # guard modes that reserve a placement at reset


def _deliver(oracle, inst: Instance, cfg: EnvConfig, k: int, holders, src_of: dict,
             holds_k: np.ndarray, hints=None):
    """Transmissions of PB k from the decided holders and migrated copies (``delivery``),
    scored by the evaluator's per-PB scorer: (units, migrations, BlockScore). ``hints``
    (partitions of k's requesters, planner delivery): the second pass of
    :meth:`FgamcdParallelEnv.deliver_pending`, which scores them without a local search."""
    users = inst.requesters(k)
    if cfg.delivery == "group":
        nodes = tuple(sorted({*np.asarray(holders).tolist(), *src_of}))
        res = oracle.solve(inst, k, nodes, users, method=cfg.method)
        units = [DeliveryUnit(k, tuple(users), nodes, beams=res.beams, beamforming=cfg.method)]
        migs = [Migration(s, m, k) for m, s in sorted(src_of.items())]
    else:
        # offered copies (b_{n,m}) are weighed at their migration delay like any migration, so
        # the planner takes one only where it pays for itself; with the guard (the solver) the
        # planner may also migrate from any holder, so a copy the guard placed away from the
        # requesters still reaches them
        opts = PlannerOptions(max_cluster=cfg.max_cluster, migration=cfg.guard,
                              method=cfg.method, offered=tuple(sorted(src_of.items())))
        bd = BlockData(inst, k)
        parts = None
        if hints:
            opts = replace(opts, search_plans=1)
        elif cfg.effort == "quick":
            # one common transmission first; the full partition search only where it misses
            # some requester's QoS floor (most PBs meet QoS with one group)
            parts = plan_transmissions(inst, k, users, holders, oracle,
                                       replace(opts, partition=False, screen=1,
                                               candidates_per_round=1),
                                       sources=holders, block_data=bd)
            if any(not g.beam.qos_feasible for g in parts):
                parts = None
        if parts is None:
            parts = plan_transmissions(inst, k, users, holders, oracle, opts, sources=holders,
                                       block_data=bd, hints=hints or None)
        migs, have = [], set()
        for g in parts:
            for mg in g.migrations:
                if mg.dst not in have:
                    migs.append(mg)
                    have.add(mg.dst)
        units = [DeliveryUnit(g.block, g.users, g.nodes,
                              mode="unicast" if len(parts) > 1 and len(g.users) == 1
                              else "broadcast", beams=g.beam.beams, beamforming=cfg.method)
                 for g in parts]
    score = score_block(inst, k, units, migs, oracle=oracle, holds=holds_k)
    return units, migs, score


def _penalised(score) -> bool:
    """Whether a PB's delivery earns eq. 12's penalty (QoS miss, undelivered or infinite)."""
    return bool(score.qos_violating_users or score.undelivered_users
                or not np.isfinite(score.total_s))


_WORKER_ENV = None  # the env a forked delivery worker inherits (deliver_pending)


def _deliver_in_worker(arg):
    env = _WORKER_ENV
    o = env.oracle
    before = (o.misses, o.hits, o.solve_time_s)
    out = _deliver(o, env.inst, env.config, *arg)
    return (*out, (o.misses - before[0], o.hits - before[1], o.solve_time_s - before[2]))


def block_dim(max_users_per_node: int, observe_demand: bool) -> int:
    """Entries of one node block of the observation (module docstring)."""
    return 2 + int(max_users_per_node) + int(bool(observe_demand))


def own_requests(obs: np.ndarray, max_users_per_node: int) -> np.ndarray:
    """(N,): how many of each node's own users request the current PB, read from the flat
    observations (N, D) (each row's first block is the node's own: [S(k)/S_max, the request
    indicators of its users padded to P = ``max_users_per_node``, ...])."""
    n = obs.shape[0]
    own = obs.reshape(n, n, -1)[:, 0, :]
    return own[:, 1:1 + int(max_users_per_node)].sum(axis=1)


def agent_name(n: int) -> str:
    return f"node_{n}"


class FgamcdParallelEnv(ParallelEnv):
    metadata = {"name": "fgamcd_maasn_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, config: EnvConfig | None = None, oracle: BeamformingOracle | None = None,
                 n_nodes: int | None = None):
        self.config = config or EnvConfig()
        if self.config.delivery not in ("planner", "group"):
            raise ParameterError(f"delivery: {self.config.delivery!r} is not one of planner, "
                                 "group")
        if self.config.effort not in ("full", "quick"):
            raise ParameterError(f"effort: {self.config.effort!r} is not one of full, quick")
        if self.config.obs_format not in ("flat", "graph"):
            raise ParameterError(f"obs_format: {self.config.obs_format!r} is not one of flat, "
                                 "graph")
        self.layout = (GraphLayout(self.config.graph_n_max, self.config.graph_u_max)
                       if self.config.obs_format == "graph" else None)
        self.oracle = oracle or default_oracle()
        self._delivery_memo = LRU(100_000)
        self._instances: dict[int, Instance] = {}
        self._pad = int(self.config.max_users_per_node)
        if self.layout is not None and self.config.instance is not None:
            # the graph form has no padding; the flat observations (PettingZoo's spaces) pad to
            # this instance's own largest cell
            inst0 = self.config.instance
            self._pad = max(int(np.bincount(inst0.users.node, minlength=inst0.n_nodes)
                                .max(initial=0)), 1)
        if self.config.instance is not None:
            self._n = self.config.instance.n_nodes
            self._check_fits(self.config.instance)
        elif n_nodes is not None:
            self._n = int(n_nodes)
        else:
            self._n = self._scenario_instance(self.config.pool_seed0).n_nodes
        self.possible_agents = [agent_name(n) for n in range(self._n)]
        self.agents: list[str] = []
        self.block_dim = block_dim(self._pad, self.config.observe_demand)
        self.obs_dim = self._n * self.block_dim
        self.inst: Instance | None = None
        self._k_list = np.zeros(0, dtype=int)
        self._t = 0

    # ---- spaces ------------------------------------------------------------------------
    @functools.cache  # noqa: B019 - one space object per agent, as PettingZoo asks
    def observation_space(self, agent):
        n = self._n
        return spaces.Dict({
            "observation": spaces.Box(0.0, np.inf, (self.obs_dim,), np.float32),
            self.config.mask_key: spaces.MultiBinary(n),
            "user_mask": spaces.MultiBinary(n * self._pad),
        })

    @functools.cache  # noqa: B019
    def action_space(self, agent):
        return spaces.MultiBinary(self._n)

    @property
    def state_space(self):
        return spaces.Box(0.0, np.inf, (self._n * self.obs_dim,), np.float32)

    # ---- instances ---------------------------------------------------------------------
    def _scenario_instance(self, seed: int) -> Instance:
        inst = self._instances.get(seed)
        if inst is None:
            from ..generators import generate

            over = dict(self.config.overrides)
            choices = tuple(self.config.storage_gb_choices)
            if choices:
                over["storage_gb"] = float(choices[(seed - self.config.pool_seed0)
                                                  % len(choices)])
            inst = generate(self.config.scenario, seed=int(seed), **over)
            self._check_fits(inst)
            if len(self._instances) >= max(self.config.pool, 1) + 4:
                self._instances.pop(next(iter(self._instances)))
            self._instances[seed] = inst
        return inst

    def _check_fits(self, inst: Instance) -> None:
        if self.layout is not None:
            self.layout.check(inst.n_nodes, inst.n_users, f"instance {inst.name}")
        counts = np.bincount(inst.users.node, minlength=inst.n_nodes)
        if counts.max(initial=0) > self._pad:
            n = int(np.argmax(counts))
            raise ParameterError(
                f"instance {inst.name}: node {inst.nodes.ids[n]} has {counts[n]} users, more "
                f"than the observation padding max_users_per_node={self._pad}")
        if hasattr(self, "_n") and inst.n_nodes != self._n:
            raise ParameterError(f"instance {inst.name} has N={inst.n_nodes} nodes; this "
                                 f"environment was built for N={self._n}")

    def _pick_instance(self, rng: np.random.Generator, options: dict | None) -> Instance:
        options = options or {}
        if "instance" in options:
            inst = options["instance"]
            self._check_fits(inst)
            return inst
        if self.config.instance is not None:
            return self.config.instance
        if "instance_seed" in options:
            return self._scenario_instance(int(options["instance_seed"]))
        if self.config.pool > 0:
            return self._scenario_instance(self.config.pool_seed0
                                           + int(rng.integers(self.config.pool)))
        return self._scenario_instance(int(rng.integers(2**31 - 1)))

    # ---- episode -----------------------------------------------------------------------
    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        inst = self._pick_instance(rng, options)
        self.inst = inst
        n = inst.n_nodes
        self._k_list = np.asarray(inst.requested_blocks, dtype=int)
        self._t = 0
        self.remaining = inst.nodes.storage_bytes.astype(np.float64).copy()
        self.holds = np.zeros((n, inst.n_blocks), dtype=bool)
        self._guard_tables(inst.repository.sizes.astype(float)[self._k_list].tolist())
        # _wants[t, m]: bytes of step t's PB if users of node m request it; _local_demand[t, m]
        # the same summed over steps t.. (the observation's D_m(k); the room price's deficit)
        sizes = inst.repository.sizes.astype(np.float64)
        self._wants = np.zeros((len(self._k_list) + 1, n))
        for t, k in enumerate(self._k_list):
            self._wants[t, np.unique(inst.users.node[inst.requesters(k)])] = sizes[k]
        self._local_demand = np.cumsum(self._wants[::-1], axis=0)[::-1]
        self._reserve_node = None
        if self.config.guard:
            self._prepare_guard()
            if self.config.guard_mode in RESERVING:
                self._prepare_reserve()
        self.migrations: list[Migration] = []
        self.units: list[DeliveryUnit] = []
        self._pending: list = []
        self.executed = np.zeros((n, n), dtype=bool)  # the last step's executed action
        self.undelivered: dict[int, tuple[int, ...]] = {}
        self.total_delay_s = 0.0
        self.qos_violations = 0  # PBs with Lambda(k) = 1
        self.delays: list[float] = []
        self.agents = list(self.possible_agents)
        self._s_max = float(inst.repository.sizes.max())
        users_of = [np.flatnonzero(inst.users.node == m) for m in range(n)]
        self._slot = np.full(inst.n_users, -1)
        self.user_mask = np.zeros((n, self._pad), dtype=np.int8)
        for m, us in enumerate(users_of):
            self._slot[us] = np.arange(len(us))
            self.user_mask[m, : len(us)] = 1
        self._varpi = inst.info_exchange.astype(np.float32)
        obs = self._observe()
        return obs, {a: {} for a in self.agents}

    @property
    def current_block(self) -> int | None:
        return int(self._k_list[self._t]) if self._t < len(self._k_list) else None

    def _node_blocks(self, k: int | None) -> np.ndarray:
        """(N, block_dim) per-node [size or backhaul slot, request indicators, storage(, demand)]
        of PB k."""
        inst = self.inst
        n = inst.n_nodes
        blk = np.zeros((n, self.block_dim), dtype=np.float32)
        if k is not None:
            req = inst.requesters(k)
            blk[inst.users.node[req], 1 + self._slot[req]] = 1.0
        ref = self.config.storage_ref_bytes
        if self.config.observe_demand:
            room, demand = self._room_and_demand()
            blk[:, -2] = (room / ref).astype(np.float32)
            blk[:, -1] = (demand / ref).astype(np.float32)
        else:
            blk[:, -1] = (self.remaining / ref).astype(np.float32)
        return blk

    def _room_and_demand(self) -> tuple[np.ndarray, np.ndarray]:
        """The observed C~_n(k) and D_n(k) in bytes: free storage and own later demand, or
        with ``observe_reserve`` and an active reservation the room beyond the reservations of
        steps k.. and the own demand of steps k.. not reserved at the node."""
        t = min(self._t, len(self._k_list))
        if self.config.observe_reserve and self._reserve_node is not None:
            return self.remaining - self._reserved_from[t], self._free_demand[t]
        return self.remaining, self._local_demand[t]

    def _observe(self) -> dict:
        inst = self.inst
        n = inst.n_nodes
        k = self.current_block
        blk = self._node_blocks(k)
        size = float(inst.repository.sizes[k]) / self._s_max if k is not None else 0.0
        bh = (inst.backhaul_rates(k) / R_REF_BPS).astype(np.float32) if k is not None \
            else np.zeros((n, n), np.float32)
        mask = self.action_mask()
        self._obs_matrix = np.zeros((n, self.obs_dim), dtype=np.float32)
        out = {}
        for a in range(n):
            row = self._obs_matrix[a].reshape(n, self.block_dim)
            row[0] = blk[a]
            row[0, 0] = size
            others = [m for m in range(n) if m != a]
            row[1:] = blk[others] * self._varpi[a, others][:, None]
            row[1:, 0] = bh[a, others] * self._varpi[a, others]
            out[agent_name(a)] = {"observation": self._obs_matrix[a].copy(),
                                  self.config.mask_key: mask[a].copy(),
                                  "user_mask": self.user_mask.reshape(-1).copy()}
        if self.layout is not None:
            self.graph = self._graph(k, size, bh)
        return out

    def _graph(self, k: int | None, size: float, bh: np.ndarray) -> np.ndarray:
        """The state s(k) as a packed graph (graph.py)."""
        inst = self.inst
        ref = self.config.storage_ref_bytes
        node = np.zeros((inst.n_nodes, 2))
        room, demand = self._room_and_demand()
        node[:, 0] = (room if self.config.observe_demand else self.remaining) / ref
        if self.config.observe_demand:
            node[:, 1] = demand / ref
        req = np.zeros(inst.n_users)
        if k is not None:
            req[inst.requesters(k)] = 1.0
        vis = self._varpi.astype(bool) | np.eye(inst.n_nodes, dtype=bool)
        return self.layout.pack(node, size, np.where(np.isfinite(bh), bh, 0.0), vis, req,
                                inst.users.node)

    def action_mask(self) -> np.ndarray:
        """(N, N) int8: row n is agent n's mask (all 0 when PB k does not fit in C~_n(k); with
        the reserve guard, when it does not fit beside the reservations of the later PBs, so
        the mask says exactly which copies the guard keeps)."""
        n = self._n
        k = self.current_block
        if k is None:
            return np.zeros((n, n), dtype=np.int8)
        size = float(self.inst.repository.sizes[k])
        if self.config.guard and getattr(self, "_reserve_node", None) is not None \
                and self.config.guard_mode in RESERVING:
            fits = self.remaining - size >= self._reserved_after[self._t]
        else:
            fits = self.remaining >= size
        mask = np.repeat(fits[:, None], n, axis=1).astype(np.int8)
        if not self.config.policy_migrations:
            mask[:, 1:] = 0
        return mask

    def state(self) -> np.ndarray:
        """s(k) = [o_n(k) : n in N] (paper section III-B)."""
        if self.inst is None:
            return np.zeros(self.state_space.shape, np.float32)
        return self._obs_matrix.reshape(-1).copy()

    def joint_action(self, actions: dict) -> np.ndarray:
        """(N, N) bool [a_n, b_{n,m}] matrix, diagonal = a_n, from per-agent action vectors."""
        n = self._n
        d = np.zeros((n, n), dtype=bool)
        for a in range(n):
            act = np.asarray(actions.get(agent_name(a), np.zeros(n)), dtype=float).reshape(-1)
            if act.shape != (n,):
                raise ValueError(f"action of {agent_name(a)} must have {n} entries")
            others = [m for m in range(n) if m != a]
            d[a, a] = act[0] > 0.5
            d[a, others] = act[1:] > 0.5
        return d

    def step(self, actions):
        inst = self.inst
        k = self.current_block
        if k is None:
            raise RuntimeError("step() after the episode ended; call reset()")
        d = self.joint_action(actions)
        reward, info = self._apply(k, d)
        self._t += 1
        done = self._t >= len(self._k_list)
        obs = self._observe()
        agents = list(self.agents)
        rewards = {a: float(reward) for a in agents}
        terms = {a: done for a in agents}
        truncs = {a: False for a in agents}
        infos = {a: dict(info) for a in agents}
        if done:
            self.agents = []
        del inst
        return obs, rewards, terms, truncs, infos

    # ---- the transition of one PB --------------------------------------------------------
    def _apply(self, k: int, d: np.ndarray) -> tuple[float, dict]:
        inst = self.inst
        cfg = self.config
        size = float(inst.repository.sizes[k])
        fits = self.remaining >= size
        a = np.diag(d) & fits
        if cfg.guard:
            a = self._guarded(k, a, fits)
        b = d & a[:, None]
        if not cfg.policy_migrations:
            b[:] = False
        np.fill_diagonal(b, False)
        b &= ~a[None, :]  # a holder needs no copy
        self.remaining[a] -= size
        self.holds[a, k] = True
        holders = np.flatnonzero(a)
        rates = inst.backhaul_rates(k)
        src_of: dict[int, int] = {}
        for m in np.flatnonzero(b.any(axis=0)):
            srcs = np.flatnonzero(b[:, m])
            src_of[int(m)] = int(srcs[np.argmax(rates[srcs, m])])
        users = inst.requesters(k)
        info = {"block": int(k), "cached": int(a.sum()), "offered_migrations": len(src_of)}
        # what was executed, in the agents' action layout: the caching after the mask and the
        # guard; migrations as offered until the delivery says which were used (_record)
        self.executed = self._agent_layout(a, src_of.items())
        if not len(holders):
            self.undelivered[int(k)] = tuple(int(u) for u in users)
            info.update(delay_s=0.0, qos_violation=False, undelivered=len(users))
            return -cfg.r2, info
        if self.defer_delivery:
            # the next observations do not depend on how k is delivered (only on the caching
            # decisions), so a solver may plan every PB's delivery afterwards, in parallel
            self._pending.append((self._t, int(k), holders, src_of))
            info.update(delay_s=None, qos_violation=None, undelivered=0)
            return 0.0, info
        # the delivery of k depends on the instance, k, the holders and the offered copies
        # only: training episodes revisit the same decisions, so it is memoised
        key = self._delivery_key(int(k), holders, src_of)
        got = self._delivery_memo.get(key)
        if got is None:
            got = _deliver(self.oracle, inst, cfg, k, holders, src_of, self.holds[:, k])
            self._delivery_memo.put(key, got)
        return self._record(*got, info)

    def _delivery_key(self, k: int, holders: np.ndarray, src_of: dict) -> tuple:
        """The delivery memo's key: a PB's delivery depends on the instance, the PB, its
        holders and the offered copies only."""
        return (self.inst.fingerprint, k, tuple(holders.tolist()), tuple(sorted(src_of.items())))

    def _agent_layout(self, a: np.ndarray, migrations) -> np.ndarray:
        """(N, N) bool in the action layout of eq. 11 (row n: [a_n, b_{n,m} for m != n
        ascending]) from the caching vector and (destination, source) migrations (none when
        the agents do not choose migrations, ``policy_migrations=False``)."""
        out = np.zeros((self._n, self._n), dtype=bool)
        out[:, 0] = a
        if not self.config.policy_migrations:
            return out
        for m, src in migrations:
            out[src, m + 1 if m < src else m] = True
        return out

    def _record(self, units, migs, score, info: dict) -> tuple[float, dict]:
        cfg = self.config
        if not self.defer_delivery:
            self.executed = self._agent_layout(self.executed[:, 0],
                                               ((mg.dst, mg.src) for mg in migs))
        self.units.extend(units)
        self.migrations.extend(migs)
        lam = _penalised(score)
        finite = score.migration_s + (score.broadcast_s if np.isfinite(score.broadcast_s)
                                      else 0.0)
        self.total_delay_s += finite
        self.delays.append(finite)
        self.qos_violations += int(lam)
        info.update(delay_s=finite, qos_violation=lam, undelivered=0, migrations=len(migs),
                    nodes=len({n for u in units for n in u.nodes}))
        return -cfg.reward_scale * finite - cfg.r1 * float(lam), info

    # ---- deferred delivery (the solver) ------------------------------------------------
    defer_delivery = False  # set by a solver before reset(); training never defers

    def deliver_pending(self, workers: int = 1, per_step: bool = False,
                        second_pass: bool = False):
        """Plan the delivery of every PB whose decisions were recorded with
        ``defer_delivery`` (in step order), with ``workers`` processes (fork; each has its own
        oracle memo; their oracle counters are added to this env's oracle). Deliveries already
        in this env's delivery memo are not planned again, and new ones are memoised. Returns
        the sum of the rewards (eq. 12) those steps would have had; with ``per_step`` a list
        of (step, reward, executed action in the agents' layout) instead, which training uses
        to fill in the replay tuples of an episode whose deliveries ran in parallel.

        ``second_pass`` (the solvers' rollout; planner delivery): the PBs that share a
        requester set above SEARCH_GREEDY_MAX_USERS users are delivered again with the set's
        SECOND_PASS_HINTS cheapest partitions as candidates and the better delivery of each PB
        is kept, as the shared planner's second pass does for the baselines (docs/milp.md
        section 2.2). Never worse per PB: a penalised delivery (QoS or undelivered) never
        replaces an unpenalised one, and otherwise the lower delay wins."""
        pending, self._pending = self._pending, []
        keys = [self._delivery_key(k, h, s) for _t, k, h, s in pending]
        got = [self._delivery_memo.get(key) for key in keys]
        todo = [i for i, g in enumerate(got) if g is None]
        args = [(pending[i][1], pending[i][2], pending[i][3], self.holds[:, pending[i][1]].copy())
                for i in todo]
        for i, res in zip(todo, self._deliver_all(args, workers), strict=True):
            got[i] = res
            self._delivery_memo.put(keys[i], res)
        if second_pass and self.config.delivery == "planner":
            self._second_pass(pending, got, workers)
        out = []
        for (t, k, holders, _s), (units, migs, score) in zip(pending, got, strict=True):
            r = self._record(units, migs, score, {"block": k})[0]
            # the action executed at step t: its caching, and the migrations the delivery used
            out.append((t, r, self._agent_layout(np.isin(np.arange(self._n), holders),
                                                 ((mg.dst, mg.src) for mg in migs))))
        return out if per_step else sum(r for _, r, _ in out)

    def _deliver_all(self, args: list, workers: int) -> list:
        """_deliver on every argument tuple, in ``workers`` forked processes when > 1."""
        if workers > 1 and len(args) > 1:
            from ..workers import process_pool

            global _WORKER_ENV
            _WORKER_ENV = self
            try:
                # workers die with this process (fgamcd_opt/workers.py)
                with process_pool(workers, "fork") as ex:
                    chunk = max(1, len(args) // (4 * workers))
                    results = list(ex.map(_deliver_in_worker, args, chunksize=chunk))
            finally:
                _WORKER_ENV = None
            for *_, stats in results:
                self.oracle.misses += stats[0]
                self.oracle.hits += stats[1]
                self.oracle.solve_time_s += stats[2]
            return [tuple(r[:3]) for r in results]
        return [_deliver(self.oracle, self.inst, self.config, *a) for a in args]

    def _second_pass(self, pending: list, got: list, workers: int) -> None:
        """deliver_pending's second pass, in place on ``got``."""
        sets: dict[tuple[int, ...], list[int]] = {}
        for i, (_t, k, _h, _s) in enumerate(pending):
            users = tuple(int(u) for u in self.inst.requesters(k))
            if len(users) > SEARCH_GREEDY_MAX_USERS:
                sets.setdefault(users, []).append(i)
        args, where = [], []
        for idx in sets.values():
            hints = pooled_partitions((got[i][0], got[i][2].total_s) for i in idx
                                      if not _penalised(got[i][2]))
            if not hints:
                continue
            for i in idx:
                _t, k, holders, src_of = pending[i]
                args.append((k, holders, src_of, self.holds[:, k].copy(), hints))
                where.append(i)
        for i, res in zip(where, self._deliver_all(args, workers), strict=True):
            if (_penalised(res[2]), float(res[2].total_s)) < (_penalised(got[i][2]),
                                                               float(got[i][2].total_s)):
                got[i] = res

    @property
    def guard_covers(self) -> bool:
        """Whether this episode's coverage guard places one copy of every requested PB (set
        at reset; False without the guard): when it cannot (storage too small for one copy
        of each), PBs stay undelivered whatever the policy does, and any extra copy can add
        to them, so such an instance says nothing about a policy (the trainer's greedy
        evaluation leaves it out, ``Trainer.greedy_eval``)."""
        if not self.config.guard or not getattr(self, "_guard_active", False):
            return False
        return self.config.guard_mode not in RESERVING or self._reserve_node is not None

    def _prepare_guard(self) -> None:
        """Whether the guard guards at all this episode: only when one copy of every requested
        PB fits at the start (the tables come from reset)."""
        self._packing: dict[int, int] | None = None
        self._guard_active = self._later_fit(self.remaining, -1)

    def _guard_tables(self, step_sizes: list[float]) -> None:
        """Per step s: the bytes and the largest size of the PBs of steps s.. (index T: none),
        and the steps in decreasing size order (best-fit decreasing)."""
        sizes = np.asarray(step_sizes, dtype=float)
        self._mean_size = float(sizes.mean()) if len(sizes) else 1.0
        self._step_size = sizes.tolist()
        self._bytes_from = np.append(np.cumsum(sizes[::-1])[::-1], 0.0).tolist()
        self._max_from = np.append(np.maximum.accumulate(sizes[::-1])[::-1], 0.0).tolist()
        self._bfd = sorted(range(len(sizes)), key=lambda t: (-self._step_size[t], t))

    def storage_deficit(self) -> float:
        """How many PBs of the steps from now on (the current one included) one copy each
        lacks room for, counted in bytes: max(0, their bytes - free bytes of all nodes) / the
        mean size of the episode's PBs. 0 while storage does not bind; every copy beyond a PB's
        first raises it by its size once storage binds, and leaving a PB uncached lowers it.
        Training's potential-based reward shaping uses Phi(s) = -r2 * storage_deficit()
        (docs/maasn.md section 2.1); fragmentation is ignored (the coverage guard's packing
        check handles it at inference)."""
        t = self._t
        if t >= len(self._step_size):
            return 0.0
        need = self._bytes_from[t] - float(self.remaining.sum())
        return max(0.0, need) / self._mean_size

    def local_deficit(self) -> float:
        """How much of their own later demand the nodes lack room for, in PBs: the sum over
        nodes n of max(0, D_n(k) - C~_n(k)) (bytes of the PBs of steps k.. that users of n
        request, minus n's free bytes) / the mean size of the episode's PBs. A copy of a PB
        that n's users request leaves it unchanged (both drop by the size); a copy of one they
        do not request raises it by its size once n's room is short of its users' demand,
        which is when that copy will push one of their later PBs off n. Training's room price
        (``TrainConfig.room_price``) shapes the reward with Phi(s) = -price * local_deficit()
        (docs/maasn.md section 2.1, item 7)."""
        t = min(self._t, len(self._k_list))
        demand = self._local_demand[t]
        return float(np.maximum(demand - self.remaining, 0.0).sum()) / self._mean_size

    def _later_fit(self, remaining: np.ndarray, t: int) -> bool:
        """Does one copy of each PB of the steps after t fit into ``remaining`` (bytes per
        node)? Best-fit decreasing, so True is a packing; False may miss one (then the guard
        is conservative). Fast path: with items of at most s bytes, any fit rule succeeds
        when their total is at most sum(remaining) - N s (a failing item leaves every node
        with less than s free). A packing found is kept in ``self._packing`` (step -> node;
        None after the fast path) for the guard's last resort."""
        n = len(remaining)
        if t + 1 >= len(self._step_size):
            return True
        if self._bytes_from[t + 1] <= float(remaining.sum()) - n * self._max_from[t + 1]:
            self._packing = None
            return True
        free = remaining.tolist()
        assign = {}
        for s in self._bfd:
            if s <= t:
                continue
            need = self._step_size[s]
            best, best_free = -1, np.inf
            for i in range(n):
                f = free[i]
                if need <= f < best_free:
                    best, best_free = i, f
            if best < 0:
                return False
            free[best] -= need
            assign[s] = best
        self._packing = assign
        return True

    def _guarded(self, k: int, a: np.ndarray, fits: np.ndarray) -> np.ndarray:
        """The coverage guard. ``guard_mode="fallback"``: the policy's copies of PB k are kept
        (most free storage first) as long as one copy of every later PB still fits in the
        storage left (``_later_fit``); if none is kept, k goes to the fitting node with the
        strongest links to its requesters (bounds.py) among those that keep the later PBs
        placeable (or, failing that, the strongest). ``"additive"``: that default copy first,
        then the policy's copies on top under the same check, so a policy only ever adds
        copies to what the guard alone (the ``guard-only`` solver) would do. Either way no
        requested PB ends up cached nowhere when a packing is found."""
        out = np.zeros_like(a)
        rem = self.remaining.copy()
        if self.config.guard_mode in RESERVING and self._reserve_node is not None:
            self._reserved_copies(k, a, fits, rem, out)
            return out
        if self.config.guard_mode in ("additive", *RESERVING):
            self._default_copy(k, fits, rem, out)
            self._keep_copies(k, np.flatnonzero(a & ~out), rem, out)
            return out
        self._keep_copies(k, np.flatnonzero(a), rem, out)
        if not out.any():
            self._default_copy(k, fits, rem, out)
        return out

    def _prepare_reserve(self) -> None:
        """``guard_mode="reserve"``: roll the guard alone (no policy copy) through the episode
        and keep its node per step, ``_reserve_node[t]``, and the bytes its copies of steps
        after t take at each node, ``_reserved_after[t]`` (T x N). None when the guard alone
        does not place every PB (then the additive rule applies)."""
        self._reserve_node = None
        if not self._guard_active:
            return
        inst = self.inst
        sizes = inst.repository.sizes.astype(float)
        rem = self.remaining.copy()
        nodes = []
        for t, k in enumerate(self._k_list):
            self._t = t
            out = np.zeros(len(rem), dtype=bool)
            self._default_copy(int(k), rem >= sizes[k], rem, out)
            if not out.any() or (rem < 0).any():
                nodes = None
                break
            nodes.append(int(np.flatnonzero(out)[0]))
        self._t = 0
        self._prepare_guard()  # _default_copy moved the packing on; start again
        if nodes is None:
            return
        T, n = len(nodes), len(rem)
        per_step = np.zeros((T + 1, n))
        per_step[np.arange(T), nodes] = sizes[self._k_list]
        self._reserve_local = [[] for _ in range(T)]
        if self.config.guard_mode == "reserve-local":
            # guard-fill rule=local's copies, each kept where it leaves the guard's later
            # copies their room (so the whole placement fits, by induction over the steps)
            after = np.cumsum(per_step[::-1], axis=0)[::-1][1:]
            rem = self.remaining.copy()
            for t, k in enumerate(self._k_list):
                size = sizes[k]
                rem[nodes[t]] -= size
                wants = [m for m in np.flatnonzero(self._wants[t] > 0) if m != nodes[t]]
                for m in sorted(wants, key=lambda m: -rem[m]):
                    if rem[m] - size >= after[t, m]:
                        rem[m] -= size
                        per_step[t, m] += size
                        self._reserve_local[t].append(int(m))
        self._reserved_from = np.cumsum(per_step[::-1], axis=0)[::-1]  # steps >= t
        self._reserved_after = self._reserved_from[1:]  # steps > t
        free = self._wants.copy()
        free[np.arange(T), nodes] = 0.0
        for t, local in enumerate(self._reserve_local):
            free[t, local] = 0.0
        self._free_demand = np.cumsum(free[::-1], axis=0)[::-1]
        self._reserve_node = nodes

    def _reserved_copies(self, k: int, a: np.ndarray, fits: np.ndarray, rem: np.ndarray,
                         out: np.ndarray) -> None:
        """``guard_mode="reserve"``: the guard's reserved copy of k, then the policy's copies
        (most free storage first) wherever they leave the guard's later copies their room."""
        size = float(self.inst.repository.sizes[k])
        t = self._t
        g = self._reserve_node[t]
        if rem[g] < size:  # cannot happen while every copy respects the reservation
            self._default_copy(k, fits, rem, out)
        else:
            out[g] = True
            rem[g] -= size
        for m in self._reserve_local[t]:  # reserve-local: the local rule's copies
            if not out[m] and rem[m] >= size:
                out[m] = True
                rem[m] -= size
        after = self._reserved_after[t]
        for n in sorted(np.flatnonzero(a & ~out), key=lambda n: -rem[n]):
            if rem[n] - size >= after[n]:
                out[n] = True
                rem[n] -= size

    def _keep_copies(self, k: int, nodes, rem: np.ndarray, out: np.ndarray) -> None:
        """Keep the copies at ``nodes`` (most free storage first) while the later PBs stay
        placeable (``rem`` and ``out`` updated in place)."""
        size = float(self.inst.repository.sizes[k])
        for n in sorted(nodes, key=lambda n: -rem[n]):
            rem[n] -= size
            if rem[n] >= 0 and (not self._guard_active or self._later_fit(rem, self._t)):
                out[n] = True
            else:
                rem[n] += size

    def _default_copy(self, k: int, fits: np.ndarray, rem: np.ndarray, out: np.ndarray
                      ) -> None:
        """The guard's own copy of k: the fitting node with the strongest links to its
        requesters that keeps the later PBs placeable (``rem`` and ``out`` updated)."""
        if not fits.any():
            return
        size = float(self.inst.repository.sizes[k])
        t = self._t
        # the packing that proved the later PBs placeable at the previous step (None: the fast
        # path proved it, and then any fitting node keeps the fast path true)
        packing = self._packing
        value = BlockData(self.inst, k).link.sum(axis=1)
        cand = sorted(np.flatnonzero(fits), key=lambda n: (-value[n], n))
        for n in cand:
            rem[n] -= size
            if not self._guard_active or self._later_fit(rem, t):
                out[n] = True
                return
            rem[n] += size
        if self._guard_active and packing is not None and t in packing:
            # best-fit decreasing is not monotone: it may fail on the rest although the
            # previous packing still holds; follow that packing (k's node has room by
            # construction and the rest of it stays valid)
            n = packing[t]
            out[n] = True
            rem[n] -= size
            self._packing = {s: m for s, m in packing.items() if s != t}
            return
        out[cand[0]] = True
        rem[cand[0]] -= size

    # ---- results -----------------------------------------------------------------------
    def plan(self, solver: str = "maasn") -> Plan:
        """The plan built so far: cached PBs, used migrations and delivery units."""
        return Plan.from_holds(self.holds, self.migrations, self.units, solver=solver)

    def undelivered_message(self, served=()) -> str:
        """Who is left unserved because a PB was cached nowhere (PBs in ``served``, delivered
        since by another plan, left out)."""
        left = {k: us for k, us in self.undelivered.items() if k not in set(served)}
        users = sorted({u for us in left.values() for u in us})
        if not users:
            return ""
        return (f"{len(left)} requested PB(s) cached nowhere; users not fully "
                "served: " + ", ".join(self.inst.users.ids[u] for u in users))

    def render(self):
        return None

    def close(self):
        return None
