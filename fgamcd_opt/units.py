"""Unit conversions. Internally everything is SI: bytes, bits/s, watts, hertz, metres, seconds."""

from __future__ import annotations

import numpy as np

BITS_PER_BYTE = 8
GBPS = 1e9


def dbm_to_watt(dbm):
    """Power in dBm -> watts (43 dBm = 19.95 W)."""
    return 10.0 ** ((np.asarray(dbm, dtype=float) - 30.0) / 10.0)


def watt_to_dbm(watt):
    """Power in watts -> dBm."""
    return 10.0 * np.log10(np.asarray(watt, dtype=float)) + 30.0


def db_to_linear(db):
    """Power ratio in dB -> linear (-30 dB = 1e-3)."""
    return 10.0 ** (np.asarray(db, dtype=float) / 10.0)


def linear_to_db(x):
    """Linear power ratio -> dB; 0 maps to -inf without a warning."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(x)


def rate_to_snr(rate_bps, bandwidth_hz):
    """SNR needed for a Shannon rate: 2^(R/B) - 1 (linear)."""
    return np.expm1(np.asarray(rate_bps, dtype=float) / bandwidth_hz * np.log(2.0))


def snr_to_rate(snr, bandwidth_hz):
    """Shannon rate B log2(1 + SNR) in bits/s."""
    return bandwidth_hz * np.log1p(np.asarray(snr, dtype=float)) / np.log(2.0)
