"""The running server: a ``grpc.Server`` that warms the model up and recovers online state.

:func:`coldbridge_server.app.create_server` builds it; see :mod:`coldbridge_server.app` for
the lifecycle (NOT_SERVING until warm-up and recovery are done, then SERVING).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2

from coldbridge_server.errors import ModelLoadError
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.serving.engine import RecommendationEngine
from coldbridge_server.serving.servicer import SERVICE_NAME
from coldbridge_server.streaming.ingest import Ingestor
from coldbridge_server.streaming.servicer import EVENTS_SERVICE_NAME

__all__ = ["HEALTH_SERVICES", "ColdbridgeServer"]

logger = logging.getLogger(__name__)
HEALTH_SERVICES: tuple[str, ...] = (health.OVERALL_HEALTH, SERVICE_NAME, EVENTS_SERVICE_NAME)
"""The health-checked services: all of them turn SERVING together after warm-up."""


class ColdbridgeServer(grpc.Server):
    """A ``grpc.Server`` that warms the model up after :meth:`start`.

    Everything grpc-specific is delegated to the wrapped server. The extra attributes are
    ``engine`` (the :class:`RecommendationEngine`) and ``health`` (the registered
    ``HealthServicer``) and ``metrics`` (the :class:`Metrics` on the injected registry)
    and ``ingestor`` (the online-learning :class:`Ingestor`, or ``None``).
    """

    def __init__(
        self,
        server: grpc.Server,
        engine: RecommendationEngine,
        health: health.HealthServicer,
        metrics: Metrics,
        ingestor: Ingestor | None = None,
    ) -> None:
        self._server = server
        self.engine = engine
        self.health = health
        self.metrics = metrics
        self.ingestor = ingestor
        self._warm = threading.Event()
        self._error: ModelLoadError | None = None

    def start(self) -> None:
        """Start serving (NOT_SERVING) and warm up in the background (then SERVING)."""
        self._server.start()
        threading.Thread(target=self._warmup, name="coldbridge-warmup", daemon=True).start()

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Block until warm-up finished; return whether health is SERVING.

        Raises
        ------
        ModelLoadError
            If the warm-up failed (health then stays NOT_SERVING).
        """
        if not self._warm.wait(timeout):
            return False
        if self._error is not None:
            raise self._error
        return True

    def stop(self, grace: float | None = None) -> threading.Event:
        """Report NOT_SERVING to health checks, then stop with ``grace`` seconds."""
        self.health.enter_graceful_shutdown()
        event: threading.Event = self._server.stop(grace)
        if self.ingestor is None:
            return event
        closed, ingestor = threading.Event(), self.ingestor

        def close() -> None:  # after the in-flight RPCs: the last batches get applied
            event.wait()
            ingestor.close()
            closed.set()

        threading.Thread(target=close, name="coldbridge-ingest-close", daemon=True).start()
        return closed

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stopped or ``timeout`` passed."""
        return bool(self._server.wait_for_termination(timeout))

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler[Any, Any]]
    ) -> None:
        """Delegate to the wrapped server."""
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        """Delegate to the wrapped server."""
        cast(Any, self._server).add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        """Delegate to the wrapped server."""
        return int(self._server.add_insecure_port(address))

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        """Delegate to the wrapped server."""
        return int(self._server.add_secure_port(address, server_credentials))

    def _warmup(self) -> None:
        try:
            self.engine.warmup()
            if self.ingestor is not None:
                self.ingestor.start()
        except Exception as exc:  # reported to wait_until_ready(), never lost in the thread
            logger.error("warm-up failed, staying NOT_SERVING: %s", exc)
            error = ModelLoadError(f"warm-up failed: {exc}")
            self._error = exc if isinstance(exc, ModelLoadError) else error
            self.metrics.bundle_loads.labels("error").inc()
        else:
            self.metrics.bundle_loads.labels("ok").inc()
            self.metrics.ready.set(1)
            for service in HEALTH_SERVICES:
                self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        finally:
            self._warm.set()
