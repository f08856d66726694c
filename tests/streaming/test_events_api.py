"""coldbridge.v1.Events end to end: rejections, idempotency, freshness, lifecycle, limits.

Real server on 127.0.0.1:0, real SQLite in tmp_path, real River; the tiny bundle.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_server.streaming.validate import Domain, Event, Kind, Reason
from conftest import TinyBundle
from eventlib import RATING, SOURCE, TARGET, Client, batch, event, serving

WARM_AT = 3


@pytest.fixture
def client(tiny_bundle: TinyBundle, tmp_path: Path) -> Iterator[Client]:
    with serving(
        tiny_bundle.path,
        tmp_path / "state",
        warm_threshold=WARM_AT,
        max_batch_events=20,
        prequential_sample_rate=1.0,
    ) as c:
        yield c


BAD_EVENTS = {
    "empty-event-id": (event("", "x", "v1"), epb.REJECTION_REASON_EMPTY_ID),
    "empty-user-id": (event("e-u", "", "v1"), epb.REJECTION_REASON_EMPTY_ID),
    "empty-item-id": (event("e-i", "x", ""), epb.REJECTION_REASON_EMPTY_ID),
    "unknown-domain": (event("e-d", "x", "v1", domain=0), epb.REJECTION_REASON_UNKNOWN_DOMAIN),
    "unset-domain-number": (
        event("e-d9", "x", "v1", domain=9),
        epb.REJECTION_REASON_UNKNOWN_DOMAIN,
    ),
    "unknown-kind": (event("e-k", "x", "v1", kind=0), epb.REJECTION_REASON_UNKNOWN_KIND),
    "unknown-target-item": (event("e-t", "x", "g1"), epb.REJECTION_REASON_UNKNOWN_ITEM),
    "unknown-source-item": (event("e-s", "x", "v1", SOURCE), epb.REJECTION_REASON_UNKNOWN_ITEM),
    "nan-rating": (
        event("e-n", "x", "v1", kind=RATING, value=float("nan")),
        epb.REJECTION_REASON_INVALID_VALUE,
    ),
    "inf-rating": (
        event("e-f", "x", "v1", kind=RATING, value=float("inf")),
        epb.REJECTION_REASON_INVALID_VALUE,
    ),
}


@pytest.mark.parametrize("case", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_bad_event_is_rejected_with_reason_and_stream_continues(
    client: Client, case: tuple[epb.Event, int]
) -> None:
    bad, reason = case
    acks = client.stream(
        [
            batch(1, event("ok1", "u0", "v1")),
            batch(2, event("ok2", "u0", "v2"), bad, event("ok3", "u0", "v3")),
            batch(5, event("ok4", "u0", "v4")),
        ]
    )
    assert [a.sequence for a in acks] == [1, 2, 5]
    assert [a.accepted for a in acks] == [1, 2, 1]
    (rejection,) = acks[1].rejections
    assert (rejection.index, rejection.event_id, rejection.reason) == (1, bad.event_id, reason)
    assert rejection.message
    assert client.state("u0").target_events == 4
    assert [a.log_position for a in acks] == [1, 3, 4]
    domain = {SOURCE: "source", TARGET: "target"}.get(bad.domain, "unknown")
    name = epb.RejectionReason.Name(reason).removeprefix("REJECTION_REASON_").lower()
    rejected = client.metric("coldbridge_events_rejected_total", domain=domain, reason=name)
    assert rejected == 1
    assert client.metric("coldbridge_events_applied_total", domain="target") == 4


def test_resent_event_is_applied_once(client: Client) -> None:
    first = client.events.IngestEvents(batch(1, event("a", "s1", "v7"), event("a", "s1", "v7")))
    assert first.accepted == 1
    assert [r.reason for r in first.rejections] == [epb.REJECTION_REASON_DUPLICATE_EVENT]
    before = client.scores("s1")
    again = client.stream([batch(1, event("a", "s1", "v7"), event("b", "s1", "v8"))])[0]
    assert again.accepted == 1 and again.rejections[0].event_id == "a"
    state = client.state("s1")
    assert (state.target_events, state.online_updates, state.seen_items) == (2, 2, 2)
    assert not np.allclose(before, client.scores("s1"))  # b was learned, a not twice


def test_ack_means_visible_in_the_next_recommend(client: Client, tiny_bundle: TinyBundle) -> None:
    user = "s2"
    ranking = tiny_bundle.ranking(tiny_bundle.target_vector(user))
    item = ranking[30]  # far from the top
    before = client.scores(user)
    rank_before = [i.item_id for i in client.recommend(user, k=50).items].index(item)
    ack = client.stream([batch(1, *[event(f"f{i}", user, item) for i in range(5)])])[0]
    assert ack.accepted == 5
    after = client.scores(user)
    index = int(item[1:])
    assert after[index] > before[index]
    reply = client.recommend(user, k=50)
    assert [i.item_id for i in reply.items].index(item) < rank_before
    assert reply.stage == pb.LIFECYCLE_STAGE_WARM and reply.provenance == pb.PROVENANCE_TRANSFERRED
    excluded = client.recommend(user, k=50, exclude_seen=True)
    assert item not in [i.item_id for i in excluded.items] and len(excluded.items) == 49


def test_lifecycle_new_transferred_warming_warm(client: Client, tiny_bundle: TinyBundle) -> None:
    user = "newcomer"
    stages = []

    def observe() -> None:
        reply = client.recommend(user)
        assert client.state(user).stage == reply.stage
        stages.append((pb.LifecycleStage.Name(reply.stage), pb.Provenance.Name(reply.provenance)))

    observe()
    history = ["g3", "g5", "g7"]
    client.stream([batch(1, *[event(f"s{i}", user, g, SOURCE) for i, g in enumerate(history)])])
    observe()
    expected = tiny_bundle.ranking(tiny_bundle.target_vector("nobody", history))[:10]
    assert [i.item_id for i in client.recommend(user).items] == expected  # fold-in == encoder
    for i in range(WARM_AT):
        client.events.IngestEvents(batch(i, event(f"t{i}", user, f"v{i}")))
        observe()
    assert stages == [
        ("LIFECYCLE_STAGE_NEW", "PROVENANCE_FALLBACK"),
        ("LIFECYCLE_STAGE_TRANSFERRED", "PROVENANCE_TRANSFERRED"),
        ("LIFECYCLE_STAGE_WARMING", "PROVENANCE_TRANSFERRED"),
        ("LIFECYCLE_STAGE_WARMING", "PROVENANCE_TRANSFERRED"),
        ("LIFECYCLE_STAGE_WARM", "PROVENANCE_TRANSFERRED"),
    ]
    state = client.state(user)
    assert (state.source_events, state.target_events, state.online_updates) == (3, 3, 6)
    assert state.bundle_version == tiny_bundle.version and state.strategy == "emcdr"
    assert state.last_update_time.seconds > 0
    total = client.metric("coldbridge_prequential_events_total", strategy="emcdr", stage="warming")
    assert total == 2


def test_stages_of_users_without_events(client: Client) -> None:
    expected = {"u0": "WARM", "s0": "TRANSFERRED", "stranger": "NEW"}
    for user, stage in expected.items():
        assert client.state(user).stage == pb.LifecycleStage.Value(f"LIFECYCLE_STAGE_{stage}")
        assert client.state(user).target_events == 0
    reply = client.recommend("stranger", source_item_ids=["g1"])
    assert reply.stage == pb.LIFECYCLE_STAGE_TRANSFERRED


def test_target_events_alone_make_an_online_user(client: Client) -> None:
    client.events.IngestEvents(
        batch(1, event("o1", "fresh", "v9"), event("o2", "fresh", "v9", kind=RATING, value=4.0))
    )
    reply = client.recommend("fresh")
    assert (reply.stage, reply.provenance) == (pb.LIFECYCLE_STAGE_WARMING, pb.PROVENANCE_ONLINE)


def test_malformed_stream_ends_with_invalid_argument_and_keeps_acked_batches(
    client: Client,
) -> None:
    acks = []
    with pytest.raises(grpc.RpcError) as err:
        for ack in client.events.StreamEvents(
            iter(
                [
                    batch(1, event("m1", "s3", "v1")),
                    batch(2, event("m2", "s3", "v2")),
                    batch(2, event("m3", "s3", "v3")),
                    batch(3, event("m4", "s3", "v4")),
                ]
            )
        ):
            acks.append(ack)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sequence" in (err.value.details() or "")
    assert [a.sequence for a in acks] == [1, 2]
    assert client.state("s3").target_events == 2


def test_oversized_batch_and_message_are_refused(client: Client) -> None:
    too_many = batch(1, *[event(f"big{i}", "s0", "v1") for i in range(21)])
    with pytest.raises(grpc.RpcError) as err:
        client.stream([too_many])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_batch_events" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        client.events.IngestEvents(too_many)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    huge = batch(1, event("x" * (5 * 1024 * 1024), "s0", "v1"))
    with pytest.raises(grpc.RpcError) as err:
        client.stream([huge])
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert client.state("s0").target_events == 0


def test_get_user_state_needs_a_user(client: Client) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.state("")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_writer_revalidates_a_batch_only_under_another_bundle(client: Client) -> None:
    ingestor = client.server.ingestor
    assert ingestor is not None
    served, stale = ingestor.bundle, copy.copy(ingestor.bundle)
    unknown = Event("x-1", "u0", "not-an-item", Domain.TARGET, Kind.IMPLICIT)
    got = ingestor.submit([unknown], checked=stale).wait()  # checked against a replaced bundle
    assert got.accepted == 0
    assert [r.reason for r in got.rejections] == [Reason.UNKNOWN_ITEM]
    fine = Event("x-2", "u0", "v1", Domain.TARGET, Kind.IMPLICIT)
    got = ingestor.submit([fine, fine], checked=served).wait()  # duplicates are still found
    assert got.accepted == 1
    assert [(r.index, r.reason) for r in got.rejections] == [(1, Reason.DUPLICATE_EVENT)]
