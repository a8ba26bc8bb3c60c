"""Shared fixtures: generated instances (session-scoped, never mutated), fresh JSON dicts of them,
and a builder of small hand-made instances with explicit channels for hand-checked numbers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from fgamcd_opt.backhaul import MatrixBackhaul
from fgamcd_opt.channels import ArrayChannels, ErrorShape
from fgamcd_opt.generators import generate
from fgamcd_opt.instance import Instance, Nodes, Users
from fgamcd_opt.instance_io import instance_to_dict
from fgamcd_opt.repository import Block, Model, Repository


@pytest.fixture(scope="session")
def tiny() -> Instance:
    """generate('tiny', seed=1): N=3, U=6, J=4, K=38, M=4. Read-only: do not mutate."""
    return generate("tiny", seed=1)


@pytest.fixture(scope="session")
def _tiny_dict_master(tiny) -> dict:
    return instance_to_dict(tiny)


@pytest.fixture
def tiny_dict(_tiny_dict_master) -> dict:
    """A fresh deep copy of the tiny instance's JSON form (safe to mutate)."""
    return copy.deepcopy(_tiny_dict_master)


@pytest.fixture(scope="session")
def paper_default() -> Instance:
    """generate('paper-default') (~0.3 s; shared by the whole session, read-only)."""
    return generate("paper-default")


def write_json(path: Path, data) -> Path:
    """Write ``data`` as JSON (NaN/Infinity allowed, so tests can plant them)."""
    path = Path(path)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def json_file(tmp_path):
    """json_file(data, name='inst.json') -> path of the written file in tmp_path."""

    def _write(data, name: str = "inst.json") -> Path:
        return write_json(tmp_path / name, data)

    return _write


def build_instance(channels, sizes, models, user_models, user_nodes=None, *, power_w=1.0,
                   storage_bytes=10**12, noise_w=1e-9, qos_bps=0.0, bandwidth_hz=1e6, c=1e8,
                   backhaul_bps=1e7, name="hand") -> Instance:
    """A hand-made instance with explicit channels.

    channels : (K, N, U, M) complex, h~_{n,u}(k); sizes : (K,) bytes; models : list of tuples of
    block indices; user_models : (U,) model index per user; user_nodes : (U,) associated node
    (default 0). Scalars broadcast over nodes/users; ``backhaul_bps`` scalar or (N, N); ``c``
    scalar or (N, U).
    """
    h = np.asarray(channels, dtype=complex)
    k_, n_, u_, m_ = h.shape
    assert len(sizes) == k_
    blocks = [Block(f"b{k}", f"block{k}", int(s), "hand") for k, s in enumerate(sizes)]
    mods = [Model(f"m{j}", f"model{j}", "hand", None, tuple(int(b) for b in bl))
            for j, bl in enumerate(models)]
    nodes = Nodes(
        ids=tuple(f"n{i}" for i in range(n_)),
        positions_m=np.column_stack([np.arange(n_) * 100.0, np.zeros(n_)]),
        antennas=m_,
        power_max_w=np.broadcast_to(np.asarray(power_w, dtype=float), (n_,)).copy(),
        storage_bytes=np.broadcast_to(np.asarray(storage_bytes, dtype=np.int64), (n_,)).copy(),
    )
    users = Users(
        ids=tuple(f"u{i}" for i in range(u_)),
        positions_m=np.column_stack([np.arange(u_) * 10.0, np.full(u_, 50.0)]).reshape(u_, 2),
        node=np.asarray(user_nodes if user_nodes is not None else [0] * u_, dtype=np.int64),
        model=np.asarray(user_models, dtype=np.int64).reshape(u_),
        qos_bps=np.broadcast_to(np.asarray(qos_bps, dtype=float), (u_,)).copy(),
        noise_w=np.broadcast_to(np.asarray(noise_w, dtype=float), (u_,)).copy(),
    )
    bh = np.asarray(backhaul_bps, dtype=float)
    backhaul = MatrixBackhaul(np.full((n_, n_), float(bh)) if bh.ndim == 0 else bh)
    return Instance(name=name, nodes=nodes, users=users, repository=Repository(blocks, mods),
                    bandwidth_hz=float(bandwidth_hz), backhaul=backhaul,
                    channels=ArrayChannels(h), error=ErrorShape(c, n_, u_))


@pytest.fixture
def make_instance():
    """The :func:`build_instance` factory."""
    return build_instance
