"""A small client for callers of the coldbridge gRPC API (grpcio + protobuf only).

``pip install 'coldbridge[client]'`` installs it with the generated ``coldbridge.v1`` code and
nothing of the server (no onnxruntime, River or torch)::

    from coldbridge_client import Client, Event, Domain, EventKind

    with Client("localhost:50051") as client:
        reply = client.recommend("alice", k=10, timeout=0.5)
        with client.stream_events() as stream:
            stream.send([Event(event_id="e-1", user_id="alice", item_id="v7",
                               domain=Domain.DOMAIN_TARGET, kind=EventKind.EVENT_KIND_IMPLICIT)])

The messages, enums and stubs of ``coldbridge.v1`` are re-exported under their proto names.
"""

from __future__ import annotations

from coldbridge.v1.events_pb2 import (
    Domain,
    Event,
    EventAck,
    EventBatch,
    EventKind,
    EventRejection,
    GetUserStateRequest,
    RejectionReason,
    UserState,
)
from coldbridge.v1.events_pb2_grpc import EventsStub
from coldbridge.v1.recommender_pb2 import (
    Blend,
    GetModelInfoRequest,
    LifecycleStage,
    ModelInfo,
    Provenance,
    RecommendRequest,
    RecommendResponse,
    ScoredItem,
    ScoreRequest,
    ScoreResponse,
)
from coldbridge.v1.recommender_pb2_grpc import RecommenderStub

from coldbridge_client._client import Client
from coldbridge_client._config import (
    DEFAULT_RECONNECT,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    EVENTS_SERVICE,
    RECOMMENDER_SERVICE,
    ReconnectPolicy,
    RetryPolicy,
    Timeouts,
)
from coldbridge_client._errors import (
    ClientError,
    DeadlineExceededError,
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
)
from coldbridge_client._security import Tls
from coldbridge_client._stream import EventStream

__all__ = [
    "Blend",
    "Client",
    "ClientError",
    "DEFAULT_RECONNECT",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "DeadlineExceededError",
    "Domain",
    "EVENTS_SERVICE",
    "Event",
    "EventAck",
    "EventBatch",
    "EventKind",
    "EventRejection",
    "EventStream",
    "EventsStub",
    "GetModelInfoRequest",
    "GetUserStateRequest",
    "InvalidArgumentError",
    "LifecycleStage",
    "ModelInfo",
    "PermissionDeniedError",
    "Provenance",
    "RECOMMENDER_SERVICE",
    "RecommendRequest",
    "RecommendResponse",
    "RecommenderStub",
    "ReconnectPolicy",
    "RejectionReason",
    "RetryPolicy",
    "ScoreRequest",
    "ScoreResponse",
    "ScoredItem",
    "Timeouts",
    "Tls",
    "UnauthenticatedError",
    "UnavailableError",
    "UserState",
]
