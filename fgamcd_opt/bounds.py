r"""Rate bounds no beamformer can beat (used for calibration checks and the MILP lower bound).

For user u served by a set P of nodes with any beams ||w_n||^2 <= P_n, the exact worst-case
amplitude satisfies

    |sum_n h~_n^H w_n| - sum_n ||w_n|| / sqrt(c_n)  <=  sum_n (||h~_n|| - 1/sqrt(c_n)) ||w_n||
                                                  <=  sum_n sqrt(P_n) max(0, ||h~_n|| - 1/sqrt(c_n))

(Cauchy-Schwarz, then each term is largest at full power or zero). This is attained by robust MRT
for a single user, so it is tight for unicast; a multicast group does no better than each of its
members alone, so min over the group is an upper bound on the group's worst-case min-rate. It is
additive over nodes, hence monotone in P.
"""

from __future__ import annotations

import numpy as np

from .instance import Instance
from .rates import link_gain_bound, rate_from_amplitude

LINK_BOUND_CHUNK_USERS = 512  # users whose channels are drawn at once (bounded memory)


def link_amplitude_bound(inst: Instance, k: int, users=None) -> np.ndarray:
    """(N, V) per-link contribution sqrt(P_n) max(0, ||h~_{n,u}(k)|| - 1/sqrt(c_{n,u})) for
    ``users`` (default all U), in sqrt(W) (divide by sigma_u for the normalised amplitude)."""
    users = np.arange(inst.n_users) if users is None else np.asarray(users, dtype=int)
    # in chunks of users: the (N, V, M) channels of a PB's requesters reach gigabytes at metro
    # scale (N = 240, thousands of requesters); the norms are computed per user all the same
    step = LINK_BOUND_CHUNK_USERS
    norms = (np.linalg.norm(inst.channel(k, users), axis=2) if len(users) <= step else
             np.concatenate([np.linalg.norm(inst.channel(k, users[i:i + step]), axis=2)
                             for i in range(0, len(users), step)], axis=1))
    radius = inst.error_radius[:, users]
    return np.sqrt(inst.nodes.power_max_w)[:, None] * link_gain_bound(norms, radius)


def rate_upper_bound(inst: Instance, k: int, nodes, users) -> np.ndarray:
    """(len(users),) bits/s: the best worst-case rate each user could get from ``nodes`` alone."""
    nodes = np.asarray(nodes, dtype=int)
    users = np.asarray(users, dtype=int)
    amp = link_amplitude_bound(inst, k, users)[nodes].sum(axis=0)
    return rate_from_amplitude(amp, inst.users.noise_w[users], inst.bandwidth_hz)


def qos_reachability(inst: Instance) -> dict:
    """Share of requested PBs whose requesters could all meet QoS if every node held the PB and
    served it at full power (an optimistic bound: the true share is at most this), and the share
    of users who could meet QoS alone from all nodes, and users with zero worst-case rate."""
    all_nodes = np.arange(inst.n_nodes)
    reachable = 0
    user_ok = np.zeros(inst.n_users, dtype=bool)
    user_seen = np.zeros(inst.n_users, dtype=bool)
    user_zero = np.zeros(inst.n_users, dtype=bool)
    blocks = inst.requested_blocks
    for k in blocks:
        users = inst.requesters(k)
        ub = rate_upper_bound(inst, k, all_nodes, users)
        ok = ub >= inst.users.qos_bps[users] * (1 - 1e-12)
        reachable += bool(ok.all())
        first = ~user_seen[users]
        user_ok[users[first]] = ok[first]
        user_zero[users[first]] = ub[first] <= 0
        user_seen[users] = True
    n = max(len(blocks), 1)
    u = max(int(user_seen.sum()), 1)
    return {
        "requested_blocks": int(len(blocks)),
        "blocks_qos_reachable_share": reachable / n,
        "users_qos_reachable_share": float(user_ok[user_seen].sum()) / u,
        "users_zero_rate_share": float(user_zero[user_seen].sum()) / u,
    }
