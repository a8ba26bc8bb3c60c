"""Caching policies a_n(k) shared by several solvers (docs/model.md section 1).

Every function returns what each node stores and never looks at rates or delays beyond the
per-link amplitude bound of :mod:`fgamcd_opt.bounds`; delivery is decided elsewhere (the shared
planner, a solver's own rule).

- :func:`default_caching`: the planner's default (cover every requested PB, then value per byte);
- :func:`trimcaching_placement`: TrimCaching's sharing-aware greedy on cache hit ratio (Qu et al.
  2024), also the no-cooperation baseline's rule with ``users_of_node_only``;
- :func:`coarse_caching`: whole-model copies by popularity (coarse-grained caching);
- :func:`replicate_caching`: every node fills its storage with requested PBs by popularity
  (the ``replicate`` solver, the first policy a user tries);
- :func:`warm_caching`, :func:`repair_storage`, :func:`fill_caching`: the MILP's MIP start,
  storage repair, and the caching its partial groups are planned on.
"""

from __future__ import annotations

import numpy as np

from .bounds import link_amplitude_bound
from .instance import Instance

VALUE_SAMPLE_USERS = 64  # default_caching: larger requester sets are valued from a sample


def default_caching(inst: Instance, progress=None) -> np.ndarray:
    """The planner's default caching a_n(k) (N, K) for solvers that only decide delivery.

    Value of PB k at node n = sum over its requesters of node n's share of the user's rate bound
    (how much n can contribute to serving k). First every requested PB gets one copy, largest
    PBs first, at the most valuable node that still has room (so nothing requested is cached
    nowhere while storage remains); then PBs are added by value per byte while storage lasts.
    Deterministic; ties broken by index. A PB with more than ``VALUE_SAMPLE_USERS`` requesters
    is valued from that many evenly spaced ones, scaled to the whole set (each rate bound needs
    the user's channel: 10^6 users request 1.6e7 (user, PB) pairs). ``progress(fraction,
    message)``, if given, hears about each PB.
    """
    n_nodes = inst.n_nodes
    holds = np.zeros((n_nodes, inst.n_blocks), dtype=bool)
    free = inst.nodes.storage_bytes.astype(float).copy()
    sizes = inst.repository.sizes.astype(float)
    value = _block_values(inst, progress)
    for k in sorted((int(k) for k in inst.requested_blocks), key=lambda k: (-sizes[k], k)):
        for n in sorted(range(n_nodes), key=lambda n: (-value[n, k], n)):
            if sizes[k] <= free[n]:
                holds[n, k] = True
                free[n] -= sizes[k]
                break
    return _fill(inst, holds, value)


def _block_values(inst: Instance, progress=None) -> np.ndarray:
    """(N, K): value of PB k at node n = sum over its requesters of n's share of the user's
    rate bound (0 for PBs nobody requests); a PB with more than ``VALUE_SAMPLE_USERS``
    requesters is valued from that many evenly spaced ones, scaled to the whole set."""
    value = np.zeros((inst.n_nodes, inst.n_blocks))
    blocks = inst.requested_blocks
    for i, k in enumerate(blocks):
        if progress is not None:
            progress(i / len(blocks), f"caching: PB {i}/{len(blocks)}")
        req = inst.requesters(k)
        sample = req
        if len(req) > VALUE_SAMPLE_USERS:
            sample = req[np.unique(np.linspace(0, len(req) - 1, VALUE_SAMPLE_USERS).round()
                                   .astype(np.int64))]
        link = link_amplitude_bound(inst, int(k), sample)  # (N, v)
        share = link / np.maximum(link.sum(axis=0, keepdims=True), 1e-300)
        value[:, k] = share.sum(axis=1) * (len(req) / max(len(sample), 1))
    return value


def _fill(inst: Instance, holds: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Add requested PBs to ``holds`` (in place) by value per byte while storage lasts."""
    sizes = inst.repository.sizes.astype(float)
    free = inst.nodes.storage_bytes.astype(float) - (holds * sizes[None, :]).sum(axis=1)
    cand = sorted((-value[n, k] / sizes[k], n, int(k)) for k in inst.requested_blocks
                  for n in range(inst.n_nodes) if value[n, k] > 0 and not holds[n, k])
    for _, n, k in cand:
        if sizes[k] <= free[n]:
            holds[n, k] = True
            free[n] -= sizes[k]
    return holds


def replicate_caching(inst: Instance, popularity: str = "local") -> np.ndarray:
    """Every node caches requested PBs by popularity until its storage is full (N, K).

    ``popularity="local"``: a node ranks PBs by the requests of its own users first, then by all
    requests (an LFU cache per cell); ``"global"``: by all requests, so every node holds the
    same most popular PBs. Ties: smaller PBs first, then index. A PB that does not fit is
    skipped and the next one tried. Nothing guarantees that every requested PB is cached
    somewhere when storage binds.
    """
    n_nodes = inst.n_nodes
    holds = np.zeros((n_nodes, inst.n_blocks), dtype=bool)
    sizes = inst.repository.sizes.astype(float)
    blocks = np.asarray(inst.requested_blocks, dtype=int)
    if not len(blocks):
        return holds
    total = np.array([len(inst.requesters(k)) for k in blocks])
    local = np.zeros((n_nodes, len(blocks)), dtype=int)
    if popularity == "local":
        for i, k in enumerate(blocks):
            np.add.at(local[:, i], inst.users.node[inst.requesters(k)], 1)
    elif popularity != "global":
        raise ValueError(f"popularity: {popularity!r} is not one of local, global")
    for n in range(n_nodes):
        free = float(inst.nodes.storage_bytes[n])
        order = np.lexsort((blocks, sizes[blocks], -total, -local[n]))
        for i in order:
            k = blocks[i]
            if sizes[k] <= free:
                holds[n, k] = True
                free -= sizes[k]
    return holds


def fill_caching(inst: Instance, holds: np.ndarray) -> np.ndarray:
    """A copy of ``holds`` (N, K) with the storage it leaves free filled as
    :func:`default_caching` fills it: requested PBs by value per byte at the nodes that can
    help serve them. Nothing is evicted, so every delivery possible under ``holds`` stays
    possible (with no more migration). The MILP plans its partial groups on it."""
    return _fill(inst, np.array(holds, dtype=bool), _block_values(inst))


def cooperating_sets(inst) -> list[np.ndarray]:
    """Per user: its own node plus the nodes within the information-exchange radius of it."""
    out = []
    for u in range(inst.n_users):
        n = int(inst.users.node[u])
        out.append(np.flatnonzero(inst.info_exchange[n] | (np.arange(inst.n_nodes) == n)))
    return out


def _reach(inst, coop, users_of_node_only: bool) -> np.ndarray:
    """(N, U) bool: node n is in user u's cooperating set (or is u's node)."""
    node = np.asarray(inst.users.node, dtype=np.int64)
    if users_of_node_only:
        reach = np.zeros((inst.n_nodes, inst.n_users), dtype=bool)
        reach[node, np.arange(inst.n_users)] = True
        return reach
    if coop is None:  # cooperating_sets, vectorised: own node or within the radius of it
        near = np.asarray(inst.info_exchange, dtype=bool) | np.eye(inst.n_nodes, dtype=bool)
        return near[node].T.copy()
    reach = np.zeros((inst.n_nodes, inst.n_users), dtype=bool)
    for u in range(inst.n_users):
        reach[coop[u], u] = True
    return reach


def trimcaching_placement(inst, coop: list[np.ndarray] | None = None,
                          users_of_node_only: bool = False, progress=None) -> np.ndarray:
    """The greedy hit-ratio placement; returns a_n(k) as an (N, K) bool array.

    ``users_of_node_only``: a user counts only for its own node (no cooperation), which is the
    caching rule of the no-cooperation baseline. Each step takes the (node n, model j) of
    largest gain per added byte (gain = not-yet-hit users of j whose cooperating set holds n),
    ties by larger gain, then smaller n, then smaller j; the gains are kept per (model, node)
    and updated as users get hit, so a step costs O(J N K) whatever U. ``progress``: called
    per step.
    """
    rep = inst.repository
    sizes = rep.sizes.astype(np.int64)
    holds = np.zeros((inst.n_nodes, inst.n_blocks), dtype=bool)
    free = inst.nodes.storage_bytes.astype(np.int64).copy()
    reach = _reach(inst, coop, users_of_node_only)
    model = np.asarray(inst.users.model, dtype=np.int64)
    n_models = rep.n_models
    hit = np.zeros(inst.n_users, dtype=bool)
    # gains[j, n]: users of model j not hit yet whose cooperating set holds n
    gains = np.stack([np.bincount(model[reach[n]], minlength=n_models)
                      for n in range(inst.n_nodes)], axis=1).astype(np.int64)
    member = np.zeros((n_models, inst.n_blocks), dtype=np.int64)  # PB k in model j
    for j, m in enumerate(rep.models):
        member[j, list(m.blocks)] = 1
    models = [np.asarray(m.blocks) for m in rep.models]
    j_idx, n_idx = np.meshgrid(np.arange(n_models), np.arange(inst.n_nodes), indexing="ij")
    step = 0
    while True:
        added = member @ (sizes[:, None] * ~holds.T)  # (J, N) bytes a placement would add
        ok = (gains > 0) & (added <= free[None, :])
        if not ok.any():
            break
        with np.errstate(divide="ignore"):
            score = np.where(added == 0, np.inf, gains / np.maximum(added, 1))
        cj, cn = j_idx[ok], n_idx[ok]
        # the largest (score, gain, -n, -j): lexsort's last key is the primary one
        best = np.lexsort((cj, cn, -gains[ok], -score[ok]))[0]
        j, n = int(cj[best]), int(cn[best])
        need = models[j][~holds[n, models[j]]]
        holds[n, need] = True
        free[n] -= int(added[j, n])
        # every user of model j that can reach n is now hit
        newly = (model == j) & reach[n] & ~hit
        hit |= newly
        gains[j] -= reach[:, newly].sum(axis=1)
        step += 1
        if progress is not None:
            progress(float(hit.mean()) if inst.n_users else 1.0, f"caching: step {step}")
    return holds


def coarse_caching(inst) -> list[list[int]]:
    """Whole-model copies per node by local, then global popularity (smaller first on ties)."""
    rep = inst.repository
    global_req = np.bincount(inst.users.model, minlength=inst.n_models)
    copies = []
    for n in range(inst.n_nodes):
        local_req = np.bincount(inst.users.model[inst.users.node == n], minlength=inst.n_models)
        order = sorted(
            (j for j in range(inst.n_models) if global_req[j] > 0),
            key=lambda j: (-local_req[j], -global_req[j], int(rep.model_bytes[j]), j))
        free = int(inst.nodes.storage_bytes[n])
        chosen = []
        for j in order:
            if rep.model_bytes[j] <= free:
                chosen.append(j)
                free -= int(rep.model_bytes[j])
        copies.append(chosen)
    return copies


def warm_caching(inst: Instance, blocks) -> np.ndarray:
    """A MIP-start caching (N, K): :func:`default_caching`, then every PB of ``blocks`` (PB
    indices) that no node caches is placed at the node with the most free plus
    redundant bytes, evicting PBs cached at two or more nodes (largest first) to make room.
    PBs that still do not fit stay uncached (the start is then infeasible and not used)."""
    holds = default_caching(inst).copy()
    sizes = inst.repository.sizes.astype(np.int64)
    free = inst.nodes.storage_bytes.astype(np.int64) - (holds * sizes[None, :]).sum(axis=1)
    for k in sorted((int(b) for b in blocks), key=lambda b: (-int(sizes[b]), b)):
        if holds[:, k].any():
            continue
        copies = holds.sum(axis=0)
        redundant = [np.flatnonzero(holds[n] & (copies > 1)) for n in range(inst.n_nodes)]
        room = free + np.array([int(sizes[r].sum()) for r in redundant])
        n = int(np.argmax(room))
        if room[n] < sizes[k]:
            continue
        for j in sorted(redundant[n].tolist(), key=lambda j: -int(sizes[j])):
            if free[n] >= sizes[k]:
                break
            if holds[:, j].sum() > 1:
                holds[n, j] = False
                free[n] += sizes[j]
        holds[n, k] = True
        free[n] -= sizes[k]
    return holds


def repair_storage(inst: Instance, holds: np.ndarray, keep_blocks=()) -> np.ndarray:
    """Drop cached PBs until every node fits its capacity exactly (HiGHS accepts rows violated
    by its feasibility tolerance). PBs cached elsewhere go first, then the smallest."""
    holds = np.array(holds, dtype=bool)
    sizes = inst.repository.sizes
    cap = inst.nodes.storage_bytes
    for n in range(inst.n_nodes):
        over = int(sizes[holds[n]].sum()) - int(cap[n])
        if over <= 0:
            continue
        cached = np.flatnonzero(holds[n])
        elsewhere = holds[:, cached].sum(axis=0) > 1
        order = sorted(cached.tolist(), key=lambda k: (not elsewhere[list(cached).index(k)],
                                                        int(sizes[k])))
        for k in order:
            if over <= 0:
                break
            holds[n, k] = False
            over -= int(sizes[k])
    return holds
