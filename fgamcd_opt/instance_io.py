"""Instance files (JSON, schema v1) and their ``.npz`` sidecars: load with full validation, save.

Every problem is reported as ``InstanceError(file, json_path, message)``, e.g.
``inst.json: users[3].requested_model: 'm61' is not a model of the repository``.
"""

from __future__ import annotations

import os
import stat
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
from .instance import (
    Instance,
    Nodes,
    Users,
    check_memory,
    estimate_memory_bytes,
    json_parse_estimate_bytes,
)
from .jsonio import read_json, validate_schema, write_json_atomic
from .repository import Block, Model, Repository
from .schema import (
    INSTANCE_SCHEMA,
    MAX_CHANNEL_AMPLITUDE,
    MAX_SPECTRAL_EFFICIENCY,
    RANGES,
    range_reason,
)


def _unique_ids(items: list[dict], section: str, file: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, item in enumerate(items):
        ident = item["id"]
        if ident in index:
            raise InstanceError(file, f"{section}[{i}].id",
                                f"duplicate id {ident!r} (also {section}[{index[ident]}].id)")
        index[ident] = i
    return index


_NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # zip local header / empty zip


def _sidecar_path(rel: str, file: str, base_dir: Path, allow_external: bool) -> Path:
    """Resolve the sidecar relative to the instance file's folder. Absolute paths, '..' and
    symlinks leading out of that folder are refused unless ``allow_external``: an instance file
    from elsewhere must not make the loader read arbitrary files of this machine."""
    if "\x00" in rel:
        raise InstanceError(file, "sidecar", "path contains a NUL character")
    p = Path(rel)
    if not allow_external:
        if p.is_absolute() or p.drive:
            raise InstanceError(file, "sidecar", f"{rel!r} is an absolute path; a sidecar must "
                                "lie next to the instance file (pass allow_external_sidecar / "
                                "--allow-external-sidecar to allow it)")
        if ".." in p.parts:
            raise InstanceError(file, "sidecar", f"{rel!r} leaves the instance file's folder "
                                "('..'); pass allow_external_sidecar / --allow-external-sidecar "
                                "to allow it")
    path = base_dir / p
    if not allow_external and path.exists():
        try:
            inside = path.resolve().is_relative_to(base_dir.resolve())
        except OSError:
            inside = False
        if not inside:
            raise InstanceError(file, "sidecar", f"{rel!r} is a link to a file outside the "
                                "instance file's folder; pass allow_external_sidecar / "
                                "--allow-external-sidecar to allow it")
    return path


def _npz_member_shapes(path: Path) -> dict[str, tuple[tuple, np.dtype]]:
    """Shape and dtype of every array in an .npz, read from the headers without loading data
    (so a huge or compressed-bomb array is refused before it is inflated)."""
    out = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if not name.endswith(".npy"):
                continue
            with zf.open(name) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            out[name[:-4]] = (tuple(shape), dtype)
    return out


def _load_sidecar(data: dict, file: str, base_dir: Path, allow_external: bool = False,
                  expected: dict | None = None) -> dict[str, np.ndarray]:
    rel = data.get("sidecar")
    needs = data["channels"]["kind"] == "sidecar" or data["backhaul"]["kind"] == "sidecar"
    if rel is None:
        if needs:
            which = "channels" if data["channels"]["kind"] == "sidecar" else "backhaul"
            raise InstanceError(file, f"{which}.kind",
                                "'sidecar' needs the top-level field 'sidecar' (an .npz path)")
        return {}
    path = _sidecar_path(rel, file, base_dir, allow_external)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InstanceError(file, "sidecar", f"sidecar file {str(path)!r} not found") from None
    except OSError as exc:
        raise InstanceError(file, "sidecar", f"cannot access sidecar {str(path)!r}: "
                                             f"{exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InstanceError(file, "sidecar", f"sidecar {str(path)!r} is not a regular file "
                                             f"({_file_kind(st.st_mode)})")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InstanceError(str(path), "", f"cannot read sidecar: {exc.strerror}") from None
    if not head.startswith(_NPZ_MAGIC):
        what = ("a single .npy array" if head.startswith(b"\x93NUMPY")
                else "pickled data" if head[:1] == b"\x80"
                else "empty" if not head else "not a zip archive")
        raise InstanceError(str(path), "", f"not an .npz archive of named arrays ({what}); "
                                           "write it with numpy.savez")
    try:
        shapes = _npz_member_shapes(path)
        for key, (_, dtype) in shapes.items():
            if dtype.hasobject:
                raise InstanceError(str(path), key, "cannot read: the array holds pickled "
                                                    "Python objects (refused, never unpickled)")
        for key, want in (expected or {}).items():
            if key in shapes and shapes[key][0] != want:
                raise InstanceError(str(path), key, f"shape {shapes[key][0]} does not match the "
                                                    f"instance, expected {want}")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files if key in (expected or npz.files)}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        # allow_pickle=False makes object arrays fail here instead of executing pickled code
        raise InstanceError(str(path), "", f"cannot read .npz sidecar: {exc}") from None
    return arrays


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


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
    if key == "channels" and a.size and float(np.abs(a).max()) > MAX_CHANNEL_AMPLITUDE:
        raise InstanceError(sidecar, key, f"channel amplitude {float(np.abs(a).max()):.3g} "
                                          f"exceeds {MAX_CHANNEL_AMPLITUDE:g} (a passive channel "
                                          "has gain <= 1; larger values make |h|^2 P / noise "
                                          "overflow)")
    return a


_INDENT_MAX_USERS = 1000  # save_instance indents files with at most this many users
_FAST_MIN_USERS = 64  # below this, jsonschema alone is fast enough
_USER_KEYS = frozenset(("id", "position_m", "node", "requested_model", "qos_bps", "noise_w"))


def _in_range(x, name: str) -> bool:
    lo, hi, exclusive, _ = RANGES[name]
    return (type(x) in (int, float) and (x > lo if exclusive else x >= lo) and x <= hi
            and x == x)


def _id_ok(x) -> bool:
    return type(x) is str and 1 <= len(x) <= 200


def _user_ok(ud) -> bool:
    """Conservative: True only when the schema would accept this user (False may be wrong;
    jsonschema then decides)."""
    if type(ud) is not dict or ud.keys() != _USER_KEYS:
        return False
    pos = ud["position_m"]
    return (_id_ok(ud["id"]) and _id_ok(ud["node"]) and _id_ok(ud["requested_model"])
            and type(pos) is list and len(pos) == 2 and _in_range(pos[0], "position_m")
            and _in_range(pos[1], "position_m") and _in_range(ud["qos_bps"], "qos_bps")
            and _in_range(ud["noise_w"], "noise_w"))


def _schema_check(data, file: str) -> None:
    try:
        validate_schema(data, INSTANCE_SCHEMA, file, InstanceError)
    except InstanceError as exc:
        why = range_reason(exc.path) if any(
            w in exc.message for w in ("minimum", "maximum")) else None
        if why is None:
            raise
        raise InstanceError(exc.file, exc.path, f"{exc.message} (allowed {why})") from None


def _relocate(exc: InstanceError, prefix: str, real: str) -> InstanceError:
    path = real + exc.path[len(prefix):] if exc.path.startswith(prefix) else exc.path
    return InstanceError(exc.file, path, exc.message)


def _validate(data, file: str) -> None:
    """The schema with its physical ranges. jsonschema costs ~0.36 ms per user (11 s of the
    12 s load of a 30,000-user file), so large user lists (and per-link error arrays) are
    checked by a direct scan and jsonschema sees one element of each; an element the scan
    doubts is handed to jsonschema alone, which gives the exact message and JSON path."""
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, list) or len(users) < _FAST_MIN_USERS:
        _schema_check(data, file)
        return
    err = data.get("error_shape")
    c = err.get("c") if isinstance(err, dict) else None
    per_link = isinstance(c, list) and len(c) > 0 and all(
        isinstance(row, list) and len(row) > 0 for row in c)
    head = {**data, "users": users[:1]}
    if per_link:
        head["error_shape"] = {**err, "c": [c[0][:1]]}
    _schema_check(head, file)
    for i, ud in enumerate(users):
        if not _user_ok(ud):
            try:
                _schema_check({**head, "users": [ud]}, file)
            except InstanceError as exc:
                raise _relocate(exc, "users[0]", f"users[{i}]") from None
    if per_link:
        for i, row in enumerate(c):
            for j, x in enumerate(row):
                if not _in_range(x, "c"):
                    try:
                        _schema_check({**head, "error_shape": {**err, "c": [[x]]}}, file)
                    except InstanceError as exc:
                        raise _relocate(exc, "error_shape.c[0][0]",
                                        f"error_shape.c[{i}][{j}]") from None


def instance_from_dict(data: dict, file: str = "<instance>", base_dir: str | Path = ".",
                       verify_channels: str = "probe", allow_external_sidecar: bool = False,
                       max_memory: str | int | None = None) -> Instance:
    """Validate ``data`` (schema with physical ranges + cross-references + shapes) and build an
    :class:`Instance`.

    ``verify_channels``: 'probe' checks the recorded fingerprint of the first PBs' generated
    channels, 'full' all of them, 'off' none. ``allow_external_sidecar``: accept a sidecar path
    that is absolute or leaves the instance file's folder. ``max_memory``: memory limit (bytes
    or '4G'; default ${FGAMCD_MAX_MEMORY} or 80% of RAM), checked against an estimate before
    any array is built.
    """
    _validate(data, file)
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
    model_len = [len(md["blocks"]) for md in rep_d["models"]]
    check_memory(estimate_memory_bytes(
        n, u, k, m, requested_pairs=sum(model_len[j] for j in user_model),
        sidecar_channels=data["channels"]["kind"] == "sidecar",
        sidecar_backhaul=data["backhaul"]["kind"] == "sidecar"),
        f"{file}: an instance with N={n}, U={u}, K={k}, M={m}", max_memory)
    bw = float(data["bandwidth_hz"])
    for i, ud in enumerate(users_d):
        if ud["qos_bps"] / bw > MAX_SPECTRAL_EFFICIENCY:
            raise InstanceError(file, f"users[{i}].qos_bps", (
                f"{ud['qos_bps']:g} bit/s over bandwidth_hz {bw:g} is "
                f"{ud['qos_bps'] / bw:.3g} bit/s/Hz, above {MAX_SPECTRAL_EFFICIENCY:g}: it needs "
                "a worst-case SNR above 2^100 (301 dB), which no link reaches"))
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

    expected = {}
    if data["channels"]["kind"] == "sidecar":
        expected["channels"] = (k, n, u, m)
    if data["backhaul"]["kind"] == "sidecar":
        expected["backhaul_bps"] = (k, n, n)
    arrays = _load_sidecar(data, file, Path(base_dir), allow_external_sidecar, expected)
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
        if np.any(ra[off] < 1.0):
            i, j = np.argwhere((ra < 1.0) & off)[0]
            raise InstanceError(file, f"backhaul.rates_bps[{i}][{j}]",
                                "backhaul rate between distinct nodes must be > 0 (at least "
                                f"1 bit/s, got {ra[i, j]:g})")
        backhaul = MatrixBackhaul(ra)
    else:
        ra = _check_array(arrays, "backhaul_bps", (k, n, n), False, sidecar_name, file)
        off = ~np.eye(n, dtype=bool)
        if np.any(ra[:, off] <= 0):
            raise InstanceError(sidecar_name, "backhaul_bps",
                                "backhaul rate between distinct nodes must be > 0")
        lo_b, hi_b = RANGES["low_bps"][:2]
        if ra[:, off].size and not (lo_b <= ra[:, off].min() and ra[:, off].max() <= hi_b):
            raise InstanceError(sidecar_name, "backhaul_bps",
                                f"backhaul rates between distinct nodes must lie in "
                                f"[{lo_b:g}, {hi_b:g}] bit/s ({RANGES['low_bps'][3]})")
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
        got = fingerprint(channels, range(min(int(rec.get("n_blocks", 0)), n_blocks)),
                          max_users=rec.get("max_users"))
        if not fingerprint_matches(rec, got):
            raise InstanceError(
                file, f"channels.fingerprints.{key}",
                "regenerated channels do not match the recorded fingerprint: the file was "
                "edited after generation (nodes, users or channel parameters) or this numpy "
                f"({np.__version__}) draws different random streams; regenerate it with "
                "fgamcd-gen, delete channels.fingerprints to accept the channels as they are "
                "now, or ship the channels in an .npz sidecar")


def load_instance(path: str | os.PathLike, verify_channels: str = "probe",
                  allow_external_sidecar: bool = False,
                  max_memory: str | int | None = None) -> Instance:
    """Read, validate and build an instance file (JSON + optional sidecar).

    The file is checked with ``os.stat`` before it is opened: a FIFO, device or socket is
    refused at once (reading one would block), and a file whose parse would need more memory
    than the limit is refused with the estimate. See :func:`instance_from_dict` for the rest.
    """
    file = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InstanceError(file, "", "file not found") from None
    except OSError as exc:
        raise InstanceError(file, "", f"cannot access file ({exc.strerror})") from None
    except ValueError as exc:  # e.g. an embedded NUL character
        raise InstanceError(repr(file), "", f"invalid path ({exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InstanceError(file, "", "is a directory, expected a JSON file")
    if not stat.S_ISREG(st.st_mode):
        raise InstanceError(file, "", f"is {_file_kind(st.st_mode)}, expected a regular JSON "
                                      "file")
    check_memory(json_parse_estimate_bytes(st.st_size),
                 f"{file}: parsing this {st.st_size / 1e6:.1f} MB instance file", max_memory)
    data = read_json(path, InstanceError)
    return instance_from_dict(data, file=file, base_dir=Path(path).parent,
                              verify_channels=verify_channels,
                              allow_external_sidecar=allow_external_sidecar,
                              max_memory=max_memory)


def instance_to_dict(inst: Instance, with_fingerprints: bool = True) -> dict:
    """The JSON form (schema v1): :meth:`Instance.to_dict`."""
    return inst.to_dict(with_fingerprints)


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
    # one field per line for readable diffs of small instances; large ones compact, because
    # json only uses its C encoder without indentation (30,000 users: 4.0 s -> 0.4 s)
    write_json_atomic(path, d, indent=1 if inst.n_users <= _INDENT_MAX_USERS else None)


def with_recorded_fingerprints(inst: Instance) -> Instance:
    """Compute and attach the channel fingerprints (generators call this before saving)."""
    inst.channel_fingerprints = channel_fingerprints(inst.channels, inst.n_blocks)
    inst.__dict__.pop("fingerprint", None)
    return inst
