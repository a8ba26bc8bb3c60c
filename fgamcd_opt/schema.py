"""JSON Schema of the instance file format, version 1 (``fgamcd schema`` prints it).

Field names carry their units: ``_bytes``, ``_bps`` (bits/s), ``_w`` (watts), ``_hz``, ``_m``.
Structural rules live here; cross-references (ids), shapes against N/U/K and the sidecar are
checked by :mod:`fgamcd_opt.instance_io`, which reports every problem with its JSON path.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

_id = {"type": "string", "minLength": 1, "maxLength": 200}

# Physical ranges: (minimum, maximum, exclusive minimum?, why). Generous (every scenario of the
# paper sits well inside), but they keep every derived quantity (rates B log2(1 + SNR), 2^(Q/B),
# 8 S / R, normalised channels h / sigma) finite: `bandwidth_hz: 1e308` overflowed the rates and
# `noise_w: 5e-324` gave all-zero beams before these checks. The loader appends the reason to
# the error message; `fgamcd schema` shows it as each field's description.
RANGES: dict[str, tuple[float, float, bool, str]] = {
    "bandwidth_hz": (1.0, 1e12, False, "1 Hz to 1 THz: every radio channel lies in this range; "
                     "beyond it the rates B log2(1 + SNR) leave the float range"),
    "area_m": (0.0, 1e7, True, "a side of at most 10,000 km"),
    "info_exchange_radius_m": (0.0, 1e7, False, "0 to 10,000 km"),
    "position_m": (-1e7, 1e7, False, "within 10,000 km of the origin: no edge network is "
                   "larger, and the path loss d^-alpha of farther links underflows"),
    "antennas": (1, 4096, False, "1 to 4,096 antennas per node (massive MIMO arrays have "
                 "hundreds)"),
    "power_max_w": (1e-9, 1e6, False, "-60 dBm to 90 dBm (1 MW, a broadcast transmitter); "
                    "outside it the normalised beams underflow or overflow"),
    "storage_bytes": (0, 10**18, False, "0 to 1 EB"),
    "qos_bps": (0.0, 1e13, False, "0 to 10 Tbps"),
    "noise_w": (1e-24, 1.0, False, "1e-24 W (below the thermal noise of 1 Hz at 0.1 K) to 1 W: "
                "a smaller noise makes every channel look infinitely strong (5e-324 gave "
                "all-zero beams and zero rates), a larger one is no receiver"),
    "size_bytes": (1, 10**15, False, "1 B to 1 PB per parameter block"),
    "low_bps": (1.0, 1e16, False, "backhaul of 1 bit/s to 10 Pbps: 8 S / R stays finite"),
    "high_bps": (1.0, 1e16, False, "backhaul of 1 bit/s to 10 Pbps: 8 S / R stays finite"),
    "rates_bps": (0.0, 1e16, False, "backhaul of 1 bit/s to 10 Pbps between distinct nodes "
                  "(the diagonal is ignored)"),
    "k_factor": (0.0, 1e6, False, "Rician K-factor 0 (Rayleigh) to 1e6 (pure line of sight)"),
    "path_loss_db_at_1m": (-300.0, 0.0, False, "-300 dB to 0 dB at 1 m (a passive channel "
                           "does not amplify)"),
    "path_loss_exponent": (0.0, 10.0, True, "0 to 10 (free space 2, dense urban up to 6)"),
    "min_distance_m": (1e-3, 1e6, False, "1 mm to 1,000 km"),
    "c": (1e-30, 1e300, False, "error radius 1/sqrt(c) between 1e-150 and 1e15 channel-amplitude "
          "units; smaller c make the radius squared overflow"),
}
# Q_u / B above this needs a worst-case SNR of 2^100 = 1.3e30 (301 dB), which no radio link
# reaches; above 1024 the required SNR 2^(Q/B) - 1 is not even a float (checked by the loader).
MAX_SPECTRAL_EFFICIENCY = 100.0
# |h| of a sidecar channel: a passive channel has gain <= 1; 1e3 leaves room for unnormalised
# units while |h|^2 P / sigma^2 stays finite (checked by the loader).
MAX_CHANNEL_AMPLITUDE = 1e3


def _num(name: str, integer: bool = False) -> dict:
    lo, hi, exclusive, why = RANGES[name]
    out = {"type": "integer" if integer else "number",
           "exclusiveMinimum" if exclusive else "minimum": lo, "maximum": hi,
           "description": f"range [{lo:g}, {hi:g}]: {why}"}
    if exclusive:
        out["description"] = f"range ({lo:g}, {hi:g}]: {why}"
    return out


def range_reason(json_path: str) -> str | None:
    """Why the field at ``json_path`` (e.g. 'users[3].noise_w', 'nodes[0].position_m[1]') has
    its range, or None when it has no physical range."""
    import re

    names = [p for p in re.split(r"[.\[\]]", json_path) if p and not p.isdigit()]
    for name in reversed(names):
        if name in RANGES:
            return RANGES[name][3]
    return None


_xy = {"type": "array", "items": _num("position_m"), "minItems": 2, "maxItems": 2}


def _kind(name: str, props: dict, required: list[str]) -> dict:
    return {
        "if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
        "then": {
            "properties": {"kind": {"const": name}, **props},
            "required": ["kind", *required],
            "additionalProperties": False,
        },
    }


_fingerprint = {
    "type": "object",
    "properties": {
        "algorithm": {"type": "string"},
        "n_blocks": {"type": "integer", "minimum": 0},
        "values": {"type": "array", "items": {"type": "number"}},
        "scale": {"type": "number"},
        "max_users": {"type": "integer", "minimum": 1,
                      "description": "users per PB covered (evenly spaced); absent: all users"},
    },
    "required": ["algorithm", "n_blocks", "values", "scale"],
    "additionalProperties": False,
}

_fingerprints = {"type": "object", "properties": {"probe": _fingerprint, "full": _fingerprint},
                 "additionalProperties": False}

INSTANCE_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://fgamcd-opt.example/schema/instance-v1.json",
    "title": "fgamcd-opt instance, schema version 1",
    "type": "object",
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "kind": {"const": "fgamcd-instance"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "provenance": {"type": "object"},
        "area_m": {"type": "array", "items": _num("area_m"), "minItems": 2, "maxItems": 2},
        "bandwidth_hz": _num("bandwidth_hz"),
        "info_exchange_radius_m": _num("info_exchange_radius_m"),
        "sidecar": {"type": "string", "minLength": 1,
                    "description": "path of an .npz file, relative to the instance file"},
        "nodes": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "id": _id,
                    "position_m": _xy,
                    "antennas": _num("antennas", integer=True),
                    "power_max_w": _num("power_max_w"),
                    "storage_bytes": _num("storage_bytes", integer=True),
                },
                "required": ["id", "position_m", "antennas", "power_max_w", "storage_bytes"],
                "additionalProperties": False,
            },
        },
        "users": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": _id,
                    "position_m": _xy,
                    "node": _id,
                    "requested_model": _id,
                    "qos_bps": _num("qos_bps"),
                    "noise_w": _num("noise_w"),
                },
                "required": ["id", "position_m", "node", "requested_model", "qos_bps", "noise_w"],
                "additionalProperties": False,
            },
        },
        "repository": {
            "type": "object",
            "properties": {
                "blocks": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": _id,
                            "name": {"type": "string"},
                            "size_bytes": _num("size_bytes", integer=True),
                            "base_model": {"type": "string"},
                        },
                        "required": ["id", "size_bytes"],
                        "additionalProperties": False,
                    },
                },
                "models": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": _id,
                            "name": {"type": "string"},
                            "base_model": {"type": "string"},
                            "task": {"type": ["string", "null"]},
                            "blocks": {"type": "array", "items": _id, "minItems": 1},
                        },
                        "required": ["id", "blocks"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["blocks", "models"],
            "additionalProperties": False,
        },
        "backhaul": {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"enum": ["uniform", "matrix", "sidecar"]}},
            "allOf": [
                _kind("uniform", {"seed": {"type": "integer", "minimum": 0},
                                  "low_bps": _num("low_bps"),
                                  "high_bps": _num("high_bps")},
                      ["seed", "low_bps", "high_bps"]),
                _kind("matrix", {"rates_bps": {"type": "array", "items": {
                    "type": "array", "items": _num("rates_bps")}}}, ["rates_bps"]),
                _kind("sidecar", {}, []),
            ],
        },
        "channels": {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": {"enum": ["rician", "sidecar"]}},
            "allOf": [
                _kind("rician", {
                    "seed": {"type": "integer", "minimum": 0},
                    "k_factor": _num("k_factor"),
                    "path_loss_db_at_1m": _num("path_loss_db_at_1m"),
                    "path_loss_exponent": _num("path_loss_exponent"),
                    "min_distance_m": _num("min_distance_m"),
                    "array": {"const": "ula-half-wavelength"},
                    "fingerprints": _fingerprints,
                }, ["seed", "k_factor", "path_loss_db_at_1m", "path_loss_exponent"]),
                _kind("sidecar", {"fingerprints": _fingerprints}, []),
            ],
        },
        "error_shape": {
            "type": "object",
            "properties": {
                "kind": {"const": "isotropic"},
                "c": {"oneOf": [_num("c"), {"type": "array", "items": {
                    "type": "array", "items": _num("c")}}]},
            },
            "required": ["kind", "c"],
            "additionalProperties": False,
        },
    },
    "required": ["schema_version", "kind", "bandwidth_hz", "nodes", "users", "repository",
                 "backhaul", "channels", "error_shape"],
    "additionalProperties": False,
}
