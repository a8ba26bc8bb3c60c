"""Caching policies a_n(k) shared by several solvers (docs/model.md section 1).

Every function returns what each node stores and never looks at rates or delays beyond the
per-link amplitude bound of :mod:`fgamcd_opt.bounds`; delivery is decided elsewhere (the shared
planner, a solver's own rule).

- :func:`default_caching`: the planner's default (cover every requested PB, then value per byte);
- :func:`trimcaching_placement`: TrimCaching's sharing-aware greedy on cache hit ratio (Qu et al.
  2024), also the no-cooperation baseline's rule with ``users_of_node_only``;
- :func:`coarse_caching`: whole-model copies by popularity (coarse-grained caching);
- :func:`warm_caching`, :func:`repair_storage`: the MILP's MIP start and storage repair.
"""

from __future__ import annotations

import numpy as np

from .bounds import link_amplitude_bound
from .instance import Instance


def default_caching(inst: Instance) -> np.ndarray:
    """The planner's default caching a_n(k) (N, K) for solvers that only decide delivery.

    Value of PB k at node n = sum over its requesters of node n's share of the user's rate bound
    (how much n can contribute to serving k). First every requested PB gets one copy, largest
    PBs first, at the most valuable node that still has room (so nothing requested is cached
    nowhere while storage remains); then PBs are added by value per byte while storage lasts.
    Deterministic; ties broken by index.
    """
    n_nodes = inst.n_nodes
    holds = np.zeros((n_nodes, inst.n_blocks), dtype=bool)
    free = inst.nodes.storage_bytes.astype(float).copy()
    sizes = inst.repository.sizes.astype(float)
    value = np.zeros((n_nodes, inst.n_blocks))
    for k in inst.requested_blocks:
        link = link_amplitude_bound(inst, int(k), inst.requesters(k))  # (N, v)
        share = link / np.maximum(link.sum(axis=0, keepdims=True), 1e-300)
        value[:, k] = share.sum(axis=1)
    for k in sorted((int(k) for k in inst.requested_blocks), key=lambda k: (-sizes[k], k)):
        for n in sorted(range(n_nodes), key=lambda n: (-value[n, k], n)):
            if sizes[k] <= free[n]:
                holds[n, k] = True
                free[n] -= sizes[k]
                break
    cand = sorted((-value[n, k] / sizes[k], n, int(k)) for k in inst.requested_blocks
                  for n in range(n_nodes) if value[n, k] > 0 and not holds[n, k])
    for _, n, k in cand:
        if sizes[k] <= free[n]:
            holds[n, k] = True
            free[n] -= sizes[k]
    return holds


def cooperating_sets(inst) -> list[np.ndarray]:
    """Per user: its own node plus the nodes within the information-exchange radius of it."""
    out = []
    for u in range(inst.n_users):
        n = int(inst.users.node[u])
        out.append(np.flatnonzero(inst.info_exchange[n] | (np.arange(inst.n_nodes) == n)))
    return out


def trimcaching_placement(inst, coop: list[np.ndarray] | None = None,
                          users_of_node_only: bool = False) -> np.ndarray:
    """The greedy hit-ratio placement; returns a_n(k) as an (N, K) bool array.

    ``users_of_node_only``: a user counts only for its own node (no cooperation), which is the
    caching rule of the no-cooperation baseline.

    Each step places the (node n, model j) maximising the gain per added byte (solvers/
    trimcaching.py; ties: larger gain, then smaller n, then smaller j). The gains (unhit users
    of j that n reaches) and added bytes (PBs of j not yet at n) of every pair are kept in two
    (N, J) tables updated incrementally, so a step costs O(N J) instead of a scan of every user
    (the same placements as that scan; metro instances have tens of thousands of users).
    """
    rep = inst.repository
    sizes = rep.sizes.astype(np.int64)
    coop = coop or cooperating_sets(inst)
    holds = np.zeros((inst.n_nodes, inst.n_blocks), dtype=bool)
    free = inst.nodes.storage_bytes.astype(np.int64).copy()
    model = np.asarray(inst.users.model)
    reach = np.zeros((inst.n_nodes, inst.n_users), dtype=bool)  # n in coop set of u
    if users_of_node_only:
        reach[inst.users.node, np.arange(inst.n_users)] = True
    else:
        for u in range(inst.n_users):
            reach[coop[u], u] = True
    models = [np.asarray(m.blocks, dtype=np.int64) for m in rep.models]
    member = rep.membership.astype(np.int64)  # (J, K): 1 where PB k is in model j
    gains = np.zeros((inst.n_nodes, inst.n_models), dtype=np.int64)
    for j in np.unique(model):
        gains[:, j] = reach[:, model == j].sum(axis=1)
    added = np.tile(member @ sizes, (inst.n_nodes, 1))  # (N, J) bytes still missing
    hit = np.zeros(inst.n_users, dtype=bool)
    while True:
        ok = (gains > 0) & (added <= free[:, None])
        if not ok.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(added == 0, np.inf, gains / np.maximum(added, 1))
        cand = ok & (score == score[ok].max())
        cand &= gains == gains[cand].max()
        n, j = (int(a) for a in np.argwhere(cand)[0])  # smallest n, then smallest j
        need = models[j][~holds[n, models[j]]]
        holds[n, need] = True
        free[n] -= int(sizes[need].sum())
        added[n] -= member[:, need] @ sizes[need]
        # every user of model j that can reach n is now hit
        new = ~hit & (model == j) & reach[n]
        hit |= new
        gains[:, j] -= reach[:, new].sum(axis=1)
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
