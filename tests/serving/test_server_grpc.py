"""The gRPC server end to end: a real server on 127.0.0.1:0, real onnxruntime, tiny bundle."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge.v1 import recommender_pb2_grpc
from coldbridge_server import Settings, create_server, load_bundle
from coldbridge_server.serving.score import OnnxScorer
from conftest import TinyBundle
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "coldbridge.v1.Recommender"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def channel(tiny_bundle: TinyBundle) -> Iterator[grpc.Channel]:
    server, port = create_server(
        Settings(host="127.0.0.1", port=0), bundle=load_bundle(tiny_bundle.path)
    )
    server.start()
    assert server.wait_until_ready(timeout=30)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(None).wait()


@pytest.fixture
def stub(channel: grpc.Channel) -> recommender_pb2_grpc.RecommenderStub:
    return recommender_pb2_grpc.RecommenderStub(channel)


# user id, source history, expected provenance, expected fallback reason
CASES = {
    "warm-target": ("u0", [], pb.PROVENANCE_WARM_TARGET, ""),
    "in-both-domains-is-warm": ("u1", ["g1"], pb.PROVENANCE_WARM_TARGET, ""),
    "source-only": ("s0", [], pb.PROVENANCE_TRANSFERRED, ""),
    "new-with-history": ("nobody", ["g3", "g5", "g5", "g7"], pb.PROVENANCE_TRANSFERRED, ""),
    "history-beats-stored-source": ("s1", ["g2", "g9"], pb.PROVENANCE_TRANSFERRED, ""),
    "brand-new": ("nobody", [], pb.PROVENANCE_FALLBACK, "unknown_user"),
    "unknown-history": ("nobody", ["zz"], pb.PROVENANCE_FALLBACK, "no_known_source_items"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_recommend_matches_numpy_reference(
    stub: recommender_pb2_grpc.RecommenderStub, tiny_bundle: TinyBundle, case: tuple
) -> None:
    user, history, provenance, reason = case
    reply = stub.Recommend(pb.RecommendRequest(user_id=user, k=10, source_item_ids=history))
    assert reply.provenance == provenance
    assert reply.fallback_reason == reason
    assert reply.model_version == tiny_bundle.version
    assert reply.strategy == "emcdr"
    vector = tiny_bundle.target_vector(user, history)
    expected = tiny_bundle.ranking(vector)[:10]
    assert [i.item_id for i in reply.items] == expected
    scores = [i.score for i in reply.items]
    assert scores == sorted(scores, reverse=True)
    ids = tiny_bundle.arrays["target_item_ids"]
    all_scores = dict(zip(ids, tiny_bundle.all_scores(vector), strict=True))
    np.testing.assert_allclose(scores, [all_scores[i] for i in expected], rtol=1e-4, atol=1e-4)
    assert list(reply.unknown_item_ids) == [h for h in history if h == "zz"]


def test_exclusions_are_dropped_and_k_items_still_returned(
    stub: recommender_pb2_grpc.RecommenderStub, tiny_bundle: TinyBundle
) -> None:
    ranking = tiny_bundle.ranking(tiny_bundle.target_vector("s2"))
    exclude = [ranking[0], ranking[2], "not-an-item", ranking[2], ranking[40]]
    reply = stub.Recommend(pb.RecommendRequest(user_id="s2", k=5, exclude_item_ids=exclude))
    assert [i.item_id for i in reply.items] == [r for r in ranking if r not in exclude][:5]
    assert list(reply.unknown_item_ids) == ["not-an-item"]


def test_fallback_exclusions_follow_popularity(
    stub: recommender_pb2_grpc.RecommenderStub, tiny_bundle: TinyBundle
) -> None:
    ranking = tiny_bundle.ranking(None)
    reply = stub.Recommend(pb.RecommendRequest(user_id="x", k=3, exclude_item_ids=ranking[:2]))
    assert [i.item_id for i in reply.items] == ranking[2:5]
    assert reply.provenance == pb.PROVENANCE_FALLBACK


def test_k_larger_than_catalogue_returns_every_item(
    stub: recommender_pb2_grpc.RecommenderStub, tiny_bundle: TinyBundle
) -> None:
    everything = stub.Recommend(pb.RecommendRequest(user_id="u2", k=100))
    catalogue = sorted(tiny_bundle.arrays["target_item_ids"])
    assert sorted(i.item_id for i in everything.items) == catalogue
    request = pb.RecommendRequest(user_id="u2", k=100, exclude_item_ids=["v1", "v2"])
    excluded = stub.Recommend(request)
    assert len(excluded.items) == 48
    assert {"v1", "v2"}.isdisjoint(i.item_id for i in excluded.items)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_score_in_request_order(
    stub: recommender_pb2_grpc.RecommenderStub, tiny_bundle: TinyBundle, case: tuple
) -> None:
    user, history, provenance, reason = case
    items = ["v7", "nope", "v0", "v7", "v49", "nope"]
    reply = stub.Score(pb.ScoreRequest(user_id=user, item_ids=items, source_item_ids=history))
    assert [i.item_id for i in reply.items] == ["v7", "v0", "v7", "v49"]
    assert list(reply.unknown_item_ids) == ["nope"] + (["zz"] if "zz" in history else [])
    assert (reply.provenance, reply.fallback_reason) == (provenance, reason)
    assert reply.model_version == tiny_bundle.version
    all_scores = tiny_bundle.all_scores(tiny_bundle.target_vector(user, history))
    expected = [all_scores[int(i[1:])] for i in ("v7", "v0", "v7", "v49")]
    np.testing.assert_allclose([i.score for i in reply.items], expected, rtol=1e-4, atol=1e-4)


def test_score_with_no_items_is_empty(stub: recommender_pb2_grpc.RecommenderStub) -> None:
    reply = stub.Score(pb.ScoreRequest(user_id="u0"))
    assert list(reply.items) == [] and reply.provenance == pb.PROVENANCE_WARM_TARGET


def test_model_info(stub: recommender_pb2_grpc.RecommenderStub, tiny_bundle: TinyBundle) -> None:
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    assert info.bundle_version == tiny_bundle.version
    assert (info.source_domain, info.target_domain) == ("game", "video")
    assert (info.strategy, info.feedback) == ("emcdr", "implicit")
    assert (info.source_embedding_dim, info.target_embedding_dim) == (8, 8)
    assert (info.num_source_items, info.num_target_items) == (40, 50)
    assert (info.num_source_users, info.num_target_users) == (6, 3)
    assert json.loads(info.metrics_json) == {"hr@10": 0.25, "cold": {"ndcg@10": 0.125}}
    assert (info.max_k, info.max_request_ids, info.encoder_max_history) == (1000, 1000, 16)
    assert info.created_at


def test_health_is_serving_for_overall_and_service(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE):
        assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == SERVING


def test_reflection_lists_and_describes_the_service(channel: grpc.Channel) -> None:
    database = ProtoReflectionDescriptorDatabase(channel)
    assert {SERVICE, "grpc.health.v1.Health"} <= set(database.get_services())
    pool = descriptor_pool.DescriptorPool(database)
    service = pool.FindServiceByName(SERVICE)
    assert [m.name for m in service.methods] == ["Recommend", "Score", "GetModelInfo"]


def _status(health: health_pb2_grpc.HealthStub, service: str) -> int:
    return int(health.Check(health_pb2.HealthCheckRequest(service=service)).status)


def test_health_not_serving_until_warmed_up(
    tiny_bundle: TinyBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = OnnxScorer.warmup

    def slow_warmup(self: OnnxScorer) -> None:
        assert release.wait(30)
        original(self)

    monkeypatch.setattr(OnnxScorer, "warmup", slow_warmup)
    server, port = create_server(
        Settings(host="127.0.0.1", port=0), bundle=load_bundle(tiny_bundle.path)
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            stub = recommender_pb2_grpc.RecommenderStub(ch)
            for service in ("", SERVICE):
                assert _status(health, service) == NOT_SERVING
            with pytest.raises(grpc.RpcError) as err:
                stub.Recommend(pb.RecommendRequest(user_id="u0", k=1))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert stub.GetModelInfo(pb.GetModelInfoRequest()).num_target_items == 50
            release.set()
            assert server.wait_until_ready(timeout=30)
            for service in ("", SERVICE):
                assert _status(health, service) == SERVING
            assert len(stub.Recommend(pb.RecommendRequest(user_id="u0", k=1)).items) == 1
            server.health.enter_graceful_shutdown()
            assert _status(health, SERVICE) == NOT_SERVING
    finally:
        release.set()
        server.stop(None).wait()


def test_create_server_loads_newest_bundle_from_settings(tiny_bundle: TinyBundle) -> None:
    server, port = create_server(
        Settings(host="127.0.0.1", port=0, bundle_path=str(tiny_bundle.path.parent))
    )
    assert port > 0
    assert server.engine.bundle.version == tiny_bundle.version
    server.stop(None)
