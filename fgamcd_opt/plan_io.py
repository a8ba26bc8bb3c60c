"""Plan files (JSON, ``kind: fgamcd-plan``, schema v1): ids instead of indices, beams inline.

Beams are stored as ``{"re": [[...]], "im": [[...]]}`` (len(nodes) x M, physical sqrt(W) units)
or omitted, in which case the evaluator recomputes them with the shared oracle.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import PlanError
from .instance import Instance
from .jsonio import jsonable, read_json, validate_schema, write_json_atomic
from .plan import MODES, DeliveryUnit, Migration, Plan

_ids = {"type": "array", "items": {"type": "string"}}
_matrix = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}

PLAN_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "fgamcd-opt plan, schema version 1",
    "type": "object",
    "properties": {
        "schema_version": {"const": 1},
        "kind": {"const": "fgamcd-plan"},
        "instance": {"type": "object"},
        "solver": {"type": "string"},
        "solver_params": {"type": "object"},
        "metadata": {"type": "object"},
        "cache": {"type": "object", "additionalProperties": _ids},
        "model_copies": {"type": "object", "additionalProperties": _ids},
        "migrations": {"type": "array", "items": {
            "type": "object",
            "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                           "block": {"type": "string"}},
            "required": ["from", "to", "block"], "additionalProperties": False}},
        "units": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "block": {"type": "string"}, "users": _ids, "nodes": _ids,
                "mode": {"enum": list(MODES)}, "slot": {"type": ["integer", "null"]},
                "model": {"type": ["string", "null"]},
                "beamforming": {"type": ["string", "null"]},
                "beams": {"type": ["object", "null"], "properties": {"re": _matrix, "im": _matrix},
                          "required": ["re", "im"], "additionalProperties": False},
            },
            "required": ["block", "users", "nodes"], "additionalProperties": False}},
    },
    "required": ["schema_version", "kind", "cache", "units"],
    "additionalProperties": False,
}


def plan_to_dict(plan: Plan, inst: Instance, with_beams: bool = True,
                 solver_params: dict | None = None) -> dict:
    nid, uid = inst.nodes.ids, inst.users.ids
    bid = [b.id for b in inst.repository.blocks]
    mid = [m.id for m in inst.repository.models]
    units = []
    for u in plan.units:
        d = {"block": bid[u.block], "users": [uid[x] for x in u.users],
             "nodes": [nid[x] for x in u.nodes], "mode": u.mode}
        if u.slot is not None:
            d["slot"] = int(u.slot)
        if u.model is not None:
            d["model"] = mid[u.model]
        if u.beamforming:
            d["beamforming"] = u.beamforming
        if with_beams and u.beams is not None:
            d["beams"] = {"re": np.real(u.beams).tolist(), "im": np.imag(u.beams).tolist()}
        units.append(d)
    out = {
        "schema_version": 1,
        "kind": "fgamcd-plan",
        "instance": {"name": inst.name, "fingerprint": inst.fingerprint},
        "solver": plan.solver,
        "solver_params": solver_params or {},
        "metadata": jsonable(plan.metadata),
        "cache": {nid[n]: [bid[k] for k in sorted(blocks)] for n, blocks in enumerate(plan.cache)},
        "migrations": [{"from": nid[m.src], "to": nid[m.dst], "block": bid[m.block]}
                       for m in plan.migrations],
        "units": units,
    }
    if plan.model_copies is not None:
        out["model_copies"] = {nid[n]: [mid[j] for j in models]
                               for n, models in enumerate(plan.model_copies)}
    return out


def plan_from_dict(data: dict, inst: Instance, file: str = "<plan>") -> Plan:
    validate_schema(data, PLAN_SCHEMA, file, PlanError)
    node_ix = {n: i for i, n in enumerate(inst.nodes.ids)}
    user_ix = {u: i for i, u in enumerate(inst.users.ids)}
    rep = inst.repository

    def look(table, key, path, what):
        if key not in table:
            raise PlanError(file, path, f"{key!r} is not a {what} of instance {inst.name!r}")
        return table[key]

    fp = data.get("instance", {}).get("fingerprint")
    if fp is not None and fp != inst.fingerprint:
        raise PlanError(file, "instance.fingerprint",
                        f"plan was made for instance {fp}, not this one ({inst.fingerprint})")
    cache = [set() for _ in range(inst.n_nodes)]
    for nid, blocks in data["cache"].items():
        n = look(node_ix, nid, f"cache.{nid}", "node")
        cache[n] = {look(rep.block_index, b, f"cache.{nid}[{i}]", "block")
                    for i, b in enumerate(blocks)}
    copies = None
    if "model_copies" in data:
        copies = [[] for _ in range(inst.n_nodes)]
        for nid, models in data["model_copies"].items():
            n = look(node_ix, nid, f"model_copies.{nid}", "node")
            copies[n] = [look(rep.model_index, m, f"model_copies.{nid}[{i}]", "model")
                         for i, m in enumerate(models)]
    migrations = []
    for i, m in enumerate(data.get("migrations", [])):
        p = f"migrations[{i}]"
        migrations.append(Migration(look(node_ix, m["from"], p + ".from", "node"),
                                    look(node_ix, m["to"], p + ".to", "node"),
                                    look(rep.block_index, m["block"], p + ".block", "block")))
    units = []
    for i, u in enumerate(data["units"]):
        p = f"units[{i}]"
        nodes = [look(node_ix, x, f"{p}.nodes[{j}]", "node") for j, x in enumerate(u["nodes"])]
        users = [look(user_ix, x, f"{p}.users[{j}]", "user") for j, x in enumerate(u["users"])]
        beams = None
        if u.get("beams") is not None:
            try:
                re = np.array(u["beams"]["re"], dtype=float)
                im = np.array(u["beams"]["im"], dtype=float)
            except ValueError:
                raise PlanError(file, f"{p}.beams", "rows of different lengths") from None
            if re.shape != im.shape or re.shape != (len(nodes), inst.antennas):
                raise PlanError(file, f"{p}.beams", f"shape {re.shape}/{im.shape}, expected "
                                                    f"({len(nodes)}, {inst.antennas})")
            beams = re + 1j * im
        model = u.get("model")
        units.append(DeliveryUnit(
            block=look(rep.block_index, u["block"], p + ".block", "block"), users=tuple(users),
            nodes=tuple(nodes), mode=u.get("mode", "broadcast"), slot=u.get("slot"),
            model=None if model is None else look(rep.model_index, model, p + ".model", "model"),
            beams=beams, beamforming=u.get("beamforming")))
    return Plan(cache=cache, migrations=migrations, units=units, model_copies=copies,
                solver=data.get("solver", ""), metadata=data.get("metadata", {}))


def load_plan(path: str | os.PathLike, inst: Instance) -> Plan:
    return plan_from_dict(read_json(path, PlanError), inst, file=str(path))


def save_plan(plan: Plan, inst: Instance, path, with_beams: bool = True,
              solver_params: dict | None = None) -> None:
    write_json_atomic(path, plan_to_dict(plan, inst, with_beams, solver_params))
