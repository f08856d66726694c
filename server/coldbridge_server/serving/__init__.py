"""The read path: resolve a user, route to a strategy, score with ONNX, batch top-k runs.

Modules: ``resolve`` (user -> vector), ``route`` (strategy choice and isolation), ``score``
(onnxruntime sessions), ``batch`` (dynamic top-k batching), ``engine`` (the domain API),
``servicer`` (``coldbridge.v1.Recommender``). Serving never imports
:mod:`coldbridge_server.streaming`; both meet in :mod:`coldbridge_server.core`.
"""

from __future__ import annotations

from coldbridge_server.serving.batch import TopkBatcher
from coldbridge_server.serving.engine import Limits, RecommendationEngine, Scored
from coldbridge_server.serving.resolve import ResolvedUser, UserResolver
from coldbridge_server.serving.route import StrategyRouter, parse_weights
from coldbridge_server.serving.score import OnnxScorer
from coldbridge_server.serving.servicer import SERVICE_NAME, RecommenderServicer

__all__ = [
    "SERVICE_NAME",
    "Limits",
    "OnnxScorer",
    "RecommendationEngine",
    "RecommenderServicer",
    "ResolvedUser",
    "Scored",
    "StrategyRouter",
    "TopkBatcher",
    "UserResolver",
    "parse_weights",
]
