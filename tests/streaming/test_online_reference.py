"""One step of the online learner against a NumPy reference of its documented maths.

:class:`~coldbridge_server.streaming.online.ColdStartEmbeddings` minimises, per event, over the
user's residual ``delta`` (the served vector is ``prior + delta``)::

    L(delta) = loss(y, <prior + delta, v_i> + b_i) + l2 / 2 * ||delta||^2   while anchored
    L(delta) = loss(y, <prior + delta, v_i> + b_i)                          once released

with one SGD step ``delta <- delta - lr * dL/ddelta``. A user is anchored while they have
fewer than ``release_after`` updates (the server sets it to ``warm_threshold``: a WARM user is
no longer pulled back to the bridge prior). Implicit feedback uses the logistic loss with
``y`` in {0, 1} (plus sampled negatives with ``y = 0``), ratings the squared loss
``(p - y)^2``. The reference below is written from these formulas, not from the learner's
code, and its gradient is itself checked against finite differences of the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from coldbridge_server import Settings, create_server, load_bundle
from coldbridge_server.streaming.online import ColdStartEmbeddings
from conftest import TinyBundle
from river import optim

LR, L2, RELEASE = 0.3, 0.7, 3


def pointwise(y: float, p: float, implicit: bool) -> tuple[float, float]:
    """``(loss, dloss/dp)``: logistic for implicit feedback, squared for ratings."""
    if implicit:
        s = 1.0 if y else -1.0
        return float(np.log1p(np.exp(-s * p))), float(-s / (1.0 + np.exp(s * p)))
    return (p - y) ** 2, 2.0 * (p - y)


def reference_loss(
    delta: np.ndarray,
    prior: np.ndarray,
    rows: Sequence[tuple[int, float]],
    implicit: bool,
    items: np.ndarray,
    bias: np.ndarray,
    anchored: bool,
) -> float:
    u = prior + delta
    total = sum(pointwise(y, float(items[i] @ u + bias[i]), implicit)[0] for i, y in rows)
    return total + (L2 / 2 * float(delta @ delta) if anchored else 0.0)


def reference_step(
    delta: np.ndarray,
    prior: np.ndarray,
    rows: Sequence[tuple[int, float]],
    implicit: bool,
    items: np.ndarray,
    bias: np.ndarray,
    anchored: bool,
) -> np.ndarray:
    u = prior + delta
    grad = sum(pointwise(y, float(items[i] @ u + bias[i]), implicit)[1] * items[i] for i, y in rows)
    if anchored:
        grad = grad + L2 * delta
    return delta - LR * grad


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    items, bias = rng.normal(size=(12, 4)), rng.normal(size=12)
    return items, bias, rng.normal(size=4), rng.normal(size=4)  # items, bias, prior, delta


def _learner(items: np.ndarray, bias: np.ndarray, n_negatives: int) -> ColdStartEmbeddings:
    return ColdStartEmbeddings(
        items,
        bias,
        optimizer=optim.SGD(LR),
        l2=L2,
        n_negatives=n_negatives,
        release_after=RELEASE,
        seed=5,
    )


CASES = {
    "implicit": (True, 0),
    "implicit+negatives": (True, 3),
    "rating": (False, 0),
}


@pytest.mark.parametrize("updates", [0, 1, RELEASE - 1, RELEASE, RELEASE + 4])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("batched", [False, True], ids=["learn_one", "learn_many"])
def test_one_step_matches_the_reference(
    data: tuple[np.ndarray, ...], case: tuple[bool, int], updates: int, batched: bool
) -> None:
    items, bias, prior, delta = data
    implicit, n_negatives = case
    model = _learner(items, bias, n_negatives)
    model.u_priors["ann"] = prior
    model.u_deltas["ann"] = delta.copy()
    model.u_updates["ann"] = updates
    y: bool | float = True if implicit else 3.5
    negatives = model._negatives("ann", 7).tolist()  # the sampler is not the maths under test
    rows = [(7, float(y)), *((j, 0.0) for j in negatives)]
    anchored = updates < RELEASE
    expected = reference_step(delta, prior, rows, implicit, items, bias, anchored)
    if batched and model.can_learn_many:
        model.learn_many(["ann"], [7], [y])
    else:
        model.learn_one("ann", 7, y)
    np.testing.assert_allclose(model.u_deltas["ann"], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.user_vector("ann"), prior + expected, rtol=1e-12)


@pytest.mark.parametrize("anchored", [True, False])
def test_the_reference_gradient_is_the_gradient_of_the_reference_loss(
    data: tuple[np.ndarray, ...], anchored: bool
) -> None:
    items, bias, prior, delta = data
    rows = [(7, 1.0), (2, 0.0)]
    step = (delta - reference_step(delta, prior, rows, True, items, bias, anchored)) / LR
    eps, numeric = 1e-6, np.zeros_like(delta)
    for k in range(len(delta)):
        e = np.zeros_like(delta)
        e[k] = eps
        up = reference_loss(delta + e, prior, rows, True, items, bias, anchored)
        down = reference_loss(delta - e, prior, rows, True, items, bias, anchored)
        numeric[k] = (up - down) / (2 * eps)
    np.testing.assert_allclose(step, numeric, rtol=1e-6, atol=1e-8)


def test_the_pull_towards_the_prior_is_released_after_warm_threshold_events(
    data: tuple[np.ndarray, ...],
) -> None:
    """Steps 1..RELEASE pull towards the prior, later ones do not (a whole run)."""
    items, bias, prior, _ = data
    model = _learner(items, bias, 0)
    model.u_priors["bob"] = prior
    delta = np.zeros(4)
    for n, item in enumerate([1, 4, 1, 9, 2, 4, 0]):
        delta = reference_step(delta, prior, [(item, 1.0)], True, items, bias, n < RELEASE)
        model.learn_one("bob", item, True)
        np.testing.assert_allclose(model.u_deltas["bob"], delta, rtol=1e-12, atol=1e-12)


def test_the_server_releases_the_anchor_at_warm_threshold(
    tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    settings = Settings(
        port=0,
        metrics_port=-1,
        state_dir=str(tmp_path / "state"),
        warm_threshold=4,
        online_l2=0.25,
    )
    server, _ = create_server(settings, bundle=load_bundle(tiny_bundle.path))
    try:
        assert server.ingestor is not None
        learner = server.ingestor.updater.learner
        assert (learner.release_after, learner.l2) == (4, 0.25)
    finally:
        server.stop(None).wait()
