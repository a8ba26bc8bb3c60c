"""Instance files (JSON, schema v1) and their ``.npz`` sidecars: load with full validation, save.

Every problem is reported as ``InstanceError(file, json_path, message)``, e.g.
``inst.json: users[3].requested_model: 'm61' is not a model of the repository``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from .backhaul import ArrayBackhaul, MatrixBackhaul, UniformBackhaul
from .channels import (
    ArrayChannels,
    ErrorShape,
    RicianChannels,
    channel_fingerprints,
    fingerprint,
    fingerprint_matches,
)
from .errors import InstanceError
from .instance import Instance, Nodes, Users
from .jsonio import read_json, validate_schema, write_json_atomic
from .repository import Block, Model, Repository
from .schema import INSTANCE_SCHEMA, SCHEMA_VERSION


def _unique_ids(items: list[dict], section: str, file: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, item in enumerate(items):
        ident = item["id"]
        if ident in index:
            raise InstanceError(file, f"{section}[{i}].id",
                                f"duplicate id {ident!r} (also {section}[{index[ident]}].id)")
        index[ident] = i
    return index


def _load_sidecar(data: dict, file: str, base_dir: Path) -> dict[str, np.ndarray]:
    rel = data.get("sidecar")
    needs = data["channels"]["kind"] == "sidecar" or data["backhaul"]["kind"] == "sidecar"
    if rel is None:
        if needs:
            which = "channels" if data["channels"]["kind"] == "sidecar" else "backhaul"
            raise InstanceError(file, f"{which}.kind",
                                "'sidecar' needs the top-level field 'sidecar' (an .npz path)")
        return {}
    path = base_dir / rel
    if not path.is_file():
        raise InstanceError(file, "sidecar", f"sidecar file {str(path)!r} not found")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InstanceError(str(path), "", "sidecar must be an .npz archive of named "
                                               "arrays (got a single .npy array)")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        # allow_pickle=False makes object arrays fail here instead of executing pickled code
        raise InstanceError(str(path), "", f"cannot read .npz sidecar: {exc}") from None
    return arrays


def _check_array(arrays: dict, key: str, shape: tuple, complex_ok: bool, sidecar: str,
                 file: str) -> np.ndarray:
    if key not in arrays:
        raise InstanceError(sidecar, key, f"array {key!r} missing from the sidecar "
                                          f"(needed by {file})")
    a = arrays[key]
    if a.dtype.kind not in ("f", "i", "u") + (("c",) if complex_ok else ()):
        raise InstanceError(sidecar, key, f"dtype {a.dtype} is not numeric"
                                          + ("" if complex_ok else " real"))
    if a.shape != shape:
        raise InstanceError(sidecar, key, f"shape {a.shape} does not match the instance, "
                                          f"expected {shape}")
    if not np.all(np.isfinite(a)):
        raise InstanceError(sidecar, key, "contains NaN or infinite values")
    return a


def instance_from_dict(data: dict, file: str = "<instance>", base_dir: str | Path = ".",
                       verify_channels: str = "probe") -> Instance:
    """Validate ``data`` (schema + cross-references + shapes) and build an :class:`Instance`.

    ``verify_channels``: 'probe' checks the recorded fingerprint of the first PBs' generated
    channels, 'full' all of them, 'off' none.
    """
    validate_schema(data, INSTANCE_SCHEMA, file, InstanceError)
    nodes_d, users_d, rep_d = data["nodes"], data["users"], data["repository"]
    node_ix = _unique_ids(nodes_d, "nodes", file)
    _unique_ids(users_d, "users", file)
    block_ix = _unique_ids(rep_d["blocks"], "repository.blocks", file)
    model_ix = _unique_ids(rep_d["models"], "repository.models", file)

    m0 = nodes_d[0]["antennas"]
    for i, nd in enumerate(nodes_d):
        if nd["antennas"] != m0:
            raise InstanceError(file, f"nodes[{i}].antennas",
                                f"{nd['antennas']} differs from nodes[0].antennas = {m0}; "
                                "schema v1 needs the same antenna count at every node")

    models = []
    for j, md in enumerate(rep_d["models"]):
        seen: dict[str, int] = {}
        idx = []
        for p, bid in enumerate(md["blocks"]):
            if bid not in block_ix:
                raise InstanceError(file, f"repository.models[{j}].blocks[{p}]",
                                    f"{bid!r} is not a block of the repository")
            if bid in seen:
                raise InstanceError(file, f"repository.models[{j}].blocks[{p}]",
                                    f"block {bid!r} listed twice (also at position {seen[bid]})")
            seen[bid] = p
            idx.append(block_ix[bid])
        models.append(Model(md["id"], md.get("name", md["id"]), md.get("base_model", ""),
                            md.get("task"), tuple(idx)))
    blocks = [Block(b["id"], b.get("name", b["id"]), int(b["size_bytes"]),
                    b.get("base_model", "")) for b in rep_d["blocks"]]
    repository = Repository(blocks, models)

    user_node, user_model = [], []
    for i, ud in enumerate(users_d):
        if ud["node"] not in node_ix:
            raise InstanceError(file, f"users[{i}].node", f"{ud['node']!r} is not a node id")
        if ud["requested_model"] not in model_ix:
            raise InstanceError(file, f"users[{i}].requested_model",
                                f"{ud['requested_model']!r} is not a model of the repository")
        user_node.append(node_ix[ud["node"]])
        user_model.append(model_ix[ud["requested_model"]])

    n, u, k, m = len(nodes_d), len(users_d), len(blocks), m0
    nodes = Nodes(
        ids=tuple(nd["id"] for nd in nodes_d),
        positions_m=np.array([nd["position_m"] for nd in nodes_d], dtype=float),
        antennas=int(m0),
        power_max_w=np.array([nd["power_max_w"] for nd in nodes_d], dtype=float),
        storage_bytes=np.array([nd["storage_bytes"] for nd in nodes_d], dtype=np.int64),
    )
    users = Users(
        ids=tuple(ud["id"] for ud in users_d),
        positions_m=np.array([ud["position_m"] for ud in users_d], dtype=float).reshape(u, 2),
        node=np.array(user_node, dtype=np.int64),
        model=np.array(user_model, dtype=np.int64),
        qos_bps=np.array([ud["qos_bps"] for ud in users_d], dtype=float),
        noise_w=np.array([ud["noise_w"] for ud in users_d], dtype=float),
    )

    # error shapes
    c = data["error_shape"]["c"]
    if isinstance(c, list):
        if len(c) != n or any(len(row) != u for row in c):
            shape = (len(c), len(c[0]) if c else 0)
            raise InstanceError(file, "error_shape.c",
                                f"per-link array has shape {shape}, expected (N, U) = ({n}, {u})")
    error = ErrorShape(c, n, u)

    arrays = _load_sidecar(data, file, Path(base_dir))
    sidecar_name = str(Path(base_dir) / data["sidecar"]) if "sidecar" in data else file

    bh = data["backhaul"]
    if bh["kind"] == "uniform":
        if bh["low_bps"] > bh["high_bps"]:
            raise InstanceError(file, "backhaul.low_bps",
                                f"low_bps {bh['low_bps']} exceeds high_bps {bh['high_bps']}")
        backhaul = UniformBackhaul(bh["seed"], bh["low_bps"], bh["high_bps"], n)
    elif bh["kind"] == "matrix":
        r = bh["rates_bps"]
        if len(r) != n or any(len(row) != n for row in r):
            raise InstanceError(file, "backhaul.rates_bps", f"expected an N x N = {n} x {n} "
                                                            "matrix")
        ra = np.array(r, dtype=float)
        off = ~np.eye(n, dtype=bool)
        if np.any(ra[off] <= 0):
            i, j = np.argwhere((ra <= 0) & off)[0]
            raise InstanceError(file, f"backhaul.rates_bps[{i}][{j}]",
                                "backhaul rate between distinct nodes must be > 0")
        backhaul = MatrixBackhaul(ra)
    else:
        ra = _check_array(arrays, "backhaul_bps", (k, n, n), False, sidecar_name, file)
        off = ~np.eye(n, dtype=bool)
        if np.any(ra[:, off] <= 0):
            raise InstanceError(sidecar_name, "backhaul_bps",
                                "backhaul rate between distinct nodes must be > 0")
        backhaul = ArrayBackhaul(ra)

    ch = data["channels"]
    if ch["kind"] == "rician":
        channels = RicianChannels(
            ch["seed"], nodes.positions_m, users.positions_m, m, k_factor=ch["k_factor"],
            path_loss_db_at_1m=ch["path_loss_db_at_1m"],
            path_loss_exponent=ch["path_loss_exponent"],
            min_distance_m=ch.get("min_distance_m", 1.0))
    else:
        arr = _check_array(arrays, "channels", (k, n, u, m), True, sidecar_name, file)
        channels = ArrayChannels(arr.astype(complex))
    fps = ch.get("fingerprints", {})
    _verify_channels(channels, fps, k, verify_channels, file)

    area = tuple(data.get("area_m", (1000.0, 1000.0)))
    return Instance(
        name=data.get("name", Path(file).stem),
        nodes=nodes, users=users, repository=repository, bandwidth_hz=float(data["bandwidth_hz"]),
        backhaul=backhaul, channels=channels, error=error, area_m=area,
        info_exchange_radius_m=float(data.get("info_exchange_radius_m", 500.0)),
        description=data.get("description", ""), provenance=data.get("provenance", {}),
        channel_fingerprints=fps, source_file=file if file != "<instance>" else None,
    )


def _verify_channels(channels, fps: dict, n_blocks: int, mode: str, file: str) -> None:
    if mode == "off" or not fps:
        return
    which = ["probe"] if mode == "probe" else ["probe", "full"]
    for key in which:
        rec = fps.get(key)
        if rec is None:
            continue
        got = fingerprint(channels, range(min(int(rec.get("n_blocks", 0)), n_blocks)))
        if not fingerprint_matches(rec, got):
            raise InstanceError(
                file, f"channels.fingerprints.{key}",
                "regenerated channels do not match the recorded fingerprint: the file was "
                "edited after generation (nodes, users or channel parameters) or this numpy "
                f"({np.__version__}) draws different random streams; regenerate it with "
                "fgamcd-gen, delete channels.fingerprints to accept the channels as they are "
                "now, or ship the channels in an .npz sidecar")


def load_instance(path: str | os.PathLike, verify_channels: str = "probe") -> Instance:
    """Read, validate and build an instance file (JSON + optional sidecar)."""
    file = str(path)
    data = read_json(path, InstanceError)
    return instance_from_dict(data, file=file, base_dir=Path(path).parent,
                              verify_channels=verify_channels)


def instance_to_dict(inst: Instance, with_fingerprints: bool = True) -> dict:
    """The JSON form (schema v1). Sidecar arrays are not included; see :func:`save_instance`."""
    rep = inst.repository
    ch = inst.channels.spec()
    if with_fingerprints and inst.channel_fingerprints:
        ch["fingerprints"] = inst.channel_fingerprints
    d = {
        "schema_version": SCHEMA_VERSION,
        "kind": "fgamcd-instance",
        "name": inst.name,
        "description": inst.description,
        "provenance": inst.provenance,
        "area_m": [float(a) for a in inst.area_m],
        "bandwidth_hz": inst.bandwidth_hz,
        "info_exchange_radius_m": inst.info_exchange_radius_m,
        "nodes": [
            {"id": inst.nodes.ids[i], "position_m": inst.nodes.positions_m[i].tolist(),
             "antennas": inst.nodes.antennas, "power_max_w": float(inst.nodes.power_max_w[i]),
             "storage_bytes": int(inst.nodes.storage_bytes[i])}
            for i in range(inst.n_nodes)
        ],
        "users": [
            {"id": inst.users.ids[i], "position_m": inst.users.positions_m[i].tolist(),
             "node": inst.nodes.ids[inst.users.node[i]],
             "requested_model": rep.models[inst.users.model[i]].id,
             "qos_bps": float(inst.users.qos_bps[i]), "noise_w": float(inst.users.noise_w[i])}
            for i in range(inst.n_users)
        ],
        "repository": {
            "blocks": [{"id": b.id, "name": b.name, "size_bytes": b.size_bytes,
                        "base_model": b.base_model} for b in rep.blocks],
            "models": [{"id": m.id, "name": m.name, "base_model": m.base_model, "task": m.task,
                        "blocks": [rep.blocks[k].id for k in m.blocks]} for m in rep.models],
        },
        "backhaul": inst.backhaul.spec(),
        "channels": ch,
        "error_shape": inst.error.spec(),
    }
    if ch["kind"] == "sidecar" or d["backhaul"]["kind"] == "sidecar":
        d["sidecar"] = Path(inst.source_file).with_suffix(".npz").name if inst.source_file \
            else "channels.npz"
    return d


def save_instance(inst: Instance, path: str | os.PathLike) -> None:
    """Write the instance JSON atomically (and its ``.npz`` sidecar when it has array data)."""
    path = Path(path)
    d = instance_to_dict(inst)
    if "sidecar" in d:
        side = path.with_suffix(".npz")
        d["sidecar"] = side.name
        arrays = {}
        if getattr(inst.channels, "kind", "") == "sidecar":
            arrays["channels"] = inst.channels.array
        if getattr(inst.backhaul, "kind", "") == "sidecar":
            arrays["backhaul_bps"] = np.where(np.isinf(inst.backhaul.array), 0.0,
                                              inst.backhaul.array)
        tmp = side.with_name(f".{side.name}.tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, side)
    write_json_atomic(path, d)


def with_recorded_fingerprints(inst: Instance) -> Instance:
    """Compute and attach the channel fingerprints (generators call this before saving)."""
    inst.channel_fingerprints = channel_fingerprints(inst.channels, inst.n_blocks)
    inst.__dict__.pop("fingerprint", None)
    return inst
