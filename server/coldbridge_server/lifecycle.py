"""The foreground life of a server (:func:`coldbridge_server.app.serve`): signals and drain.

::

    start      health NOT_SERVING (liveness SERVING); calls to Recommender/Events UNAVAILABLE
    ready      models warm and event log replayed: health SERVING, calls answered
    SIGTERM    health NOT_SERVING for "", coldbridge.v1.Recommender, coldbridge.v1.Events
    (or INT)   and coldbridge_ready 0, but every call is still served for drain_seconds
               (a second signal ends the drain at once)
    stop       new calls refused; in-flight calls get grace_seconds, then are cancelled;
               the event writer applies what it holds, snapshots and closes; exit 0

A signal before the server is ready skips the drain (no load balancer sends to it yet).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from coldbridge_server.config import Settings
from coldbridge_server.errors import ConfigError
from coldbridge_server.observability.metrics import Metrics, serve_metrics
from coldbridge_server.server import ColdbridgeServer

__all__ = ["Shutdown", "run_until_signal", "start_metrics", "stop_metrics"]

logger = logging.getLogger(__name__)


class Shutdown:
    """SIGTERM/SIGINT handling: the first signal asks to stop, a second hurries the drain.

    Handlers are installed only from the main thread (elsewhere nothing is installed and
    the events can be set directly).
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.hurry = threading.Event()
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Install the handlers (from the main thread only; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        """Put the previous handlers back."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested.is_set():
            self.hurry.set()
        self.requested.set()


def start_metrics(metrics: Metrics, settings: Settings) -> Any:
    """Serve ``/metrics`` as ``settings`` say; return the HTTP server (``None``: disabled).

    Raises
    ------
    ConfigError
        If the metrics port cannot be bound (in use, or not an address of this host).
    """
    if settings.metrics_port < 0:
        return None
    host, port = settings.metrics_host, settings.metrics_port
    try:
        http, bound = serve_metrics(metrics, port, host)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError("metrics_port", f"cannot listen on {host}:{port}: {reason}") from None
    logger.info("metrics on http://%s:%d/metrics", host, bound)
    return http


def stop_metrics(http: Any) -> None:
    """Stop the HTTP server of :func:`start_metrics` (``None``: nothing to do)."""
    if http is not None:
        http.shutdown()
        http.server_close()


def run_until_signal(
    server: ColdbridgeServer,
    shutdown: Shutdown,
    settings: Settings,
    on_ready: Callable[[], None],
) -> None:
    """Wait for readiness (then call ``on_ready``), then for a signal, then drain.

    Returns when the server should stop (:meth:`ColdbridgeServer.stop` is the caller's).

    Raises
    ------
    ModelLoadError
        If the warm-up failed.
    """
    while not server.wait_until_ready(0.2):
        if shutdown.requested.is_set():
            logger.info("stop requested during start-up")
            return
    on_ready()
    while not shutdown.requested.wait(0.5):
        pass
    server.drain()
    logger.info(
        "draining: health NOT_SERVING, still serving for %.1fs (a second signal ends it)",
        settings.drain_seconds,
    )
    deadline = time.monotonic() + settings.drain_seconds
    while not shutdown.hurry.is_set() and (left := deadline - time.monotonic()) > 0:
        shutdown.hurry.wait(min(left, 0.2))
