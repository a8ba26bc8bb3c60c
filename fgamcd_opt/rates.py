r"""Exact worst-case rates and transfer delays: the closed forms every component uses
(docs/model.md sections 2-4).

With one error ellipsoid per link, e_{n,u}^H C_{n,u} e_{n,u} <= 1, each node's error can
independently oppose the signal, so

    min_e |sum_n (h~_n + e_n)^H w_n| = max(0, |sum_n h~_n^H w_n| - sum_n sqrt(w_n^H C_n^{-1} w_n)).

fgamcd-opt supports isotropic shapes C_{n,u} = c_{n,u} I_M (the paper's 1e10 I_M), for which
sqrt(w^H C^{-1} w) = ||w|| / sqrt(c). The kernel below is unit-agnostic: called with physical
channels (amplitude in sqrt(W)) by the evaluator, and with normalised channels by the oracle.
"""

from __future__ import annotations

import numpy as np


def robust_amplitude_pairs(channels: np.ndarray, radius: np.ndarray, beams: np.ndarray
                           ) -> np.ndarray:
    """The closed form for a batch of (transmission, user) pairs.

    Parameters
    ----------
    channels : (T, p, M) complex
        Row t: estimated channels h~_{n,u} of the (up to) p transmitting nodes to pair t's user.
    radius : (T, p) float
        Error radii 1/sqrt(c_{n,u}) (same units as ``channels``); 0 for padding rows.
    beams : (T, p, M) complex
        The beams w_n of pair t's transmission (zero rows pad smaller transmissions).

    Returns
    -------
    (T,) float >= 0: max(0, |sum_n h~_n^H w_n| - sum_n radius_n ||w_n||).
    """
    # Scale each pair's beams to unit peak first: the closed form is homogeneous of degree 1 in
    # the beams, and beams far beyond any power limit (a hostile plan) must not overflow.
    peak = np.abs(beams).max(axis=(1, 2)) if beams.size else np.zeros(len(beams))
    scale = np.where(peak > 0, peak, 1.0)
    b = beams / scale[:, None, None]
    signal = np.abs(np.einsum("tnm,tnm->t", channels.conj(), b))
    margin = np.einsum("tn,tn->t", radius, np.linalg.norm(b, axis=2))
    with np.errstate(over="ignore"):
        return np.maximum(signal - margin, 0.0) * scale


def robust_amplitude(channels: np.ndarray, radius: np.ndarray, beams: np.ndarray) -> np.ndarray:
    """Worst-case received amplitude of each user of one transmission.

    Parameters
    ----------
    channels : (p, v, M) complex
        Estimated channels h~_{n,u} of the p participating nodes to the v served users.
    radius : (p, v) float
        Error radius 1/sqrt(c_{n,u}) of each link (same units as ``channels``).
    beams : (p, M) complex
        Beamformer w_n of each participating node.

    Returns
    -------
    (v,) float, >= 0: max(0, |sum_n h~_{n,u}^H w_n| - sum_n radius_{n,u} ||w_n||).
    """
    v = channels.shape[1]
    return robust_amplitude_pairs(channels.transpose(1, 0, 2), radius.T,
                                  np.broadcast_to(beams, (v, *beams.shape)))


def nominal_amplitude(channels: np.ndarray, beams: np.ndarray) -> np.ndarray:
    """|sum_n h~_{n,u}^H w_n| per user: the amplitude on the estimated channels (no error)."""
    return np.abs(np.einsum("nvm,nm->v", channels.conj(), beams))


def rate_from_amplitude(amplitude, noise_w, bandwidth_hz) -> np.ndarray:
    """Shannon rate B log2(1 + a^2 / sigma^2) in bits/s (eq. 6).

    Computed as B (2 ln a - ln sigma^2 + ln(1 + sigma^2 / a^2)) / ln 2 when a^2 / sigma^2 is large,
    so amplitudes far beyond any physical power give a large finite rate, never an overflow."""
    a = np.abs(np.asarray(amplitude, dtype=float))
    noise = np.asarray(noise_w, dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        snr = np.square(a) / noise
        big = ~(snr < 1e300)
        if np.any(big):
            log_snr = 2.0 * np.log(np.maximum(a, 1e-300)) - np.log(noise)
            ln1p = np.where(big, log_snr + np.log1p(np.exp(-np.minimum(log_snr, 700.0))),
                            np.log1p(np.where(big, 0.0, snr)))
        else:
            ln1p = np.log1p(snr)
    return bandwidth_hz * ln1p / np.log(2.0)


def transfer_delay_s(size_bytes, rate_bps):
    """Time to send ``size_bytes`` at ``rate_bps``: 8 S / R seconds (eq. 7); +inf where
    R <= 0. The one place a delay is computed from a size and a rate (evaluator, planner, MILP,
    oracle, MARL reward). Scalars in, float out; arrays in, array out."""
    bits = 8.0 * np.asarray(size_bytes, dtype=float)
    rate = np.asarray(rate_bps, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(rate > 0, bits / np.where(rate > 0, rate, 1.0), np.inf)
    return float(out) if out.ndim == 0 else out


def link_gain_bound(norms: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """max(0, ||h~_{n,u}|| - radius_{n,u}) per link: a node at unit beam norm contributes at most
    this to a user's worst-case amplitude (Cauchy-Schwarz; docs/model.md section 4). Summed over
    the participating nodes (and scaled by sqrt(P_n)) it is the single-user optimum, attained by
    robust MRT, hence an upper bound for any group containing that user."""
    return np.maximum(np.asarray(norms, dtype=float) - np.asarray(radius, dtype=float), 0.0)


def worst_case_rates(channels, radius, beams, noise_w, bandwidth_hz) -> np.ndarray:
    """Exact worst-case rate (bits/s) of each served user for one transmission."""
    return rate_from_amplitude(robust_amplitude(channels, radius, beams), noise_w, bandwidth_hz)
