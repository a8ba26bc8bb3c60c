"""Repository statistics on a hand-built repository with known answers, and invariants on
generated and random repositories."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fgamcd_opt.repository import Block, Model, Repository


@pytest.fixture
def repo() -> Repository:
    """Blocks A=100, B=200, C=300, D=400 B; m0 = (A, B), m1 = (A, C), m2 = (D)."""
    blocks = [Block(i, i, s, "base") for i, s in zip("ABCD", (100, 200, 300, 400), strict=True)]
    models = [Model("m0", "m0", "base", "t0", (0, 1)), Model("m1", "m1", "base", "t1", (0, 2)),
              Model("m2", "m2", "other", None, (3,))]
    return Repository(blocks, models)


def test_sizes_and_indices(repo):
    assert repo.n_blocks == 4 and repo.n_models == 3
    assert repo.block_index == {"A": 0, "B": 1, "C": 2, "D": 3}
    assert repo.model_index == {"m0": 0, "m1": 1, "m2": 2}
    assert repo.membership.tolist() == [[True, True, False, False], [True, False, True, False],
                                        [False, False, False, True]]
    assert repo.model_bytes.tolist() == [300, 400, 400]
    assert repo.block_degree.tolist() == [2, 1, 1, 1]


def test_unique_vs_naive_bytes(repo):
    assert repo.unique_bytes == 1000  # every PB once
    assert repo.naive_bytes == 1100  # A counted twice


def test_shared_fraction(repo):
    np.testing.assert_allclose(repo.shared_fraction(), [100 / 300, 100 / 400, 0.0], rtol=1e-15)


def test_pairwise_reuse(repo):
    r = repo.pairwise_reuse()
    expected = np.array([[1.0, 100 / 300, 0.0], [100 / 400, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(r, expected, rtol=1e-15)
    assert r[0, 1] != r[1, 0]  # not symmetric: normalised by the first model's size


def test_reuse_summary(repo):
    s = repo.reuse_summary()
    assert s["unique_bytes"] == 1000 and s["naive_bytes"] == 1100
    assert s["storage_saving"] == pytest.approx(1 - 1000 / 1100)
    assert s["shared_blocks"] == 1
    assert s["pairs_sharing"] == 2  # ordered pairs (0, 1) and (1, 0)
    assert s["pairwise_reuse_max"] == pytest.approx(1 / 3)
    assert s["pairwise_reuse_mean"] == pytest.approx((1 / 3 + 1 / 4) / 6)
    assert s["reuse_ratio_mean"] == pytest.approx((1 / 3 + 1 / 4) / 3)
    assert s["reuse_ratio_min"] == 0.0 and s["reuse_ratio_max"] == pytest.approx(1 / 3)
    assert (s["block_bytes_min"], s["block_bytes_max"]) == (100, 400)


def test_graph_is_bipartite_with_the_right_edges(repo):
    g = repo.graph()
    assert nx.is_bipartite(g)
    models = {n for n, d in g.nodes(data=True) if d["bipartite"] == 0}
    blocks = {n for n, d in g.nodes(data=True) if d["bipartite"] == 1}
    assert models == {("model", j) for j in range(3)}
    assert blocks == {("block", k) for k in range(4)}
    edges = {(a, b) if a[0] == "model" else (b, a) for a, b in g.edges()}
    assert edges == {(("model", 0), ("block", 0)), (("model", 0), ("block", 1)),
                     (("model", 1), ("block", 0)), (("model", 1), ("block", 2)),
                     (("model", 2), ("block", 3))}
    assert g.edges[("model", 1), ("block", 2)]["position"] == 1
    assert g.edges[("model", 1), ("block", 0)]["position"] == 0
    assert g.nodes[("block", 3)]["size_bytes"] == 400
    assert g.nodes[("model", 2)]["id"] == "m2"
    assert g.degree[("block", 0)] == 2


def test_sharing_graph(repo):
    g = repo.sharing_graph()
    assert set(g.nodes) == {0, 1, 2}
    assert list(g.edges(data=True)) == [(0, 1, {"shared_bytes": 100})]


def _check_invariants(rep: Repository):
    r = rep.pairwise_reuse()
    np.testing.assert_allclose(np.diag(r), 1.0, rtol=1e-12)
    assert np.all(r >= 0) and np.all(r <= 1 + 1e-12)
    sf = rep.shared_fraction()
    assert np.all(sf >= 0) and np.all(sf <= 1 + 1e-12)
    g = rep.graph()
    assert nx.is_bipartite(g)
    assert g.number_of_edges() == sum(len(m.blocks) for m in rep.models)
    assert g.number_of_nodes() == rep.n_blocks + rep.n_models
    used = rep.block_degree > 0
    assert rep.naive_bytes >= int(rep.sizes[used].sum())


def test_invariants_on_generated_repositories(tiny, paper_default):
    for inst in (tiny, paper_default):
        _check_invariants(inst.repository)


@st.composite
def repositories(draw):
    n_blocks = draw(st.integers(1, 8))
    sizes = draw(st.lists(st.integers(1, 10**6), min_size=n_blocks, max_size=n_blocks))
    n_models = draw(st.integers(1, 6))
    models = [draw(st.lists(st.integers(0, n_blocks - 1), min_size=1, max_size=n_blocks,
                            unique=True)) for _ in range(n_models)]
    blocks = [Block(f"k{k}", f"k{k}", s, "b") for k, s in enumerate(sizes)]
    return Repository(blocks, [Model(f"m{j}", f"m{j}", "b", None, tuple(bl))
                               for j, bl in enumerate(models)]), sizes, models


@settings(max_examples=60, deadline=None)
@given(repositories())
def test_statistics_match_brute_force_set_computation(case):
    rep, sizes, models = case
    _check_invariants(rep)
    sets = [set(m) for m in models]
    assert rep.unique_bytes == sum(sizes)
    assert rep.naive_bytes == sum(sizes[k] for m in models for k in m)
    for i, a in enumerate(sets):
        own = sum(sizes[k] for k in a)
        shared = sum(sizes[k] for k in a if any(k in b for j, b in enumerate(sets) if j != i))
        assert rep.shared_fraction()[i] == pytest.approx(shared / own, rel=1e-12)
        for j, b in enumerate(sets):
            assert rep.pairwise_reuse()[i, j] == pytest.approx(
                sum(sizes[k] for k in a & b) / own, rel=1e-12)
