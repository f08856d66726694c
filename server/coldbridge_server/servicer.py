"""The gRPC servicer: a thin translator between ``coldbridge.v1`` messages and the engine.

Domain errors become status codes in exactly one place, :func:`_map_errors`:

=========================  ====================
``InvalidRequestError``    ``INVALID_ARGUMENT``
``NotReadyError``          ``UNAVAILABLE``
other ``ColdbridgeError``  ``INTERNAL``
=========================  ====================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from coldbridge.v1 import recommender_pb2, recommender_pb2_grpc

from coldbridge_server.engine import RecommendationEngine, Scored
from coldbridge_server.errors import ColdbridgeError, InvalidRequestError, NotReadyError
from coldbridge_server.lifecycle import Stage
from coldbridge_server.resolver import Provenance

__all__ = ["SERVICE_NAME", "RecommenderServicer", "map_errors", "provenance_pb", "stage_pb"]

SERVICE_NAME: str = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name

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
_STATUS: tuple[tuple[type[ColdbridgeError], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (ColdbridgeError, grpc.StatusCode.INTERNAL),
)
logger = logging.getLogger(__name__)


@contextmanager
def _map_errors(context: grpc.ServicerContext) -> Iterator[None]:
    """Abort the RPC with the status code mapped from a raised ``ColdbridgeError``."""
    try:
        yield
    except ColdbridgeError as exc:
        code = next(code for kind, code in _STATUS if isinstance(exc, kind))
        if code is grpc.StatusCode.INTERNAL:
            logger.exception("internal error")
        context.abort(code, str(exc))


map_errors = _map_errors


def provenance_pb(provenance: Provenance) -> recommender_pb2.Provenance.ValueType:
    """The proto enum value of ``provenance``."""
    return _PROVENANCE[provenance]


def stage_pb(stage: Stage) -> recommender_pb2.LifecycleStage.ValueType:
    """The proto enum value of ``stage``."""
    return _STAGE[stage]


class RecommenderServicer(recommender_pb2_grpc.RecommenderServicer):
    """Implements ``coldbridge.v1.Recommender`` on top of a :class:`RecommendationEngine`."""

    def __init__(self, engine: RecommendationEngine) -> None:
        self.engine = engine

    def Recommend(  # noqa: N802 - gRPC method name
        self, request: recommender_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> recommender_pb2.RecommendResponse:
        with _map_errors(context):
            result = self.engine.recommend(
                request.user_id, request.k, request.exclude_item_ids, request.source_item_ids,
                exclude_seen=request.exclude_seen, strategy=getattr(request, "strategy", ""),
            )
        return recommender_pb2.RecommendResponse(
            items=_items(result),
            provenance=_PROVENANCE[result.provenance],
            model_version=self.engine.bundle.version,
            strategy=result.strategy or self.engine.bundle.strategy,
            fallback_reason=result.fallback_reason,
            unknown_item_ids=result.unknown_item_ids,
            stage=_STAGE[result.stage],
        )

    def Score(  # noqa: N802 - gRPC method name
        self, request: recommender_pb2.ScoreRequest, context: grpc.ServicerContext
    ) -> recommender_pb2.ScoreResponse:
        with _map_errors(context):
            result = self.engine.score(
                request.user_id, request.item_ids, request.source_item_ids,
                strategy=getattr(request, "strategy", ""),
            )
        return recommender_pb2.ScoreResponse(
            items=_items(result),
            unknown_item_ids=result.unknown_item_ids,
            provenance=_PROVENANCE[result.provenance],
            model_version=self.engine.bundle.version,
            strategy=result.strategy or self.engine.bundle.strategy,
            fallback_reason=result.fallback_reason,
            stage=_STAGE[result.stage],
        )

    def GetModelInfo(  # noqa: N802 - gRPC method name
        self, request: recommender_pb2.GetModelInfoRequest, context: grpc.ServicerContext
    ) -> recommender_pb2.ModelInfo:
        b, limits = self.engine.bundle, self.engine.limits
        return recommender_pb2.ModelInfo(
            bundle_version=b.version,
            created_at=b.created_at,
            strategy=b.strategy,
            feedback=b.feedback,
            source_domain=b.source_domain,
            target_domain=b.target_domain,
            source_embedding_dim=b.source_dim,
            target_embedding_dim=b.target_dim,
            num_source_items=len(b.source_item_ids),
            num_target_items=len(b.target_item_ids),
            num_source_users=len(b.source_user_ids),
            num_target_users=len(b.target_user_ids),
            metrics_json=json.dumps(b.metrics, sort_keys=True),
            max_k=limits.max_k,
            max_request_ids=limits.max_request_ids,
            encoder_max_history=b.encoder_max_history,
        )


def _items(result: Scored) -> list[recommender_pb2.ScoredItem]:
    return [recommender_pb2.ScoredItem(item_id=i, score=s) for i, s in result.items]
