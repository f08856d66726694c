"""Metrics, the gRPC interceptor (metrics, request ids, access log) and logging set-up.

Modules: ``metrics`` (every series on an injected registry, and the methods that record
them), ``fastmetrics`` (sub-microsecond counters and histograms), ``interceptor`` (one
``grpc.ServerInterceptor`` for every RPC), ``logs`` (text / JSON lines with request ids).
"""

from __future__ import annotations

from coldbridge_server.observability.interceptor import ServerInterceptor
from coldbridge_server.observability.logs import configure_logging
from coldbridge_server.observability.metrics import Metrics, serve_metrics

__all__ = ["Metrics", "ServerInterceptor", "configure_logging", "serve_metrics"]
