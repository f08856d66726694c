"""Assemble and run the gRPC server: Recommender + grpc.health.v1 + server reflection.

Lifecycle::

    create_server()  load + validate the bundle, open the ONNX sessions, bind the port
                     (any BundleError / ModelLoadError / ConfigError is raised here)
    server.start()   accept RPCs; health NOT_SERVING, Recommend/Score -> UNAVAILABLE;
                     a background thread warms every model up, then health SERVING
                     for "" and "coldbridge.v1.Recommender"
                     and "coldbridge.v1.Events" (after the online state is recovered:
                     snapshot + event-log replay, then the ingest writer starts)
    server.stop(g)   health enter_graceful_shutdown() (NOT_SERVING), then grpc stop(g),
                     then the ingest writer drains, snapshots and closes the event log

:func:`serve` runs that cycle in the foreground until SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from types import FrameType
from typing import Any

import grpc
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge_plugins import TransferStrategy, get_plugin_manager, load_strategies
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from coldbridge_server.bundle import Bundle, load_bundle, resolve_bundle_dir
from coldbridge_server.config import Settings
from coldbridge_server.engine import Limits, RecommendationEngine
from coldbridge_server.errors import ConfigError, ModelLoadError
from coldbridge_server.events_servicer import EVENTS_SERVICE_NAME, EventsServicer
from coldbridge_server.ingest import Ingestor, build_ingestor
from coldbridge_server.interceptor import ServerInterceptor
from coldbridge_server.metrics import Metrics, serve_metrics
from coldbridge_server.lifecycle import UserStates
from coldbridge_server.routing import parse_weights
from coldbridge_server.servicer import SERVICE_NAME, RecommenderServicer

__all__ = ["ColdbridgeServer", "client_address", "create_server", "serve"]

logger = logging.getLogger(__name__)
_HEALTH_SERVICES = (health.OVERALL_HEALTH, SERVICE_NAME, EVENTS_SERVICE_NAME)


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

    def stop(self, grace: float | None) -> threading.Event:
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

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[Any]) -> None:
        """Delegate to the wrapped server."""
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        """Delegate to the wrapped server."""
        self._server.add_registered_method_handlers(service_name, method_handlers)

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
            for service in _HEALTH_SERVICES:
                self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        finally:
            self._warm.set()


def create_server(
    settings: Settings,
    *,
    bundle: Bundle | None = None,
    strategies: Mapping[str, type[TransferStrategy]] | None = None,
    registry: CollectorRegistry | None = None,
) -> tuple[ColdbridgeServer, int]:
    """Build the server for ``settings`` and bind ``settings.host:settings.port``.

    Parameters
    ----------
    settings
        Server settings; ``port`` may be 0 to pick a free port.
    bundle
        An already loaded bundle; by default it is loaded from ``settings.bundle_path``
        (a bundle or a directory of bundle versions, newest wins).
    strategies
        ``{name: strategy class}``; by default every strategy registered through the
        ``coldbridge.strategies`` plugin entry points (plus the built-ins). The bundle's strategy
        must be among them.
    registry
        Prometheus registry for the server's metrics (default: a new one, so several
        servers in one process never collide). :func:`serve` exposes it over HTTP.

    Returns
    -------
    tuple
        The (not yet started) server and the bound port.

    Raises
    ------
    ConfigError
        If no bundle is given and ``bundle_path`` is empty, the bundle's strategy is not
        registered, or the address cannot be bound.
    PluginValidationError
        If a strategy plugin breaks the contract (the message names it).
    BundleError, ModelLoadError
        If the bundle or its models are invalid.
    """
    if bundle is None:
        if not settings.bundle_path:
            raise ConfigError("bundle_path", "no bundle given (set COLDBRIDGE_BUNDLE_PATH)")
        bundle = load_bundle(resolve_bundle_dir(settings.bundle_path))
    if strategies is None:
        strategies = load_strategies(get_plugin_manager())
    if bundle.strategy not in strategies:
        raise ConfigError(
            "strategy",
            f"bundle {bundle.version} needs strategy {bundle.strategy!r}, registered: "
            f"{sorted(strategies)}",
        )
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    metrics.bundle_info.info(
        {"version": bundle.version, "strategy": bundle.strategy, "created_at": bundle.created_at,
         "source_domain": bundle.source_domain, "target_domain": bundle.target_domain}
    )
    limits = Limits(max_k=settings.max_k, max_request_ids=settings.max_request_ids)
    engine = RecommendationEngine(
        bundle, limits, strategies=strategies, default_strategy=settings.strategy,
        strategy_weights=parse_weights(settings.strategy_weights),
        intra_op_threads=settings.intra_op_threads, metrics=metrics,
        states=UserStates(), warm_threshold=settings.warm_threshold,
        topk_batch_size=settings.topk_batch_size,
    )
    ingestor = build_ingestor(settings, engine.resolver, metrics)
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers),
        interceptors=[ServerInterceptor(metrics, access_log=settings.access_log)],
        options=[("grpc.max_receive_message_length", settings.max_message_bytes)],
    )
    recommender_pb2_grpc.add_RecommenderServicer_to_server(
        RecommenderServicer(engine), grpc_server
    )
    events_pb2_grpc.add_EventsServicer_to_server(
        EventsServicer(ingestor, engine.resolver, max_batch_events=settings.max_batch_events,
                       window=settings.ingest_queue_size, metrics=metrics),
        grpc_server,
    )
    health_servicer = health.HealthServicer()
    for service in _HEALTH_SERVICES:
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    services = (SERVICE_NAME, EVENTS_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(services, grpc_server)
    address = f"{settings.host}:{settings.port}"
    try:
        port = grpc_server.add_insecure_port(address)
    except RuntimeError as exc:
        ingestor.close()
        raise ConfigError("port", f"cannot bind {address}: {exc}") from exc
    return ColdbridgeServer(grpc_server, engine, health_servicer, metrics, ingestor), port


def client_address(host: str, port: int) -> str:
    """Address a local client should dial for a server bound to ``host:port``."""
    wildcard = host in ("0.0.0.0", "[::]", "::", "")
    return f"{'127.0.0.1' if wildcard else host}:{port}"


def serve(
    settings: Settings,
    on_ready: Callable[[str], None] | None = None,
    *,
    bundle: Bundle | None = None,
) -> None:
    """Run the server until SIGTERM or SIGINT, then shut down gracefully.

    Parameters
    ----------
    settings
        Server settings.
    on_ready
        Called with the client address (``"127.0.0.1:50051"``) once health is SERVING.
    bundle
        Optional pre-loaded bundle (else loaded from ``settings.bundle_path``).

    Raises
    ------
    ConfigError, BundleError, ModelLoadError
        At start-up, before any traffic is served.
    """
    server, port = create_server(settings, bundle=bundle)
    http = None
    if settings.metrics_port >= 0:
        http, metrics_port = serve_metrics(server.metrics, settings.metrics_port,
                                           settings.metrics_host)
        logger.info("metrics on http://%s/metrics",
                    client_address(settings.metrics_host, metrics_port))
    stop = threading.Event()
    previous = _install_signal_handlers(stop)
    server.start()
    try:
        server.wait_until_ready()
        logger.info("serving bundle %s on %s:%d", server.engine.bundle.version,
                    settings.host, port)
        if on_ready is not None:
            on_ready(client_address(settings.host, port))
        while not stop.wait(0.5):
            pass
    finally:
        logger.info("shutting down (grace %.1fs)", settings.grace_seconds)
        server.stop(settings.grace_seconds).wait()
        if http is not None:
            http.shutdown()
            http.server_close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # signal handlers can only be installed from the main thread

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
