"""Hostile bytes and sizes: malformed protobuf, invalid UTF-8, over-size messages, huge ids.

Raw bytes go through ``channel.unary_unary`` / ``stream_stream`` without serializers, to a
real server on 127.0.0.1:0. Every rejection must carry its documented status code and be
counted in ``grpc_server_handled_total`` like any other call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_server import ConfigError, Settings, create_server, load_bundle
from conftest import TinyBundle, make_tiny_arrays, tiny_content
from eventlib import Client, batch, event, serving
from grpc_health.v1 import health_pb2

MAX_ID, MAX_BYTES = 64, 64 * 1024
CORRUPT = b"\xff\xff\xff\xff"  # a varint that never ends
BAD_UTF8 = b"\x0a\x02\xff\xfe"  # field 1 (a string in every request below): invalid UTF-8
BAD_BATCH = b"\x12\x04" + BAD_UTF8  # an EventBatch whose first event's event_id is invalid
UNARY = {
    "Recommend": "/coldbridge.v1.Recommender/Recommend",
    "Score": "/coldbridge.v1.Recommender/Score",
    "GetUserState": "/coldbridge.v1.Events/GetUserState",
    "Check": "/grpc.health.v1.Health/Check",
}


@pytest.fixture(scope="module")
def client(tiny_bundle: TinyBundle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    state = tmp_path_factory.mktemp("transport")
    limits = {"max_id_bytes": MAX_ID, "max_message_bytes": MAX_BYTES}
    with serving(tiny_bundle.path, state, **limits) as c:
        yield c


def raw(client: Client, path: str, payload: bytes) -> grpc.RpcError:
    call = client.channel.unary_unary(path)
    with pytest.raises(grpc.RpcError) as err:
        call(payload, timeout=10)
    return err.value


def handled(client: Client, method: str, code: str) -> float:
    """``grpc_server_handled_total`` of ``method`` with ``code``, whatever its service."""
    return sum(
        sample.value
        for family in client.registry.collect()
        for sample in family.samples
        if sample.name == "grpc_server_handled_total"
        and sample.labels.get("grpc_method") == method
        and sample.labels.get("grpc_code") == code
    )


@pytest.mark.parametrize("payload", [CORRUPT, BAD_UTF8], ids=["corrupt", "invalid-utf8"])
@pytest.mark.parametrize("method", UNARY)
def test_undecodable_request_is_invalid_argument_and_counted(
    client: Client, method: str, payload: bytes
) -> None:
    before = handled(client, method, "INVALID_ARGUMENT")
    error = raw(client, UNARY[method], payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("request: cannot be decoded")
    assert handled(client, method, "INVALID_ARGUMENT") == before + 1
    assert client.recommend("u0", k=3).items  # still serving


def test_undecodable_batch_ends_the_stream_after_the_acks_before_it(client: Client) -> None:
    good = batch(1, event("utf8-1", "s2", "v1")).SerializeToString()
    stream = client.channel.stream_stream("/coldbridge.v1.Events/StreamEvents")
    before = handled(client, "StreamEvents", "INVALID_ARGUMENT")
    acks = []
    with pytest.raises(grpc.RpcError) as err:
        for reply in stream(iter([good, BAD_BATCH]), timeout=10):
            acks.append(epb.EventAck.FromString(reply))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("request: cannot be decoded")
    assert [a.accepted for a in acks] == [1]
    assert handled(client, "StreamEvents", "INVALID_ARGUMENT") == before + 1
    assert client.state("s2").target_events == 1


def test_undecodable_ingest_batch_is_invalid_argument(client: Client) -> None:
    error = raw(client, "/coldbridge.v1.Events/IngestEvents", BAD_BATCH)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("request: cannot be decoded")


def test_over_size_message_is_resource_exhausted_and_counted(client: Client) -> None:
    request = pb.ScoreRequest(user_id="u0", item_ids=["v1"] * (MAX_BYTES // 4))
    payload = request.SerializeToString()
    assert MAX_BYTES < len(payload) < 2 * MAX_BYTES
    before = handled(client, "Score", "RESOURCE_EXHAUSTED")
    error = raw(client, UNARY["Score"], payload)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"exceeds max_message_bytes={MAX_BYTES}" in (error.details() or "")
    assert handled(client, "Score", "RESOURCE_EXHAUSTED") == before + 1


def test_message_over_twice_the_limit_is_refused_by_the_transport(client: Client) -> None:
    """Documented: beyond twice max_message_bytes the transport refuses the message before
    any handler runs (same code; such calls are the only ones not counted)."""
    payload = pb.RecommendRequest(user_id="x" * (2 * MAX_BYTES + 10), k=1).SerializeToString()
    before = handled(client, "Recommend", "RESOURCE_EXHAUSTED")
    assert raw(client, UNARY["Recommend"], payload).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert handled(client, "Recommend", "RESOURCE_EXHAUSTED") == before
    assert client.recommend("u0", k=1).items


def test_over_size_batch_in_a_stream_is_resource_exhausted(client: Client) -> None:
    big = batch(1, *[event(f"big-{i}", "s1", "v1") for i in range(MAX_BYTES // 16)])
    assert len(big.SerializeToString()) > MAX_BYTES
    with pytest.raises(grpc.RpcError) as err:
        client.stream([big])
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.state("s1").target_events == 0


def test_health_check_still_works_with_well_formed_bytes(client: Client) -> None:
    reply = client.channel.unary_unary(UNARY["Check"])(
        health_pb2.HealthCheckRequest().SerializeToString(), timeout=10
    )
    assert health_pb2.HealthCheckResponse.FromString(reply).status == 1  # SERVING


HUGE = "h" * 1_000_000
HUGE_REQUESTS = {
    "recommend-user": ("Recommend", pb.RecommendRequest(user_id=HUGE, k=1), "user_id"),
    "recommend-strategy": (
        "Recommend",
        pb.RecommendRequest(user_id="u0", k=1, strategy=HUGE),
        "strategy",
    ),
    "recommend-exclude": (
        "Recommend",
        pb.RecommendRequest(user_id="u0", k=1, exclude_item_ids=["v1", HUGE]),
        "exclude_item_ids[1]",
    ),
    "recommend-source": (
        "Recommend",
        pb.RecommendRequest(user_id="x", k=1, source_item_ids=[HUGE]),
        "source_item_ids[0]",
    ),
    "score-user": ("Score", pb.ScoreRequest(user_id=HUGE, item_ids=["v1"]), "user_id"),
    "score-item": ("Score", pb.ScoreRequest(user_id="u0", item_ids=[HUGE]), "item_ids[0]"),
    "score-strategy": ("Score", pb.ScoreRequest(user_id="u0", strategy=HUGE), "strategy"),
}


@pytest.mark.parametrize("case", HUGE_REQUESTS.values(), ids=HUGE_REQUESTS.keys())
def test_huge_id_is_refused_without_echoing_it(
    tiny_bundle: TinyBundle, tmp_path: Path, case: tuple[str, object, str]
) -> None:
    method, request, field = case
    with serving(tiny_bundle.path, tmp_path / "state", max_id_bytes=MAX_ID) as c:
        with pytest.raises(grpc.RpcError) as err:
            getattr(c.rec, method)(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == f"{field}: 1000000 bytes exceed max_id_bytes={MAX_ID}"
        assert c.recommend("u0", k=2).items


def test_unknown_strategy_echo_is_truncated(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    with serving(tiny_bundle.path, tmp_path / "state", max_id_bytes=2_000_000) as c:
        with pytest.raises(grpc.RpcError) as err:
            c.recommend("s0", k=1, strategy="z" * 1_000_000)
    details = err.value.details() or ""
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown strategy" in details and "(1000000 bytes)" in details and len(details) < 300


def test_a_bundle_item_id_over_the_limit_stops_the_start(tmp_path: Path) -> None:
    from coldbridge_bundle import write

    arrays = make_tiny_arrays()
    arrays["target_item_ids"] = [f"v{i}" for i in range(49)] + ["v" * 300]
    path = write(tmp_path, tiny_content(arrays), version="20260101T000000Z-longid01")
    with pytest.raises(ConfigError, match="max_id_bytes"):
        create_server(Settings(port=0, metrics_port=-1), bundle=load_bundle(path))
