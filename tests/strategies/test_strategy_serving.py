"""Serving several strategies from one bundle: selection, sticky A/B split, isolation."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from coldbridge.v1 import events_pb2, events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_plugins import ColdUsers, TransferStrategy, get_plugin_manager, load_strategies
from coldbridge_plugins.testing import StrategyHarness
from coldbridge_server import Settings, create_server
from coldbridge_server.errors import ConfigError
from coldbridge_trainer.strategies import FittedStrategy
from coldbridge_trainer.train import export_result
from prometheus_client import CollectorRegistry


class Exploding(TransferStrategy):
    name, version = "exploding", "0.1"

    def transfer(self, users: ColdUsers) -> np.ndarray:
        raise RuntimeError("boom")


class NotFinite(TransferStrategy):
    name, version = "not-finite", "0.1"

    def transfer(self, users: ColdUsers) -> np.ndarray:
        return np.full((len(users), 8), np.nan, dtype=np.float32)


REGISTRY = {
    **load_strategies(get_plugin_manager()),
    "exploding": Exploding,
    "not-finite": NotFinite,
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[StrategyHarness, Path]:
    harness = StrategyHarness(Path(tmp_path_factory.mktemp("serving")), REGISTRY)
    fitted = dict(harness.fit_all("fusion"))  # itemmap, emcdr, fusion
    for cls in (Exploding, NotFinite):
        fitted[cls.name] = FittedStrategy(cls, None, {}, {})  # type: ignore[arg-type]
    result = dataclasses.replace(harness.result, strategies=fitted, default_strategy="emcdr")
    return harness, export_result(result, harness.root / "bundles", version="multi")


def _serve(
    bundle: Path, registry: CollectorRegistry | None = None, **settings: Any
) -> Iterator[grpc.Channel]:
    server, port = create_server(
        Settings(bundle_path=str(bundle), host="127.0.0.1", port=0, metrics_port=-1, **settings),
        strategies=REGISTRY,
        registry=registry,
    )
    server.start()
    assert server.wait_until_ready(timeout=30)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        server.stop(None).wait()


@pytest.fixture(scope="module")
def metrics_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(scope="module")
def stub(setup: tuple[StrategyHarness, Path], metrics_registry: CollectorRegistry) -> Iterator[Any]:
    for channel in _serve(setup[1], metrics_registry):
        yield recommender_pb2_grpc.RecommenderStub(channel)


def _cold(harness: StrategyHarness) -> list[str]:
    return list(dict.fromkeys(harness.dataset.test.user_ids))


def test_default_and_requested_strategy_are_served_and_reported(setup, stub) -> None:  # type: ignore[no-untyped-def]
    harness, _ = setup
    user = _cold(harness)[0]
    default = stub.Recommend(pb.RecommendRequest(user_id=user, k=5))
    assert default.strategy == "emcdr" and default.provenance == pb.PROVENANCE_TRANSFERRED
    for name in ("itemmap", "fusion"):
        reply = stub.Recommend(pb.RecommendRequest(user_id=user, k=5, strategy=name))
        scores = harness.fit_all(
            "fusion"
        )[
            name
        ].server.scores(  # type: ignore[union-attr]
            ColdUsers(harness.users().source_embeddings[:1], [harness.users().histories[0]])
        )[0]
        expected = [
            harness.dataset.target.item_ids[i] for i in np.argsort(-scores, kind="stable")[:5]
        ]
        assert reply.strategy == name and [i.item_id for i in reply.items] == expected
        scored = stub.Score(pb.ScoreRequest(user_id=user, item_ids=expected[:2], strategy=name))
        assert scored.strategy == name
        np.testing.assert_allclose(
            [i.score for i in scored.items], np.sort(scores)[::-1][:2], rtol=1e-5
        )


def test_unknown_requested_strategy_is_invalid_argument(setup, stub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as err:
        stub.Recommend(pb.RecommendRequest(user_id=_cold(setup[0])[0], k=5, strategy="nope"))
    assert (
        err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "strategy" in err.value.details()
    )


@pytest.mark.parametrize("name", ["exploding", "not-finite"])
def test_failing_strategy_falls_back_counts_and_keeps_serving(
    setup, stub, metrics_registry, name
) -> None:  # type: ignore[no-untyped-def]
    user = _cold(setup[0])[1]
    before = (
        metrics_registry.get_sample_value("coldbridge_strategy_errors_total", {"strategy": name})
        or 0.0
    )
    reply = stub.Recommend(pb.RecommendRequest(user_id=user, k=5, strategy=name))
    assert reply.provenance == pb.PROVENANCE_FALLBACK and reply.fallback_reason == "strategy_error"
    assert len(reply.items) == 5 and reply.strategy == name
    after = metrics_registry.get_sample_value(
        "coldbridge_strategy_errors_total", {"strategy": name}
    )
    assert after == before + 1
    again = stub.Recommend(pb.RecommendRequest(user_id=user, k=5))
    assert again.provenance == pb.PROVENANCE_TRANSFERRED and again.strategy == "emcdr"


def test_sticky_ab_split_by_user_id(setup) -> None:  # type: ignore[no-untyped-def]
    harness, bundle = setup
    users = _cold(harness)
    for channel in _serve(bundle, strategy_weights="itemmap=1,fusion=0,emcdr=1"):
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        arms = {u: stub.Recommend(pb.RecommendRequest(user_id=u, k=3)).strategy for u in users}
        assert set(arms.values()) == {"itemmap", "emcdr"}
        assert all(
            stub.Recommend(pb.RecommendRequest(user_id=u, k=3)).strategy == a
            for u, a in arms.items()
        )
        events = events_pb2_grpc.EventsStub(channel)
        for u in users[:3]:
            assert (
                events.GetUserState(events_pb2.GetUserStateRequest(user_id=u)).strategy == arms[u]
            )


@pytest.mark.parametrize(
    "settings",
    [{"strategy": "nope"}, {"strategy_weights": "emcdr=1,nope=1"}, {"strategy_weights": "emcdr"}],
)
def test_bad_strategy_settings_fail_at_startup(setup, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="nope|strategy_weights"):
        create_server(
            Settings(bundle_path=str(setup[1]), host="127.0.0.1", port=0, **settings),
            strategies=REGISTRY,
        )
