"""The one place where domain values become gRPC values: errors -> status codes, enums -> pb.

Both servicers (``serving.servicer`` and ``streaming.servicer``) translate through it:

=========================  ====================
``InvalidRequestError``    ``INVALID_ARGUMENT``
``NotReadyError``          ``UNAVAILABLE``
``UnauthenticatedError``   ``UNAUTHENTICATED``
``PermissionDeniedError``  ``PERMISSION_DENIED``
``CapacityError``          ``RESOURCE_EXHAUSTED``
``BundleRefusedError``     ``FAILED_PRECONDITION``
``StorageFullError``       ``RESOURCE_EXHAUSTED``
``StorageError``           ``UNAVAILABLE``
``RequestTooLargeError``   ``RESOURCE_EXHAUSTED``
other ``ColdbridgeError``  ``INTERNAL`` (logged)
=========================  ====================

Any other exception reaches the client as ``UNKNOWN`` (grpc's default). Messages are cut
at :data:`~coldbridge_server.limits.MAX_STATUS_CHARS` characters (client input in them is
already quoted through :func:`~coldbridge_server.limits.shorten`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from coldbridge.v1 import recommender_pb2

from coldbridge_server.core import Blend, Provenance, Stage
from coldbridge_server.errors import (
    BundleRefusedError,
    CapacityError,
    ColdbridgeError,
    InvalidRequestError,
    NotReadyError,
    PermissionDeniedError,
    RequestTooLargeError,
    StorageError,
    StorageFullError,
    UnauthenticatedError,
)
from coldbridge_server.limits import MAX_STATUS_CHARS

__all__ = [
    "blend_pb",
    "map_errors",
    "provenance_pb",
    "stage_pb",
    "status_code",
    "status_message",
]

logger = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[ColdbridgeError], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (CapacityError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (BundleRefusedError, grpc.StatusCode.FAILED_PRECONDITION),
    (StorageFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StorageError, grpc.StatusCode.UNAVAILABLE),
    (RequestTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ColdbridgeError, grpc.StatusCode.INTERNAL),
)
_PROVENANCE = {
    Provenance.WARM_TARGET: recommender_pb2.PROVENANCE_WARM_TARGET,
    Provenance.TRANSFERRED: recommender_pb2.PROVENANCE_TRANSFERRED,
    Provenance.FALLBACK: recommender_pb2.PROVENANCE_FALLBACK,
    Provenance.ONLINE: recommender_pb2.PROVENANCE_ONLINE,
}
_STAGE = {
    Stage.NEW: recommender_pb2.LIFECYCLE_STAGE_NEW,
    Stage.TRANSFERRED: recommender_pb2.LIFECYCLE_STAGE_TRANSFERRED,
    Stage.WARMING: recommender_pb2.LIFECYCLE_STAGE_WARMING,
    Stage.WARM: recommender_pb2.LIFECYCLE_STAGE_WARM,
}


def status_code(error: ColdbridgeError) -> grpc.StatusCode:
    """The status code of ``error`` (the table of the module docstring).

    Examples
    --------
    >>> status_code(InvalidRequestError("k", "must be >= 1")).name
    'INVALID_ARGUMENT'
    """
    return next(code for kind, code in _STATUS if isinstance(error, kind))


@contextmanager
def map_errors(context: grpc.ServicerContext) -> Iterator[None]:
    """Abort the RPC with the status code mapped from a raised ``ColdbridgeError``."""
    try:
        yield
    except ColdbridgeError as exc:
        code = status_code(exc)
        if code is grpc.StatusCode.INTERNAL:
            logger.exception("internal error")
        context.abort(code, status_message(exc))


def status_message(error: ColdbridgeError) -> str:
    """The status message of ``error``, at most ``MAX_STATUS_CHARS`` characters."""
    message = str(error)
    if len(message) <= MAX_STATUS_CHARS:
        return message
    return f"{message[: MAX_STATUS_CHARS - 20]}… ({len(message)} chars)"


def provenance_pb(provenance: Provenance) -> recommender_pb2.Provenance.ValueType:
    """The proto enum value of ``provenance``."""
    return _PROVENANCE[provenance]


def stage_pb(stage: Stage) -> recommender_pb2.LifecycleStage.ValueType:
    """The proto enum value of ``stage``."""
    return _STAGE[stage]


def blend_pb(blend: Blend) -> recommender_pb2.Blend:
    """The proto message of ``blend``."""
    return recommender_pb2.Blend(
        history_weight=blend.history_weight,
        target_events=blend.target_events,
        history_items=blend.history_items,
    )
