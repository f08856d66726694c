"""The prepared fast path of the history blend equals the dense NumPy reference.

Real engine over a real bundle (real onnxruntime top-k), in process: random users with
random histories, every second target item a copy of the one before it (same embedding,
bias and history weights: exact ties, which must go by index), random exclusions and
``exclude_seen``. The reference is :meth:`HistoryModel.blend` over the whole catalogue.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from coldbridge_bundle import write
from coldbridge_bundle.history import HistoryModel
from coldbridge_plugins import get_plugin_manager, load_strategies
from coldbridge_server import Settings, load_bundle
from coldbridge_server.app import build_engine
from coldbridge_server.bundle import Bundle
from coldbridge_server.core import UserState, UserStates
from coldbridge_server.serving.blend import vector_scores
from coldbridge_server.serving.engine import RecommendationEngine
from coldbridge_server.serving.prepare import PreparedBlends, prepared_bytes
from conftest import make_tiny_arrays, tiny_content

EVENTS = (1, 2, 4)
WEIGHTS = (0.3, 0.5, 0.8)
N_ITEMS = 50


def paired_history(negative: bool = False, k: int = 6, seed: int = 5) -> HistoryModel:
    """Items ``2m`` and ``2m + 1`` are predicted by the same items with the same weights."""
    rng = np.random.default_rng(seed)
    idx = np.zeros((N_ITEMS, k), dtype=np.int64)
    w = rng.choice([0.25, 0.5, 1.0], size=(N_ITEMS, k)).astype(np.float32)  # ties in h too
    for j in range(0, N_ITEMS, 2):
        others = [i for i in range(N_ITEMS) if i not in (j, j + 1)]
        idx[j] = idx[j + 1] = rng.choice(others, size=k, replace=False)
        w[j + 1] = w[j]
    model = HistoryModel.from_neighbours(idx, w, events=EVENTS, history_weight=WEIGHTS)
    if negative:  # a model the fast path must decline (its merge needs positive bonuses)
        model = dataclasses.replace(model, weights=model.weights - np.float32(0.6))
    return model


@pytest.fixture(scope="module")
def tied_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    arrays = make_tiny_arrays(seed=3)
    for name in ("target_item_emb", "target_item_bias"):
        arrays[name][1::2] = arrays[name][0::2]
    return write(tmp_path_factory.mktemp("tied"), tiny_content(arrays), version="tied")


def engine(
    path: Path, model: HistoryModel, states: UserStates, batch: int, ahead: bool = True
) -> RecommendationEngine:
    bundle = dataclasses.replace(load_bundle(path), history=model)
    settings = Settings(topk_batch_size=batch, metrics_port=-1, history_prepare_ahead=ahead)
    built = build_engine(settings, bundle, load_strategies(get_plugin_manager()), None, states)
    built.warmup()
    return built


def random_states(rng: np.random.Generator, users: int) -> list[UserState]:
    out = []
    for u in range(users):
        vector = rng.normal(size=8).astype(np.float32)
        vector.setflags(write=False)
        seen = frozenset(rng.choice(N_ITEMS, size=int(rng.integers(1, 7)), replace=False).tolist())
        events = len(seen) + int(rng.integers(0, 3))
        out.append(
            UserState(f"n{u}", delta=vector.astype(np.float64), vector=vector,
                      target_events=events, online_updates=events, seen=seen)
        )  # fmt: skip
    return out


def reference(bundle: Bundle, model: HistoryModel, state: UserState) -> np.ndarray:
    assert state.vector is not None
    served, _ = model.blend(vector_scores(bundle, state.vector), state.seen, state.target_events)
    return served


@pytest.mark.parametrize("ahead", [True, False], ids=["prepare-ahead", "on-request"])
@pytest.mark.parametrize("batch", [1, 32])
def test_the_prepared_fast_path_ranks_as_the_dense_blend(
    tied_bundle: Path, batch: int, ahead: bool
) -> None:
    rng = np.random.default_rng(batch)
    states = UserStates()
    model = paired_history()
    eng = engine(tied_bundle, model, states, batch, ahead)
    users = random_states(rng, 40)
    for state in users:
        states.publish(state)
    preparer = eng.resolver.preparer
    if ahead:
        assert preparer is not None and preparer.idle(timeout=30)
        assert len(eng.resolver.blender.prepared) == len(users)  # type: ignore[union-attr]
    else:  # the default: nothing prepared until a user's first request
        assert preparer is None and len(eng.resolver.blender.prepared) == 0  # type: ignore[union-attr]
    ids = eng.bundle.target_item_ids
    ties = 0
    for state in users:
        resolved = eng.resolver.resolve(state.user_id)
        assert resolved.blended is not None, "the fast path must serve vector users"
        assert eng.resolver.resolve(state.user_id).blended is resolved.blended  # prepared once
        served = reference(eng.bundle, model, state)
        ties += len(served) - len(np.unique(served))
        for k in (1, 3, 10, N_ITEMS):
            drop = set(rng.choice(N_ITEMS, size=int(rng.integers(0, 5)), replace=False).tolist())
            exclude_seen = bool(rng.integers(0, 2))
            gone = drop | (state.seen if exclude_seen else set())
            order = [i for i in np.argsort(-served, kind="stable").tolist() if i not in gone]
            got = eng.recommend(
                state.user_id, k, exclude_item_ids=[ids[i] for i in drop], exclude_seen=exclude_seen
            )
            assert [i for i, _ in got.items] == [ids[i] for i in order[:k]], (state, k, gone)
            np.testing.assert_allclose([s for _, s in got.items], served[order[:k]], atol=1e-5)
        scored = eng.score(state.user_id, list(ids))
        np.testing.assert_allclose([s for _, s in scored.items], served, atol=1e-5)
    assert ties > len(users)  # the copies really tie


def test_a_new_state_is_never_served_a_stale_blend(tied_bundle: Path) -> None:
    states = UserStates()
    model = paired_history()
    eng = engine(tied_bundle, model, states, 1)
    first, second = random_states(np.random.default_rng(9), 2)
    states.publish(first)
    before = eng.resolver.resolve(first.user_id).blended
    moved = dataclasses.replace(second, user_id=first.user_id)
    states.publish(moved)
    after = eng.resolver.resolve(first.user_id).blended
    assert before is not None and after is not None and after is not before
    order = np.argsort(-reference(eng.bundle, model, moved), kind="stable")[:10]
    got = eng.recommend(first.user_id, 10)
    assert [i for i, _ in got.items] == [eng.bundle.target_item_ids[i] for i in order]


def test_negative_history_weights_take_the_dense_path(tied_bundle: Path) -> None:
    states = UserStates()
    model = paired_history(negative=True)
    eng = engine(tied_bundle, model, states, 1)
    (state,) = random_states(np.random.default_rng(4), 1)
    states.publish(state)
    resolved = eng.resolver.resolve(state.user_id)
    assert resolved.blended is None and resolved.scores is not None
    order = np.argsort(-reference(eng.bundle, model, state), kind="stable")[:10]
    got = eng.recommend(state.user_id, 10)
    assert [i for i, _ in got.items] == [eng.bundle.target_item_ids[i] for i in order]


def test_prepared_blends_stay_within_their_memory_budget(tied_bundle: Path) -> None:
    states = UserStates()
    eng = engine(tied_bundle, paired_history(), states, 1)
    blender = eng.resolver.blender
    assert blender is not None
    entries = []
    for state in random_states(np.random.default_rng(11), 30):
        assert state.vector is not None
        affine, blend = blender.affine(state, state.vector)
        assert affine is not None
        entries.append((state, state.vector, affine, blend))
    sizes = [prepared_bytes(entry[2]) for entry in entries]
    assert all(size > 1024 + 16 * len(e[2].support) for size, e in zip(sizes, entries, strict=True))
    budget = PreparedBlends(max_bytes=sum(sizes[-10:]))
    for entry in entries:
        budget.put(entry[0].user_id, entry)
        assert budget.bytes <= budget.max_bytes
        kept = [budget.get(e[0].user_id) for e in entries]
        assert budget.bytes == sum(prepared_bytes(k[2]) for k in kept if k is not None)
    assert [budget.get(e[0].user_id) is not None for e in entries] == [False] * 20 + [True] * 10
