"""The history part of serving through a real gRPC server: the blend, cold and warm users.

Real server on 127.0.0.1:0, real SQLite state, real River learner, the tiny bundle with an
item-to-item history model attached. Expected lists are computed in NumPy from the tiny
bundle's arrays and :meth:`HistoryModel.blend` (the maths the trainer fits with).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_bundle.history import HistoryModel
from coldbridge_plugins import ColdUsers, TransferStrategy, get_plugin_manager, load_strategies
from coldbridge_server import Settings, create_server, load_bundle
from coldbridge_server.bundle import Bundle
from conftest import TinyBundle
from eventlib import SOURCE, batch, event
from prometheus_client import CollectorRegistry

K = 10
EVENTS = (1, 2, 3, 5)
WEIGHTS = (0.3, 0.45, 0.6, 0.75)


class DotScores(TransferStrategy):
    """A score-output strategy: ``source embedding @ V_t^T`` (unlike any bridge)."""

    name, version, output = "dot-scores", "0.1", "scores"

    def transfer(self, users: ColdUsers) -> np.ndarray:
        items = self.parts.target_item_embeddings
        assert items is not None
        return np.asarray(users.source_embeddings @ items.T, dtype=np.float32)


STRATEGIES = {**load_strategies(get_plugin_manager()), DotScores.name: DotScores}


def history_model(n_items: int = 50, k: int = 5) -> HistoryModel:
    rng = np.random.default_rng(7)
    idx = rng.integers(0, n_items, size=(n_items, k))
    w = rng.uniform(0.1, 1.0, size=(n_items, k)).astype(np.float32)
    return HistoryModel.from_neighbours(idx, w, events=EVENTS, history_weight=WEIGHTS)


@dataclasses.dataclass
class Served:
    rec: recommender_pb2_grpc.RecommenderStub
    events: events_pb2_grpc.EventsStub

    def recommend(self, user: str, **kw: Any) -> pb.RecommendResponse:
        return self.rec.Recommend(pb.RecommendRequest(user_id=user, k=K, **kw))

    def ids(self, user: str, **kw: Any) -> list[str]:
        return [i.item_id for i in self.recommend(user, **kw).items]

    def state(self, user: str) -> epb.UserState:
        return self.events.GetUserState(epb.GetUserStateRequest(user_id=user))

    def send(self, user: str, items: Sequence[str], domain: int = epb.DOMAIN_TARGET) -> None:
        acks = list(
            self.events.StreamEvents(
                iter(
                    [
                        batch(
                            1,
                            *(
                                event(f"{user}-{domain}-{i}", user, it, domain)
                                for i, it in enumerate(items)
                            ),
                        )
                    ]
                )
            )
        )
        assert [a.accepted for a in acks] == [len(items)]


@contextlib.contextmanager
def serving(bundle: Bundle, state_dir: Path, **settings: Any) -> Iterator[Served]:
    config = Settings(
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        state_dir=str(state_dir),
        state_sync="NORMAL",
        **settings,
    )
    server, port = create_server(
        config, bundle=bundle, strategies=STRATEGIES, registry=CollectorRegistry()
    )
    server.start()
    try:
        assert server.wait_until_ready(timeout=60)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Served(
                recommender_pb2_grpc.RecommenderStub(channel), events_pb2_grpc.EventsStub(channel)
            )
    finally:
        server.stop(None).wait()


@pytest.fixture(scope="module")
def bundle(tiny_bundle: TinyBundle) -> Bundle:
    """The tiny bundle (strategy emcdr, an embedding strategy) with a history model."""
    return dataclasses.replace(load_bundle(tiny_bundle.path), history=history_model())


@pytest.fixture(scope="module")
def scores_bundle(bundle: Bundle) -> Bundle:
    """The same bundle served by the score-output strategy :class:`DotScores`."""
    return dataclasses.replace(bundle, strategy=DotScores.name)


def reference(transferred: np.ndarray, seen: Sequence[int], drop: Sequence[int] = ()) -> list[str]:
    """Top ``K`` of the NumPy blend (ties by index), ``drop`` excluded."""
    served, _ = history_model().blend(transferred, seen, len(seen))
    order = [i for i in np.argsort(-served, kind="stable").tolist() if i not in set(drop)]
    return [f"v{i}" for i in order[:K]]


def dot_scores(tiny: TinyBundle, source: np.ndarray) -> np.ndarray:
    return np.asarray(source @ tiny.arrays["target_item_emb"].T, dtype=np.float32)


def encoded(tiny: TinyBundle, items: Sequence[int]) -> np.ndarray:
    a = tiny.arrays
    x = a["source_item_emb"][list(items)].mean(axis=0) @ a["encoder_weight"]
    return np.asarray(x + a["encoder_bias"], dtype=np.float32)


@pytest.mark.parametrize("n_events", [1, 2, 5])
def test_cold_users_list_after_k_events_is_the_numpy_blend(
    tiny_bundle: TinyBundle, scores_bundle: Bundle, tmp_path: Path, n_events: int
) -> None:
    seen = [3, 17, 29, 41, 8][:n_events]
    source = tiny_bundle.arrays["source_user_emb"][
        tiny_bundle.arrays["source_user_ids"].index("s0")
    ]
    with serving(scores_bundle, tmp_path / "state") as s:
        s.send("s0", [f"v{i}" for i in seen])
        reply = s.recommend("s0", exclude_seen=True)
    expected = reference(dot_scores(tiny_bundle, source), seen, drop=seen)
    assert [i.item_id for i in reply.items] == expected
    assert reply.blend.history_weight == pytest.approx(WEIGHTS[EVENTS.index(n_events)])
    assert (reply.blend.target_events, reply.blend.history_items) == (n_events, n_events)
    assert reply.stage == pb.LIFECYCLE_STAGE_WARMING


def test_no_event_leaves_the_list_unchanged(
    tiny_bundle: TinyBundle, bundle: Bundle, tmp_path: Path
) -> None:
    with serving(bundle, tmp_path / "state") as s:
        reply = s.recommend("s1")
        with_history = s.recommend("nobody", source_item_ids=["g1", "g5"])
    assert [i.item_id for i in reply.items] == tiny_bundle.ranking(tiny_bundle.target_vector("s1"))[
        :K
    ]
    assert reply.blend == pb.Blend()
    vector = tiny_bundle.target_vector("nobody", ["g1", "g5"])
    assert [i.item_id for i in with_history.items] == tiny_bundle.ranking(vector)[:K]
    assert with_history.blend.history_weight == 0


def test_a_score_strategy_keeps_serving_after_events(
    tiny_bundle: TinyBundle, scores_bundle: Bundle, tmp_path: Path
) -> None:
    """Start from the best strategy: request history and streamed source events both count."""
    seen, request, streamed = [4, 9], [1, 5, 7], [2, 11]
    with serving(scores_bundle, tmp_path / "state") as s:
        s.send("newbie", [f"v{i}" for i in seen])
        s.send("folded", [f"g{i}" for i in streamed], SOURCE)
        s.send("folded", [f"v{i}" for i in seen])
        by_request = s.recommend("newbie", source_item_ids=[f"g{i}" for i in request])
        by_events = s.recommend("folded")
    assert by_request.strategy == by_events.strategy == DotScores.name
    got = [i.item_id for i in by_request.items]
    assert got == reference(dot_scores(tiny_bundle, encoded(tiny_bundle, request)), seen)
    got = [i.item_id for i in by_events.items]
    assert got == reference(dot_scores(tiny_bundle, encoded(tiny_bundle, streamed)), seen)
    assert by_events.provenance == pb.PROVENANCE_TRANSFERRED


HISTORIES = {"u0": [3, 30, 31], "s2": [7, 8], "x-new": [12, 13, 14, 15, 16]}
"""Target events streamed by :func:`_stream_all`: a warm, a bridged and an unknown user."""
USERS = ("u0", "s2", "x-new", "s3")


def _stream_all(s: Served) -> None:
    for user, items in HISTORIES.items():
        s.send(user, [f"v{i}" for i in items])


def test_warm_users_list_changes_and_state_reports_the_same_blend(
    tiny_bundle: TinyBundle, bundle: Bundle, tmp_path: Path
) -> None:
    with serving(bundle, tmp_path / "state") as s:
        before = s.ids("u0")
        _stream_all(s)
        replies = {u: s.recommend(u) for u in USERS}
        states = {u: s.state(u) for u in USERS}
    assert before == tiny_bundle.ranking(tiny_bundle.target_vector("u0"))[:K]
    assert [i.item_id for i in replies["u0"].items] != before
    assert replies["u0"].stage == pb.LIFECYCLE_STAGE_WARM
    assert replies["u0"].blend == pb.Blend(
        history_weight=WEIGHTS[2], target_events=3, history_items=3
    )
    for user in USERS:
        assert states[user].blend == replies[user].blend, user
    assert replies["s3"].blend == pb.Blend()


def test_the_blend_over_the_servers_own_transferred_scores_and_off_switch(
    bundle: Bundle, tmp_path: Path
) -> None:
    """Restart on the same state: identical lists (replay); off = a bundle without history."""
    state = tmp_path / "state"
    items = [f"v{i}" for i in range(50)]
    with serving(bundle, state) as s:
        _stream_all(s)
        live = {u: s.recommend(u) for u in USERS}
        served = {u: _scores(s, u, items) for u in USERS}
    with serving(bundle, state) as s:
        replayed = {u: s.recommend(u) for u in USERS}
    with serving(bundle, state, history_blend=False) as s:
        off = {u: s.recommend(u) for u in USERS}
        transferred = {
            u: np.array(
                [i.score for i in s.rec.Score(pb.ScoreRequest(user_id=u, item_ids=items)).items],
                dtype=np.float32,
            )
            for u in USERS
        }
    with serving(dataclasses.replace(bundle, history=None), state) as s:
        without = {u: s.recommend(u) for u in USERS}
    for user in USERS:
        assert replayed[user] == live[user], user
        assert off[user].items == without[user].items, user
        assert off[user].blend.history_weight == 0
        if user in HISTORIES:
            expected = reference(transferred[user], HISTORIES[user])
            assert [i.item_id for i in live[user].items] == expected, user
            blended, _ = history_model().blend(
                transferred[user], HISTORIES[user], len(HISTORIES[user])
            )
            np.testing.assert_allclose(served[user], blended, rtol=1e-4, atol=1e-4)
            assert [i.item_id for i in off[user].items] != [i.item_id for i in live[user].items]


def _scores(s: Served, user: str, items: list[str]) -> np.ndarray:
    reply = s.rec.Score(pb.ScoreRequest(user_id=user, item_ids=items))
    assert reply.blend == s.recommend(user).blend
    return np.array([i.score for i in reply.items], dtype=np.float32)
