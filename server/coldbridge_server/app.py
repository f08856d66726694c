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
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge_plugins import TransferStrategy, get_plugin_manager, load_strategies
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry
from river import optim

from coldbridge_server.bundle import Bundle, load_bundle, resolve_bundle_dir
from coldbridge_server.config import Settings
from coldbridge_server.core import UserStates
from coldbridge_server.errors import ConfigError
from coldbridge_server.observability.interceptor import ServerInterceptor
from coldbridge_server.observability.metrics import Metrics, serve_metrics
from coldbridge_server.server import HEALTH_SERVICES, ColdbridgeServer
from coldbridge_server.serving.batch import TopkBatcher
from coldbridge_server.serving.engine import Limits, RecommendationEngine
from coldbridge_server.serving.resolve import UserResolver
from coldbridge_server.serving.route import StrategyRouter, parse_weights
from coldbridge_server.serving.score import OnnxScorer
from coldbridge_server.serving.servicer import SERVICE_NAME, RecommenderServicer
from coldbridge_server.streaming.ingest import Ingestor
from coldbridge_server.streaming.online import ColdStartEmbeddings
from coldbridge_server.streaming.servicer import EVENTS_SERVICE_NAME, EventsServicer
from coldbridge_server.streaming.sqlite_store import SqliteEventStore
from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.update import OnlineUpdater

__all__ = [
    "ColdbridgeServer",
    "build_engine",
    "build_ingestor",
    "client_address",
    "create_server",
    "serve",
]

logger = logging.getLogger(__name__)


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
    states = UserStates()
    engine = build_engine(settings, bundle, strategies, metrics, states)
    ingestor = build_ingestor(settings, engine.resolver, states, metrics)
    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.max_workers),
        interceptors=[ServerInterceptor(metrics, access_log=settings.access_log)],
        options=[("grpc.max_receive_message_length", settings.max_message_bytes)],
    )
    recommender_pb2_grpc.add_RecommenderServicer_to_server(
        RecommenderServicer(engine), grpc_server
    )
    events_pb2_grpc.add_EventsServicer_to_server(
        EventsServicer(ingestor, engine.resolver, states,
                       max_batch_events=settings.max_batch_events,
                       window=settings.ingest_queue_size, metrics=metrics),
        grpc_server,
    )
    health_servicer = health.HealthServicer()
    for service in HEALTH_SERVICES:
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


def build_engine(settings: Settings, bundle: Bundle,
                 strategies: Mapping[str, type[TransferStrategy]], metrics: Metrics | None = None,
                 states: UserStates | None = None) -> RecommendationEngine:
    """Build the serving side: scorer, strategy router, resolver, batcher, engine.

    Raises
    ------
    ConfigError
        If the strategy settings name a strategy the bundle cannot serve.
    ModelLoadError
        If the ONNX models cannot be loaded.
    """
    threads = settings.intra_op_threads
    observe = None if metrics is None else metrics.observe_inference
    scorer = OnnxScorer(bundle, intra_op_threads=threads, observe=observe)
    router = StrategyRouter(bundle, strategies, scorer.bridge, default=settings.strategy,
                            weights=parse_weights(settings.strategy_weights), metrics=metrics,
                            threads=threads)
    resolver = UserResolver(bundle, scorer, router, states=states,
                            warm_threshold=settings.warm_threshold)
    batcher = None
    if settings.topk_batch_size > 1:
        observe_batch = None if metrics is None else metrics.topk_batch_size.observe
        batcher = TopkBatcher(scorer.topk, max_batch=settings.topk_batch_size,
                              observe_batch=observe_batch)
    limits = Limits(max_k=settings.max_k, max_request_ids=settings.max_request_ids)
    return RecommendationEngine(bundle, limits, scorer=scorer, resolver=resolver,
                                batcher=batcher, metrics=metrics)


def build_ingestor(settings: Settings, model: UserResolver, states: UserStates,
                   metrics: Metrics | None = None) -> Ingestor:
    """Build the streaming side over ``model``: learner, updater and ingestor.

    The SQLite store in ``settings.state_dir`` is opened when the ingestor recovers.

    Raises
    ------
    ConfigError
        If the state directory cannot be created.
    """
    bundle = model.bundle
    learner = ColdStartEmbeddings(
        bundle.target_item_embeddings, bundle.target_item_bias,
        optimizer=optim.SGD(settings.online_learning_rate), l2=settings.online_l2,
        n_negatives=settings.online_negatives, release_after=settings.warm_threshold, seed=0,
    )
    observe = None if metrics is None else metrics.observe_prequential
    updater = OnlineUpdater(bundle, model, states, learner,
                            warm_threshold=settings.warm_threshold,
                            prequential_k=settings.prequential_k,
                            prequential_sample_rate=settings.prequential_sample_rate,
                            observe=observe)
    try:
        Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("state_dir", f"cannot create {settings.state_dir}: {exc}") from exc

    def open_store() -> EventStore:
        return SqliteEventStore(settings.state_dir, synchronous=settings.state_sync)

    return Ingestor(open_store, updater, queue_size=settings.ingest_queue_size,
                    snapshot_every=settings.snapshot_every_events, metrics=metrics)


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
