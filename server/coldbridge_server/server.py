"""The running server: a ``grpc.Server`` that warms the model up and recovers online state.

:func:`coldbridge_server.app.create_server` builds it; see :mod:`coldbridge_server.app` for
the lifecycle (NOT_SERVING until warm-up and recovery are done, then SERVING).

Probes: :data:`LIVENESS_SERVICE` is SERVING from construction until :meth:`ColdbridgeServer.stop`
(the process answers); :data:`HEALTH_SERVICES` are the readiness services, SERVING from the end
of warm-up and replay until :meth:`ColdbridgeServer.drain`. A :meth:`~ColdbridgeServer.stop`
during the start-up replay waits for the replay to end before the event log is closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2

from coldbridge_server.admission import AdmissionInterceptor
from coldbridge_server.errors import ModelLoadError
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.serving.engine import RecommendationEngine
from coldbridge_server.serving.servicer import SERVICE_NAME
from coldbridge_server.streaming.ingest import Ingestor
from coldbridge_server.streaming.servicer import EVENTS_SERVICE_NAME

__all__ = ["HEALTH_SERVICES", "LIVENESS_SERVICE", "ColdbridgeServer"]

logger = logging.getLogger(__name__)
HEALTH_SERVICES: tuple[str, ...] = (health.OVERALL_HEALTH, SERVICE_NAME, EVENTS_SERVICE_NAME)
"""The health-checked services: all of them turn SERVING together after warm-up."""
LIVENESS_SERVICE = "coldbridge.liveness"
"""Health service name of the liveness probe: SERVING from start-up until the process stops."""


class ColdbridgeServer(grpc.Server):
    """A ``grpc.Server`` that warms the model up after :meth:`start`.

    Everything grpc-specific is delegated to the wrapped server. The extra attributes are
    ``engine`` (the :class:`RecommendationEngine`) and ``health`` (the registered
    ``HealthServicer``) and ``metrics`` (the :class:`Metrics` on the injected registry)
    and ``ingestor`` (the online-learning :class:`Ingestor`, or ``None``) and ``admission``
    (the :class:`AdmissionInterceptor` whose start-up gate opens with health SERVING).
    """

    def __init__(
        self,
        server: grpc.Server,
        engine: RecommendationEngine,
        health: health.HealthServicer,
        metrics: Metrics,
        ingestor: Ingestor | None = None,
        admission: AdmissionInterceptor | None = None,
    ) -> None:
        self._server = server
        self.engine = engine
        self.health = health
        self.metrics = metrics
        self.ingestor = ingestor
        self.admission = admission
        self._warm = threading.Event()
        self._error: ModelLoadError | None = None
        self._stopping = threading.Event()
        self._warmup_thread: threading.Thread | None = None

    def start(self) -> None:
        """Start serving (NOT_SERVING) and warm up in the background (then SERVING)."""
        self._server.start()
        self._warmup_thread = threading.Thread(
            target=self._warmup, name="coldbridge-warmup", daemon=True
        )
        self._warmup_thread.start()

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
        return not self._stopping.is_set()

    def drain(self) -> None:
        """Turn readiness NOT_SERVING (all :data:`HEALTH_SERVICES`) and keep serving.

        Load balancers that poll health stop sending new calls; liveness stays SERVING.
        """
        for service in HEALTH_SERVICES:
            self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
        self.metrics.ready.set(0)

    def stop(self, grace: float | None = None) -> threading.Event:
        """Report NOT_SERVING to health checks, then stop with ``grace`` seconds.

        The returned event is set once the in-flight calls ended, the start-up replay (if
        one is running) finished, and the event log is closed.
        """
        self._stopping.set()
        self.health.enter_graceful_shutdown()
        self.metrics.ready.set(0)
        event: threading.Event = self._server.stop(grace)
        closed, ingestor, warmup = threading.Event(), self.ingestor, self._warmup_thread

        def close() -> None:  # after the in-flight RPCs: the last batches get applied
            event.wait()
            if warmup is not None:
                warmup.join()  # never close the event log under the start-up replay
            if ingestor is not None:
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
            if self._stopping.is_set():
                return  # stopped during the start-up: stay NOT_SERVING
            if self.admission is not None:
                self.admission.open()
            self.metrics.ready.set(1)
            for service in HEALTH_SERVICES:
                self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        finally:
            self._warm.set()
