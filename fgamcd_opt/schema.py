"""JSON Schema of the instance file format, version 1 (``fgamcd schema`` prints it).

Field names carry their units: ``_bytes``, ``_bps`` (bits/s), ``_w`` (watts), ``_hz``, ``_m``.
Structural rules live here; cross-references (ids), shapes against N/U/K and the sidecar are
checked by :mod:`fgamcd_opt.instance_io`, which reports every problem with its JSON path.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

_pos = {"type": "number", "exclusiveMinimum": 0}
_nonneg = {"type": "number", "minimum": 0}
_id = {"type": "string", "minLength": 1, "maxLength": 200}
_xy = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}


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
        "area_m": {"type": "array", "items": _pos, "minItems": 2, "maxItems": 2},
        "bandwidth_hz": _pos,
        "info_exchange_radius_m": _nonneg,
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
                    "antennas": {"type": "integer", "minimum": 1, "maximum": 4096},
                    "power_max_w": {**_pos, "maximum": 1e9},
                    "storage_bytes": {"type": "integer", "minimum": 0, "maximum": 10**18},
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
                    "qos_bps": _nonneg,
                    "noise_w": _pos,
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
                            "size_bytes": {"type": "integer", "minimum": 1,
                                           "maximum": 10**15},
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
                                  "low_bps": _pos, "high_bps": _pos},
                      ["seed", "low_bps", "high_bps"]),
                _kind("matrix", {"rates_bps": {"type": "array", "items": {
                    "type": "array", "items": _nonneg}}}, ["rates_bps"]),
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
                    "k_factor": _nonneg,
                    "path_loss_db_at_1m": {"type": "number", "maximum": 0},
                    "path_loss_exponent": _pos,
                    "min_distance_m": _pos,
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
                "c": {"oneOf": [_pos, {"type": "array", "items": {
                    "type": "array", "items": _pos}}]},
            },
            "required": ["kind", "c"],
            "additionalProperties": False,
        },
    },
    "required": ["schema_version", "kind", "bandwidth_hz", "nodes", "users", "repository",
                 "backhaul", "channels", "error_shape"],
    "additionalProperties": False,
}
