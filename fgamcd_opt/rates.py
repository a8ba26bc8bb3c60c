r"""Exact worst-case rates: the closed form every component uses (MODEL.md section 3).

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
    signal = np.abs(np.einsum("tnm,tnm->t", channels.conj(), beams))
    margin = np.einsum("tn,tn->t", radius, np.linalg.norm(beams, axis=2))
    return np.maximum(signal - margin, 0.0)


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
    """Shannon rate B log2(1 + a^2 / sigma^2) in bits/s (eq. 6)."""
    snr = np.square(np.asarray(amplitude, dtype=float)) / np.asarray(noise_w, dtype=float)
    return bandwidth_hz * np.log1p(snr) / np.log(2.0)


def worst_case_rates(channels, radius, beams, noise_w, bandwidth_hz) -> np.ndarray:
    """Exact worst-case rate (bits/s) of each served user for one transmission."""
    return rate_from_amplitude(robust_amplitude(channels, radius, beams), noise_w, bandwidth_hz)
