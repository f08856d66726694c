"""Bearer tokens and roles through a real server: every role x every method class.

One server with ``auth_tokens_file`` serves the whole module. Each call goes through a plain
gRPC channel with (or without) ``authorization: Bearer <token>`` metadata; the expected code
is ``OK`` when the token's roles cover the method, ``PERMISSION_DENIED`` when they do not, and
``UNAUTHENTICATED`` without a valid token. Rejections are counted in
``grpc_server_handled_total`` and the token appears in no log line, message or metadata.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_client import (
    Client,
    Domain,
    Event,
    EventKind,
    PermissionDeniedError,
    UnauthenticatedError,
)
from conftest import TinyBundle
from eventlib import started
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import CollectorRegistry
from securitylib import write_tokens

pytestmark = pytest.mark.timeout(120)

TOKENS = {
    "reader": "rd-0123456789abcdef-reader",
    "writer": "wr-0123456789abcdef-writer",
    "admin": "ad-0123456789abcdef-admin",
    "reader,writer": "rw-0123456789abcdef-both",
}
_ids = itertools.count()


def _event(user: str = "u0") -> epb.Event:
    return epb.Event(
        event_id=f"auth-{next(_ids)}",
        user_id=user,
        item_id="v1",
        domain=epb.DOMAIN_TARGET,
        kind=epb.EVENT_KIND_IMPLICIT,
    )


# method -> (class, caller(channel, metadata))
Call = Callable[[grpc.Channel, list[tuple[str, str]]], Any]


def _unary(method: str, request: Any, response: Any) -> Call:
    def call(channel: grpc.Channel, metadata: list[tuple[str, str]]) -> Any:
        stub = channel.unary_unary(
            method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return stub(request, metadata=metadata, timeout=10)

    return call


def _stream(channel: grpc.Channel, metadata: list[tuple[str, str]]) -> Any:
    stub = channel.stream_stream(
        "/coldbridge.v1.Events/StreamEvents",
        request_serializer=epb.EventBatch.SerializeToString,
        response_deserializer=epb.EventAck.FromString,
    )
    batches = iter([epb.EventBatch(sequence=1, events=[_event()])])
    return list(stub(batches, metadata=metadata, timeout=10))


METHODS: dict[str, tuple[str, Call]] = {
    "Recommend": (
        "reader",
        _unary(
            "/coldbridge.v1.Recommender/Recommend",
            pb.RecommendRequest(user_id="u0", k=3),
            pb.RecommendResponse,
        ),
    ),
    "Score": (
        "reader",
        _unary(
            "/coldbridge.v1.Recommender/Score",
            pb.ScoreRequest(user_id="u0", item_ids=["v1"]),
            pb.ScoreResponse,
        ),
    ),
    "GetModelInfo": (
        "reader",
        _unary("/coldbridge.v1.Recommender/GetModelInfo", pb.GetModelInfoRequest(), pb.ModelInfo),
    ),
    "IngestEvents": (
        "writer",
        _unary(
            "/coldbridge.v1.Events/IngestEvents",
            epb.EventBatch(sequence=1, events=[_event()]),
            epb.EventAck,
        ),
    ),
    "StreamEvents": ("writer", _stream),
    "GetUserState": (
        "admin",
        _unary(
            "/coldbridge.v1.Events/GetUserState",
            epb.GetUserStateRequest(user_id="u0"),
            epb.UserState,
        ),
    ),
}


@pytest.fixture(scope="module")
def served(
    tiny_bundle: TinyBundle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, CollectorRegistry]]:
    out = tmp_path_factory.mktemp("auth")
    lines = ["# name roles token"]
    lines += [f"{roles.replace(',', '-')}-client {roles} {tok}" for roles, tok in TOKENS.items()]
    tokens = write_tokens(out / "tokens", lines)
    with started(
        tiny_bundle.path, out / "state", auth_tokens_file=str(tokens), access_log=True
    ) as (_, port, registry):
        yield port, registry


@pytest.fixture(scope="module")
def channel(served: tuple[int, CollectorRegistry]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{served[0]}") as ch:
        yield ch


def _code(call: Call, channel: grpc.Channel, metadata: list[tuple[str, str]]) -> str:
    try:
        call(channel, metadata)
    except grpc.RpcError as exc:
        return exc.code().name  # type: ignore[attr-defined, no-any-return]
    return "OK"


def _bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("roles", TOKENS)
def test_role_decides_the_code(channel: grpc.Channel, roles: str, method: str) -> None:
    needed, call = METHODS[method]
    held = set(roles.split(","))
    expected = "OK" if "admin" in held or needed in held else "PERMISSION_DENIED"
    assert _code(call, channel, _bearer(TOKENS[roles])) == expected


BAD_CREDENTIALS = {
    "none": [],
    "unknown-token": _bearer("zz-0123456789abcdef-unknown"),
    "token-prefix": _bearer(TOKENS["admin"][:-1]),
    "not-bearer": [("authorization", f"Basic {TOKENS['admin']}")],
    "empty-bearer": [("authorization", "Bearer ")],
    "other-key": [("x-token", TOKENS["admin"])],
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
def test_missing_or_invalid_token_is_unauthenticated(
    channel: grpc.Channel, credentials: str, method: str
) -> None:
    _, call = METHODS[method]
    assert _code(call, channel, BAD_CREDENTIALS[credentials]) == "UNAUTHENTICATED"


def test_health_stays_open_without_a_token(channel: grpc.Channel) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _list_services(channel: grpc.Channel, metadata: list[tuple[str, str]]) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=10)
    return [s.name for s in reply.list_services_response.service]


@pytest.mark.parametrize("roles", TOKENS)
def test_reflection_needs_a_token_of_any_role(channel: grpc.Channel, roles: str) -> None:
    assert "coldbridge.v1.Recommender" in _list_services(channel, _bearer(TOKENS[roles]))
    with pytest.raises(grpc.RpcError) as info:
        _list_services(channel, [])
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


def _handled(registry: CollectorRegistry, method: str, code: str) -> float:
    service = "coldbridge.v1.Events" if method != "Recommend" else "coldbridge.v1.Recommender"
    labels = {"grpc_service": service, "grpc_method": method, "grpc_code": code}
    grpc_type = "bidi_stream" if method == "StreamEvents" else "unary"
    value = registry.get_sample_value(
        "grpc_server_handled_total", {**labels, "grpc_type": grpc_type}
    )
    return value or 0.0


def test_rejections_are_counted_with_their_code(
    channel: grpc.Channel, served: tuple[int, CollectorRegistry]
) -> None:
    registry = served[1]
    cases = [
        ("Recommend", [], "UNAUTHENTICATED"),
        ("StreamEvents", _bearer("zz-0123456789abcdef-unknown"), "UNAUTHENTICATED"),
        ("GetUserState", _bearer(TOKENS["reader"]), "PERMISSION_DENIED"),
        ("StreamEvents", _bearer(TOKENS["reader"]), "PERMISSION_DENIED"),
    ]
    for method, metadata, code in cases:
        before = _handled(registry, method, code)
        assert _code(METHODS[method][1], channel, metadata) == code
        assert _handled(registry, method, code) == before + 1, (method, code)


def test_the_token_is_never_logged_nor_echoed(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "SECRET-wrong-token-4242424242"
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for metadata in (_bearer(wrong), _bearer(TOKENS["reader"])):
        with pytest.raises(grpc.RpcError) as info:
            METHODS["GetUserState"][1](channel, metadata)
        error: Any = info.value
        seen += [error.details(), str(error), repr(error.trailing_metadata())]
    log = caplog.text
    assert "refused /coldbridge.v1.Events/GetUserState" in log  # the refusals were logged
    assert "GetUserState PERMISSION_DENIED" in log and "UNAUTHENTICATED" in log  # access log
    assert "'reader-client'" in log  # the name stands for the token
    for text in (log, *seen):
        assert wrong not in text and TOKENS["reader"] not in text


def test_client_sends_its_token(served: tuple[int, CollectorRegistry]) -> None:
    target = f"127.0.0.1:{served[0]}"
    with Client(target, token=TOKENS["reader,writer"]) as client:
        assert client.recommend("u0", k=2).items
        with client.stream_events() as stream:
            stream.send(
                [
                    Event(
                        event_id="client-token-1",
                        user_id="u7",
                        item_id="v3",
                        domain=Domain.DOMAIN_TARGET,
                        kind=EventKind.EVENT_KIND_IMPLICIT,
                    )
                ]
            )
        assert stream.accepted == 1
        with pytest.raises(PermissionDeniedError, match="needs the role 'admin'"):
            client.user_state("u7")
    with Client(target, token=TOKENS["admin"]) as admin:
        assert admin.user_state("u7").target_events == 1


def test_client_errors_name_the_auth_failure(served: tuple[int, CollectorRegistry]) -> None:
    target = f"127.0.0.1:{served[0]}"
    with Client(target) as anonymous, pytest.raises(UnauthenticatedError):
        anonymous.recommend("u0", k=2)
    with (
        Client(target, token=TOKENS["reader"]) as reader,
        pytest.raises(PermissionDeniedError),
        reader.stream_events() as stream,
    ):
        stream.send([_event()])
        stream.flush(timeout=10)


def test_client_refuses_a_token_that_metadata_cannot_carry() -> None:
    with pytest.raises(ValueError, match="token"):
        Client("127.0.0.1:1", token="two words")


def test_tokens_file_changes_nothing_when_absent(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    """Without auth_tokens_file every method answers without a token (the old behaviour)."""
    with (
        started(tiny_bundle.path, tmp_path / "state") as (_, port, _registry),
        grpc.insecure_channel(f"127.0.0.1:{port}") as ch,
    ):
        assert {m: _code(c, ch, []) for m, (_, c) in METHODS.items()} == dict.fromkeys(
            METHODS, "OK"
        )
