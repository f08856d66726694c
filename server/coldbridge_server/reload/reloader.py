"""The hot reload: load, verify, warm up, rebuild the online state, swap (and the watch).

:meth:`BundleReloader.reload` is ``Admin/ReloadBundle``:

1. resolve the path (a bundle, or a directory of versions: the newest wins) and load it
   (manifest, sha256 of every file, array shapes), check its strategy is registered, build
   the new :class:`~coldbridge_server.reload.generation.Generation` (ONNX sessions, router,
   resolver) and warm every model up. Any failure refuses the bundle
   (:class:`~coldbridge_server.errors.BundleRefusedError`, FAILED_PRECONDITION); the old
   generation keeps serving.
2. same embedding space (:func:`~coldbridge_server.reload.generation.same_space`): the new
   updater takes over the old one's states and learner with the writer paused; else the
   states are rebuilt from the event log in the background (:mod:`.rebuild`).
3. swap, with the ingest writer paused: the ingestor applies the next batches with the new
   updater, the stored snapshot is rewritten for the new bundle, and every holder of the
   serving reference (the servicers, the server) gets the new generation. Requests that
   started before keep their reference and finish on the old generation.

Reloads run one at a time (a lock). The optional watch polls ``bundle_path`` every
``bundle_watch_seconds`` and reloads when the newest version differs from the served one;
a refused version is not retried until its manifest changes.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from prometheus_client import Counter, Histogram

from coldbridge_server.bundle import Bundle, load_bundle, resolve_bundle_dir
from coldbridge_server.config import Settings
from coldbridge_server.core import UserStates
from coldbridge_server.errors import BundleRefusedError, ColdbridgeError, NotReadyError
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.reload.generation import Generation, same_space
from coldbridge_server.reload.rebuild import Replay, paused, replay_log
from coldbridge_server.streaming.ingest import Ingestor

__all__ = ["RELOAD_SWITCH_INTERVAL", "BundleReloader", "ReloadResult", "ReloadStatus", "responsive"]

logger = logging.getLogger(__name__)
Build = Callable[[Bundle, UserStates], Generation]
"""Builds the generation of a bundle over fresh user states (``app.build_generation``)."""
_T = TypeVar("_T")
RELOAD_SWITCH_INTERVAL = 0.0005
"""GIL switch interval (s) while a reload runs: a tenth of CPython's default 5 ms."""
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True)
class ReloadResult:
    """What one reload did (``ReloadBundleResponse``)."""

    swapped: bool
    old_version: str
    new_version: str
    path: str
    states_rebuilt: bool = False
    replayed_events: int = 0
    skipped_events: int = 0
    users: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ReloadStatus:
    """The served bundle and reload bookkeeping (``BundleStatus``)."""

    version: str
    path: str
    reloads: int
    last_error: str
    watch_seconds: float


class BundleReloader:
    """Swaps the served generation for a new bundle's (see the module docs).

    Parameters
    ----------
    settings
        Server settings (``bundle_path``, ``bundle_watch_seconds``, ``reload_drain_seconds``).
    current
        The generation built at start-up.
    build
        Builds a bundle's generation over given user states.
    strategies
        Names of the registered strategies (a bundle's default must be among them).
    ingestor
        The ingest pipeline whose writer is paused for the swap.
    metrics
        The server's metrics (``coldbridge_bundle_info`` is updated; the reload metrics are
        registered on its registry).
    """

    def __init__(
        self,
        settings: Settings,
        current: Generation,
        *,
        build: Build,
        strategies: Collection[str],
        ingestor: Ingestor,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.current = current
        self._build = build
        self._strategies = frozenset(strategies)
        self._ingestor = ingestor
        self._metrics = metrics
        self._listeners: list[Callable[[Generation], None]] = []
        self._lock = threading.Lock()
        self._reloads = 0
        self._last_error = ""
        self._refused: set[tuple[Path, int]] = set()
        self.reloads_total = Counter(
            "coldbridge_bundle_reloads",
            "Hot reloads, by outcome (swapped, unchanged, refused, failed).",
            ("outcome",),
            registry=metrics.registry,
        )
        self.reload_seconds = Histogram(
            "coldbridge_bundle_reload_seconds",
            "Wall time of hot reloads that swapped (load, warm-up, state rebuild, swap).",
            buckets=_BUCKETS,
            registry=metrics.registry,
        )

    def on_swap(self, listener: Callable[[Generation], None]) -> None:
        """Call ``listener(generation)`` at every swap, with the ingest writer paused."""
        self._listeners.append(listener)

    def status(self) -> ReloadStatus:
        """The served bundle and the reload bookkeeping."""
        bundle = self.current.bundle
        return ReloadStatus(
            bundle.version,
            str(bundle.path),
            self._reloads,
            self._last_error,
            self.settings.bundle_watch_seconds,
        )

    def reload(self, path: str = "", *, force: bool = False) -> ReloadResult:
        """Load the bundle at ``path`` (default ``bundle_path``) and swap it in.

        Raises
        ------
        BundleRefusedError
            If the bundle cannot be served (the old one keeps serving).
        NotReadyError
            While the server warms up or shuts down.
        ColdbridgeError
            If the state rebuild or the swap fails (the old one keeps serving).
        """
        with self._lock, responsive():
            start = time.perf_counter()
            try:
                result = self._reload(path or self.settings.bundle_path, force, start)
            except BundleRefusedError as exc:
                self._failed("refused", exc)
                raise
            except NotReadyError:
                raise
            except Exception as exc:  # a store or apply error: logged, the old one serves on
                self._failed("failed", exc)
                logger.exception("hot reload failed")
                raise ColdbridgeError(
                    f"reload failed, still serving the old bundle: {exc}"
                ) from exc
            self.reloads_total.labels("swapped" if result.swapped else "unchanged").inc()
            return result

    def watch(self, stopped: Callable[[float], bool]) -> threading.Thread:
        """Poll ``bundle_path`` until ``stopped(bundle_watch_seconds)`` returns true."""
        thread = threading.Thread(
            target=self._watch, args=(stopped,), name="coldbridge-bundle-watch", daemon=True
        )
        thread.start()
        return thread

    def _reload(self, path: str, force: bool, start: float) -> ReloadResult:
        old = self.current
        if not old.engine.ready or not self._ingestor.running:
            raise NotReadyError("the server is still starting or shutting down")
        if not path:
            raise BundleRefusedError("no bundle path given and bundle_path is empty")
        directory = _refusing(lambda: resolve_bundle_dir(path), path)
        if not force and directory.resolve() == old.bundle.path.resolve():
            return ReloadResult(False, old.bundle.version, old.bundle.version, str(directory))
        new = self._load(directory)
        kept = same_space(old.bundle, new.bundle)
        if kept:
            with paused(self._ingestor):
                _take_over(old, new)
                self._swap(new, rebuilt=False)
            replay = Replay()
        else:
            replay = replay_log(
                self._ingestor, new.updater, lambda _: self._swap(new, rebuilt=True)
            )
        seconds = time.perf_counter() - start
        self.reload_seconds.observe(seconds)
        self._reloads += 1
        self._last_error = ""
        self._schedule_close(old)
        logger.info(
            "hot reload %s -> %s in %.2fs (states %s, %d events replayed, %d skipped)",
            old.bundle.version,
            new.bundle.version,
            seconds,
            "kept" if kept else "rebuilt",
            replay.applied,
            replay.skipped,
        )
        return ReloadResult(
            True,
            old.bundle.version,
            new.bundle.version,
            str(directory),
            not kept,
            replay.applied,
            replay.skipped,
            len(new.states),
            seconds,
        )

    def _load(self, directory: Path) -> Generation:
        """Load, verify, build and warm up; every failure refuses the bundle."""
        bundle = _refusing(lambda: load_bundle(directory), str(directory))
        if bundle.strategy not in self._strategies:
            raise BundleRefusedError(
                f"{directory}: bundle {bundle.version} needs strategy {bundle.strategy!r}, "
                f"registered: {sorted(self._strategies)}"
            )
        generation = _refusing(lambda: self._build(bundle, UserStates()), str(directory))
        _refusing(generation.engine.warmup, str(directory))
        return generation

    def _swap(self, new: Generation, *, rebuilt: bool) -> None:
        """Make ``new`` the served generation (the ingest writer is paused)."""
        self._ingestor.replace_updater(new.updater, rebuilt=rebuilt)
        self.current = new
        for listener in self._listeners:
            listener(new)
        b = new.bundle
        self._metrics.bundle_info.info(
            {
                "version": b.version,
                "strategy": b.strategy,
                "created_at": b.created_at,
                "source_domain": b.source_domain,
                "target_domain": b.target_domain,
            }
        )

    def _failed(self, outcome: str, exc: Exception) -> None:
        self.reloads_total.labels(outcome).inc()
        self._last_error = str(exc)
        logger.warning("hot reload %s: %s", outcome, exc)

    def _schedule_close(self, old: Generation) -> None:
        """Close the replaced engine once the requests that started on it are done."""
        timer = threading.Timer(self.settings.reload_drain_seconds, old.engine.close)
        timer.daemon = True
        timer.start()

    def _watch(self, stopped: Callable[[float], bool]) -> None:
        while not stopped(self.settings.bundle_watch_seconds):
            try:
                self._poll()
            except NotReadyError:
                pass  # not warm yet, or stopping: try at the next poll
            except ColdbridgeError:
                pass  # counted, logged and kept in last_error by reload()
            except Exception:  # e.g. an OSError listing bundle_path: the watch goes on
                logger.exception("bundle watch: polling %s failed", self.settings.bundle_path)

    def _poll(self) -> None:
        directory = resolve_bundle_dir(self.settings.bundle_path)
        key = (directory, _mtime(directory / "manifest.json"))
        if directory.resolve() == self.current.bundle.path.resolve() or key in self._refused:
            return
        try:
            self.reload(str(directory))
        except BundleRefusedError:
            self._refused.add(key)
            raise


@contextmanager
def responsive(switch_interval: float = RELOAD_SWITCH_INTERVAL) -> Iterator[None]:
    """Keep request threads responsive while a reload runs in the same process.

    Two speed tricks (``benchmarks/reload_under_load.py`` measures both): ``gc.freeze()``, so
    the collector skips the served objects while the reload allocates (without it a full
    collection of the doubled heap paused every thread for 70-80 ms), and a shorter GIL
    switch interval, so a request thread waiting for the interpreter gets it within
    ``switch_interval`` seconds instead of the default 5 ms while the rebuild computes.
    """
    previous = sys.getswitchinterval()
    gc.freeze()
    sys.setswitchinterval(switch_interval)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
        gc.unfreeze()


def _take_over(old: Generation, new: Generation) -> None:
    """Hand ``old``'s states and learner to ``new`` (same space; the writer is paused)."""
    for state in old.states:
        new.states.publish(state)
    new.updater.learner = old.updater.learner
    new.updater.stages = old.updater.stages.copy()


def _refusing(step: Callable[[], _T], path: str) -> _T:
    """Run ``step``; any error refuses the bundle at ``path`` with its message."""
    try:
        return step()
    except Exception as exc:  # onnxruntime and plugins raise their own types
        raise BundleRefusedError(f"bundle refused ({path}): {exc}") from exc


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
