"""``Client``: the coldbridge.v1 services behind one channel, with deadlines and retries."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from coldbridge.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    recommender_pb2,
    recommender_pb2_grpc,
)

from coldbridge_client._config import (
    DEFAULT_RECONNECT,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    ReconnectPolicy,
    RetryPolicy,
    Timeouts,
)
from coldbridge_client._errors import map_rpc_error
from coldbridge_client._security import BearerToken, Tls
from coldbridge_client._stream import EventStream

__all__ = ["Client"]

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class Client:
    """A client of a coldbridge server (``coldbridge.v1.Recommender`` and ``Events``).

    Every call has a deadline (``timeouts``, or ``timeout=`` per call), gRPC retries calls that
    fail with ``UNAVAILABLE`` (``retry``), and errors come back as
    :class:`~coldbridge_client.ClientError` subclasses. The raw stubs stay available as
    :attr:`recommender` and :attr:`events`.

    Parameters
    ----------
    target
        ``host:port`` of the server, or any gRPC target naming several replicas:
        ``dns:///coldbridge-headless:50051`` (one address per replica) or
        ``ipv4:10.0.0.1:50051,10.0.0.2:50051``.
    token
        Bearer token sent with every call (``authorization: Bearer <token>`` metadata), for a
        server with ``auth_tokens_file`` (docs/security.md).
    tls
        TLS settings (:class:`~coldbridge_client.Tls`: root CA, client certificate for mutual
        TLS); ``None`` and no ``credentials`` open a plaintext channel.
    credentials
        Any other channel credentials (instead of ``tls``).
    timeouts
        Default deadline of each call.
    retry
        gRPC retry policy (a service config on the channel); ``None`` disables retries.
    balance
        gRPC load-balancing policy over the target's addresses: ``round_robin`` (default)
        spreads calls over every replica the target resolves to; ``pick_first`` sends them
        all to one (gRPC's own default). With a single address both behave the same.
    options
        Further channel options, e.g. ``[("grpc.max_receive_message_length", 8 << 20)]``.

    Usage (needs a running server; ``tests/client/test_client.py`` runs the same calls)::

        with Client("localhost:50051") as client:
            reply = client.recommend("alice", k=10, timeout=0.5)
    """

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: Tls | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy | None = DEFAULT_RETRY,
        balance: str = "round_robin",
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if tls is not None and credentials is not None:
            raise ValueError("pass tls or credentials, not both")
        channel_options = [
            ("grpc.lb_policy_name", balance),
            *(retry.channel_options() if retry is not None else [("grpc.enable_retries", 0)]),
            *(tls.channel_options() if tls is not None else []),
            *options,
        ]
        if tls is not None:
            credentials = tls.credentials()
        if credentials is None:
            self.channel = grpc.insecure_channel(target, options=channel_options)
        else:
            self.channel = grpc.secure_channel(target, credentials, options=channel_options)
        calls = self.channel
        if token is not None:
            calls = grpc.intercept_channel(self.channel, BearerToken(token))
        self.target, self.timeouts, self.retry = target, timeouts, retry
        self.recommender = recommender_pb2_grpc.RecommenderStub(calls)
        self.events = events_pb2_grpc.EventsStub(calls)
        self.admin = admin_pb2_grpc.AdminStub(calls)
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the event streams still open, then close the channel."""
        for stream in list(self._streams):
            stream.cancel()
        self.channel.close()

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        exclude_item_ids: Iterable[str] = (),
        source_item_ids: Iterable[str] = (),
        exclude_seen: bool = False,
        strategy: str = "",
        timeout: float | None = None,
    ) -> recommender_pb2.RecommendResponse:
        """Top-``k`` target items for ``user_id`` (``Recommender.Recommend``).

        Raises
        ------
        InvalidArgumentError
            Empty user id, ``k`` out of range, too many ids, unknown strategy.
        DeadlineExceededError, UnavailableError, ClientError
            As every call.
        """
        request = recommender_pb2.RecommendRequest(
            user_id=user_id,
            k=k,
            exclude_item_ids=exclude_item_ids,
            source_item_ids=source_item_ids,
            exclude_seen=exclude_seen,
            strategy=strategy,
        )
        return self._unary(
            "Recommend", self.recommender.Recommend, request, timeout, self.timeouts.recommend
        )

    def score(
        self,
        user_id: str,
        item_ids: Iterable[str],
        *,
        source_item_ids: Iterable[str] = (),
        strategy: str = "",
        timeout: float | None = None,
    ) -> recommender_pb2.ScoreResponse:
        """Scores of ``item_ids`` for ``user_id``, in request order (``Recommender.Score``)."""
        request = recommender_pb2.ScoreRequest(
            user_id=user_id, item_ids=item_ids, source_item_ids=source_item_ids, strategy=strategy
        )
        return self._unary("Score", self.recommender.Score, request, timeout, self.timeouts.score)

    def model_info(self, *, timeout: float | None = None) -> recommender_pb2.ModelInfo:
        """The served bundle and the server limits (``Recommender.GetModelInfo``)."""
        return self._unary(
            "GetModelInfo",
            self.recommender.GetModelInfo,
            recommender_pb2.GetModelInfoRequest(),
            timeout,
            self.timeouts.model_info,
        )

    def ingest(
        self, events: Iterable[events_pb2.Event], *, sequence: int = 0, timeout: float | None = None
    ) -> events_pb2.EventAck:
        """Send one batch and wait for its ack (``Events.IngestEvents``); safe to resend."""
        batch = events_pb2.EventBatch(sequence=sequence, events=events)
        return self._unary(
            "IngestEvents", self.events.IngestEvents, batch, timeout, self.timeouts.ingest
        )

    def user_state(self, user_id: str, *, timeout: float | None = None) -> events_pb2.UserState:
        """The online-learning state of ``user_id`` (``Events.GetUserState``)."""
        return self._unary(
            "GetUserState",
            self.events.GetUserState,
            events_pb2.GetUserStateRequest(user_id=user_id),
            timeout,
            self.timeouts.user_state,
        )

    def reload_bundle(
        self, path: str = "", *, force: bool = False, timeout: float | None = None
    ) -> admin_pb2.ReloadBundleResponse:
        """Hot-reload the server's bundle (``Admin.ReloadBundle``; needs the admin role).

        ``path`` is a bundle or a directory of versions on the server ("" = its
        ``bundle_path``). A refused bundle raises :class:`~coldbridge_client.ClientError`
        with code ``FAILED_PRECONDITION``; the server keeps its old bundle.
        """
        request = admin_pb2.ReloadBundleRequest(path=path, force=force)
        return self._unary(
            "ReloadBundle", self.admin.ReloadBundle, request, timeout, self.timeouts.reload
        )

    def bundle_status(self, *, timeout: float | None = None) -> admin_pb2.BundleStatus:
        """The served bundle and the last reload's outcome (``Admin.GetBundleStatus``)."""
        return self._unary(
            "GetBundleStatus",
            self.admin.GetBundleStatus,
            admin_pb2.GetBundleStatusRequest(),
            timeout,
            self.timeouts.model_info,
        )

    def delete_user(
        self, user_id: str, *, timeout: float | None = None
    ) -> events_pb2.DeleteUserResponse:
        """Erase ``user_id``'s events and online state durably (``Events.DeleteUser``, admin).

        Idempotent: deleting an unknown or already deleted user returns ``deleted_events=0``.
        """
        return self._unary(
            "DeleteUser",
            self.events.DeleteUser,
            events_pb2.DeleteUserRequest(user_id=user_id),
            timeout,
            self.timeouts.delete_user,
        )

    def stream_events(
        self,
        *,
        max_unacked: int = 64,
        reconnect: ReconnectPolicy = DEFAULT_RECONNECT,
        on_ack: Callable[[events_pb2.EventAck], None] | None = None,
    ) -> EventStream:
        """Open an :class:`~coldbridge_client.EventStream` (``Events.StreamEvents``)."""
        stream = EventStream(
            self.events, max_unacked=max_unacked, reconnect=reconnect, on_ack=on_ack
        )
        self._streams.add(stream)
        return stream

    @staticmethod
    def _unary(
        name: str,
        method: grpc.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
        timeout: float | None,
        default: float | None,
    ) -> _Response:
        """Call ``method`` with the deadline; map a failure to a ``ClientError``."""
        deadline = default if timeout is None else timeout
        try:
            return method(request, timeout=deadline)
        except grpc.RpcError as exc:
            raise map_rpc_error(name, exc, deadline) from exc
