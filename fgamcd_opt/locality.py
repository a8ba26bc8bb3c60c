r"""Locality: which nodes can help which users, and the neighbourhoods a large requester set is
planned in (docs/model.md section 12).

**Reach.** Node n can add to user u's worst-case amplitude for PB k only if its link bound
``max(0, ||h~_{n,u}(k)|| - rho_{n,u})`` (docs/model.md section 4) is positive. If it is zero the
node's term in any transmission is net non-positive: ``|a + b| - r_a - r_b <= |a| - r_a`` when
``|b| = |g^H x_n| <= ||g|| ||x_n|| <= rho ||x_n|| = r_b``. So for a group G, a node whose link
bound is zero for every user of G can be silenced (zero beam) without lowering any user's
worst-case amplitude: the optimum over a cluster equals the optimum over its *useful* nodes,
and a useless node is never worth migrating a PB to. With Table II's numbers (c = 1e10, M = 20)
the mean ``||h~||`` equals the error radius near 585 m and a link is practically never useful
beyond about 850 m (``sqrt(M upsilon d^-alpha) = 1e-5`` and the Rician norm's tail): that is
the *reach* of a node, decided per link by the bound itself, not by a distance cut.

**Neighbourhoods.** The planner's partition search costs grow faster than the group (the exact
DP is exponential, the greedy move search quadratic), so a requester set larger than
``PlannerOptions.local_group`` is first split into neighbourhoods of at most that many users,
planned one after another (copies migrated for one are free for the next): each user's *home*
is the node with the largest link bound among the nodes that can get the PB; users of one home
form a cell; a cell larger than the limit is cut into runs of users in the order of their
direction ``sin(theta)`` seen from the home node (the ULA's line-of-sight response depends only
on it, so neighbours in that order share a beam direction); then cells are visited along a
Hilbert curve through the home nodes' positions and consecutive cells are merged while the
union stays within the limit. Deterministic; cost O(V log V).
"""

from __future__ import annotations

import numpy as np


def useful(link: np.ndarray) -> np.ndarray:
    """(N,) bool: nodes with a positive link bound to at least one of the users (columns of
    ``link``, the (N, V) amplitude bounds of :func:`fgamcd_opt.bounds.link_amplitude_bound`).
    The others can only lower the users' worst-case rates (module docstring)."""
    return np.asarray(link).max(axis=1, initial=0.0) > 0


def hilbert_index(xy: np.ndarray, order: int = 16) -> np.ndarray:
    """Position of each point of ``xy`` (P, 2) along a Hilbert curve through their bounding
    box (2^order cells a side): nearby points get nearby indices."""
    xy = np.asarray(xy, dtype=float)
    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    lo = xy.min(axis=0)
    span = float(np.max(xy.max(axis=0) - lo)) or 1.0
    side = 1 << order
    q = np.minimum(((xy - lo) / span * (side - 1)).round().astype(np.int64), side - 1)
    x, y = q[:, 0].copy(), q[:, 1].copy()
    d = np.zeros(len(xy), dtype=np.int64)
    s = side >> 1
    while s > 0:  # the classic xy -> d conversion, vectorised over the points
        rx = (x & s) > 0
        ry = (y & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        flip = ~ry
        swap_x = np.where(flip & rx, s - 1 - x, x)
        swap_y = np.where(flip & rx, s - 1 - y, y)
        x, y = np.where(flip, swap_y, swap_x), np.where(flip, swap_x, swap_y)
        s >>= 1
    return d


def neighbourhoods(inst, users, link: np.ndarray, candidates, max_size: int
                   ) -> list[tuple[int, ...]]:
    """Split ``users`` (requesters of one PB) into neighbourhoods of at most ``max_size`` users
    (module docstring). ``link``: (N, len(users)) link bounds of those users; ``candidates``:
    the nodes that can get the PB (homes are chosen among them). Every user is in exactly one
    neighbourhood; the order is the Hilbert order of the home nodes."""
    users = np.asarray(users, dtype=np.int64)
    if len(users) <= max_size or max_size < 1:
        return [tuple(int(u) for u in users)]
    cand = np.asarray(sorted(int(n) for n in candidates), dtype=np.int64)
    sub = np.asarray(link)[cand]  # (C, V)
    home = cand[np.argmax(sub, axis=0)]  # first maximum: ties by node index
    # a user no candidate reaches (rate 0 whatever is planned) stays with its own node
    dead = sub.max(axis=0) <= 0
    home = np.where(dead, inst.users.node[users], home)
    node_pos = inst.nodes.positions_m
    homes = np.unique(home)
    curve = hilbert_index(node_pos[homes])
    cells: list[np.ndarray] = []
    for h in homes[np.argsort(curve, kind="stable")]:
        members = users[home == h]
        if len(members) > max_size:
            d = inst.users.positions_m[members] - node_pos[h]
            sin_theta = d[:, 1] / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
            members = members[np.lexsort((members, sin_theta))]
            n_runs = -(-len(members) // max_size)
            cells.extend(np.array_split(members, n_runs))
        else:
            cells.append(members)
    out: list[list[int]] = []
    for c in cells:
        if out and len(out[-1]) + len(c) <= max_size:
            out[-1].extend(int(u) for u in c)
        else:
            out.append([int(u) for u in c])
    return [tuple(sorted(h)) for h in out]
