"""The target-domain EASE neighbours behind softmap's smoothing step, against plain numpy."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from coldbridge_plugins.graph import init
from coldbridge_trainer.strategies.ease import ease_neighbours, smooth, smooth_nodes
from onnx import TensorProto, helper


def _interactions(
    seed: int = 0, users: int = 300, items: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # two item communities, so that EASE has real structure to find
    group = rng.integers(0, 2, users)
    rows, cols = [], []
    for u in range(users):
        pool = np.arange(items // 2) + (items // 2) * group[u]
        for i in rng.choice(pool, size=rng.integers(2, 8), replace=False):
            rows.append(u)
            cols.append(int(i))
    return np.array(rows), np.array(cols)


def _ease_numpy(users: np.ndarray, items: np.ndarray, n: int, lam: float) -> np.ndarray:
    x = np.zeros((users.max() + 1, n))
    x[users, items] = 1.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(n))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def test_neighbours_are_the_top_k_positive_ease_weights() -> None:
    users, items = _interactions()
    users = np.concatenate([users, users[:50]])  # duplicates count once
    items = np.concatenate([items, items[:50]])
    n, k = 40, 6
    idx, w = ease_neighbours(users, items, n, lam=5.0, k=k)
    b = _ease_numpy(users, items, n, 5.0)
    assert idx.shape == w.shape == (n, k) and idx.dtype == np.int64 and w.dtype == np.float32
    for j in range(n):
        expected = np.sort(b[:, j])[::-1][:k]
        np.testing.assert_allclose(w[j], np.maximum(expected, 0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b[idx[j][w[j] > 0], j], w[j][w[j] > 0], rtol=1e-4, atol=1e-6)
        assert j not in idx[j][w[j] > 0]
        # the strongest predictors of an item come from its own community
        assert np.all((idx[j][w[j] > 0] < n // 2) == (j < n // 2))


def test_items_without_positive_predictors_point_at_themselves_with_zero_weight() -> None:
    users, items = _interactions()
    n = 45  # items 40..44 never occur in training
    idx, w = ease_neighbours(users, items, n, lam=5.0, k=8)
    for j in range(40, n):
        assert np.all(w[j] == 0) and np.all(idx[j] == j)
    p = np.random.default_rng(1).random((3, n)).astype(np.float32)
    np.testing.assert_allclose(smooth(p, idx, w)[:, 40:], p[:, 40:])


def test_smooth_matches_its_onnx_graph() -> None:
    users, items = _interactions(2)
    idx, w = ease_neighbours(users, items, 40, lam=3.0, k=5)
    nodes = smooth_nodes("p", "output")
    graph = helper.make_graph(
        nodes,
        "smooth",
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 40])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 40])],
        [init("nbr_idx", idx), init("nbr_w", w), init("axis2", np.array([2], np.int64))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    p = np.random.default_rng(3).random((4, 40)).astype(np.float32)
    (got,) = session.run(None, {"p": p})
    np.testing.assert_allclose(got, smooth(p, idx, w), rtol=1e-5, atol=1e-6)
    expected = p + np.stack([[np.dot(p[r, idx[j]], w[j]) for j in range(40)] for r in range(4)])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_lambda_must_be_positive() -> None:
    users, items = _interactions()
    with pytest.raises(ValueError, match="lambda"):
        ease_neighbours(users, items, 40, lam=0.0, k=3)
