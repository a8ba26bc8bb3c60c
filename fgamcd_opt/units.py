"""Unit conversions. Internally everything is SI: bytes, bits/s, watts, hertz, metres, seconds."""

from __future__ import annotations

import numpy as np

GBPS = 1e9


def dbm_to_watt(dbm):
    """Power in dBm -> watts (43 dBm = 19.95 W, -80 dBm = 1e-11 W)."""
    return 10.0 ** ((np.asarray(dbm, dtype=float) - 30.0) / 10.0)
