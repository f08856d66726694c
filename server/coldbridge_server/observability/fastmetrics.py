"""Counters and histograms that cost well under a microsecond to record.

``prometheus_client``'s ``Counter.inc`` / ``Histogram.observe`` go through several Python
layers and one lock per value (a histogram observation touches the sum and a linear bucket
scan): about 1-3 µs each, and a served request records about ten of them. These families
keep plain numbers per labelled child behind one lock per family, find a histogram bucket
with :func:`bisect.bisect_left`, and turn the numbers into the standard exposition only when
Prometheus scrapes (:meth:`collect`). They register on the injected
:class:`~prometheus_client.CollectorRegistry` like any collector, so duplicate names are
still refused and ``generate_latest`` / ``get_sample_value`` work unchanged.

Families built with one shared ``lock`` can be updated together in one critical section by
the code that created that lock: hold it and add to a counter child's ``value`` or a
histogram child's ``counts[child.bucket(v)]`` / ``total``
(:class:`coldbridge_server.observability.metrics.GrpcSeries` records the five
``grpc_server_*`` series of a call this way).

Differences from ``prometheus_client``: no ``_created`` samples, no multiprocess mode.

Examples
--------
>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> calls = FastCounter("demo_calls_total", "Calls.", ("method",), registry=registry)
>>> calls.labels("get").inc()
>>> calls.labels("get").inc(2)
>>> registry.get_sample_value("demo_calls_total", {"method": "get"})
3.0
>>> seconds = FastHistogram("demo_seconds", "Time.", buckets=(0.1, 1.0), registry=registry)
>>> seconds.observe(0.1); seconds.observe(0.5)
>>> registry.get_sample_value("demo_seconds_bucket", {"le": "0.1"})
1.0
>>> registry.get_sample_value("demo_seconds_count")
2.0
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["FastCounter", "FastHistogram"]

_go_string: Callable[[float], str] = floatToGoString  # prometheus_client leaves it untyped


class _Family(Collector):
    """A labelled metric family: children are created once and cached by label values."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        registry: CollectorRegistry | None = None,
        *,
        lock: threading.Lock | None = None,
    ) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = tuple(labelnames)
        self.lock = self._lock = lock if lock is not None else threading.Lock()
        self._children: dict[tuple[str, ...], Any] = {}  # by label values as strings
        self._aliases: dict[tuple[Any, ...], Any] = {}  # the same children, by values as given
        if not self.labelnames:
            self._unlabelled = self.labels()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: Any) -> Any:
        """The child for these label values (positional, in ``labelnames`` order)."""
        child = self._aliases.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values!r}")
            with self._lock:  # collect() iterates _children under the same lock
                child = self._children.setdefault(tuple(str(v) for v in values), self._child())
            self._aliases[values] = child
        return child

    def _child(self) -> Any:
        raise NotImplementedError

    def _empty(self) -> Metric:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        return [self._empty()]

    def _snapshot(self) -> list[tuple[tuple[str, ...], Any]]:
        with self._lock:
            return [(values, child.read()) for values, child in self._children.items()]


class _CounterChild:
    __slots__ = ("_lock", "value")

    def __init__(self, lock: threading.Lock) -> None:
        self._lock, self.value = lock, 0.0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        with self._lock:
            self.value += amount

    def read(self) -> float:
        return self.value


class FastCounter(_Family):
    """A monotonically increasing counter (exposed as ``<name>_total``)."""

    def _child(self) -> _CounterChild:
        return _CounterChild(self._lock)

    def inc(self, amount: float = 1) -> None:
        """Increment the unlabelled counter."""
        self._unlabelled.inc(amount)

    def _empty(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._empty()
        for values, value in self._snapshot():
            family.add_metric(values, value)
        yield family


class _HistogramChild:
    __slots__ = ("_lock", "_bounds", "counts", "total")

    def __init__(self, lock: threading.Lock, bounds: Sequence[float]) -> None:
        self._lock, self._bounds = lock, tuple(bounds)
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        """Record ``value`` (``count`` times: a batch of equal observations in one step)."""
        index = self.bucket(value)
        with self._lock:
            self.counts[index] += count
            self.total += value * count

    def bucket(self, value: float) -> int:
        """The index in ``counts`` that ``value`` falls in (the first bound with value <= le)."""
        return bisect_left(self._bounds, value)

    def read(self) -> tuple[list[int], float]:
        return list(self.counts), self.total


class FastHistogram(_Family):
    """A histogram with fixed bucket bounds (``+Inf`` is added)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Iterable[str] = (),
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float],
        lock: threading.Lock | None = None,
    ) -> None:
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct finite numbers")
        self._bounds = tuple(bounds)
        self._les = [_go_string(b) for b in bounds] + ["+Inf"]
        super().__init__(name, documentation, labelnames, registry, lock=lock)

    def _child(self) -> _HistogramChild:
        return _HistogramChild(self._lock, self._bounds)

    def observe(self, value: float, count: int = 1) -> None:
        """Observe ``value`` (``count`` times) on the unlabelled histogram."""
        self._unlabelled.observe(value, count)

    def _empty(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._empty()
        for values, (counts, total) in self._snapshot():
            cumulative, running = [], 0
            for le, count in zip(self._les, counts, strict=True):
                running += count
                cumulative.append((le, float(running)))
            family.add_metric(values, cumulative, total)
        yield family
