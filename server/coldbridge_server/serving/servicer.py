"""The ``coldbridge.v1.Recommender`` servicer: a thin translator around the engine.

Requests become :class:`~coldbridge_server.serving.engine.RecommendationEngine` calls and
answers become messages; domain errors become status codes in
:func:`coldbridge_server.status.map_errors`, the server's one status-mapping module.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
from coldbridge.v1 import recommender_pb2, recommender_pb2_grpc

from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.serving.engine import RecommendationEngine, Scored
from coldbridge_server.status import blend_pb, map_errors, provenance_pb, stage_pb

__all__ = ["SERVICE_NAME", "RecommenderServicer"]

SERVICE_NAME: str = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name


class RecommenderServicer(recommender_pb2_grpc.RecommenderServicer):
    """Implements ``coldbridge.v1.Recommender`` on top of a :class:`RecommendationEngine`.

    Parameters
    ----------
    engine
        The served engine (a hot reload replaces it).
    degraded
        Returns the ``degraded_reason`` of an answer computed now (``""``: none), e.g.
        :meth:`~coldbridge_server.streaming.ingest.Ingestor.degraded_reason`.
    metrics
        Counts degraded answers (``coldbridge_degraded_answers_total``).
    """

    def __init__(
        self,
        engine: RecommendationEngine,
        degraded: Callable[[], str] = str,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self._degraded = degraded
        self._metrics = metrics

    def _degraded_reason(self) -> str:
        reason = self._degraded()
        if reason and self._metrics is not None:
            self._metrics.degraded_answers.labels(reason).inc()
        return reason

    def Recommend(  # noqa: N802 - gRPC method name
        self, request: recommender_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> recommender_pb2.RecommendResponse:
        engine = self.engine  # one generation per call: a hot reload swaps self.engine
        with map_errors(context):
            result = engine.recommend(
                request.user_id,
                request.k,
                request.exclude_item_ids,
                request.source_item_ids,
                exclude_seen=request.exclude_seen,
                strategy=request.strategy,
            )
        return recommender_pb2.RecommendResponse(
            items=_items(result),
            provenance=provenance_pb(result.provenance),
            model_version=engine.bundle.version,
            strategy=result.strategy or engine.bundle.strategy,
            fallback_reason=result.fallback_reason,
            unknown_item_ids=result.unknown_item_ids,
            stage=stage_pb(result.stage),
            blend=blend_pb(result.blend),
            degraded_reason=self._degraded_reason(),
        )

    def Score(  # noqa: N802 - gRPC method name
        self, request: recommender_pb2.ScoreRequest, context: grpc.ServicerContext
    ) -> recommender_pb2.ScoreResponse:
        engine = self.engine
        with map_errors(context):
            result = engine.score(
                request.user_id,
                request.item_ids,
                request.source_item_ids,
                strategy=request.strategy,
            )
        return recommender_pb2.ScoreResponse(
            items=_items(result),
            unknown_item_ids=result.unknown_item_ids,
            provenance=provenance_pb(result.provenance),
            model_version=engine.bundle.version,
            strategy=result.strategy or engine.bundle.strategy,
            fallback_reason=result.fallback_reason,
            stage=stage_pb(result.stage),
            blend=blend_pb(result.blend),
            degraded_reason=self._degraded_reason(),
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
