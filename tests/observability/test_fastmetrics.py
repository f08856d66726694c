"""The fast counter/histogram families expose what prometheus_client would, and lose nothing."""

from __future__ import annotations

import threading

import pytest
from coldbridge_server.observability.fastmetrics import FastCounter, FastHistogram
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.001, 0.01, 0.1, 1.0)
VALUES = (0.0005, 0.001, 0.002, 0.01, 0.5, 1.0, 3.0, 0.1)


def _exposition(registry: CollectorRegistry) -> set[str]:
    """Sample lines, without ``_created`` (which the fast families do not have)."""
    lines = generate_latest(registry).decode().splitlines()
    return {line for line in lines if "_created" not in line}


def test_exposition_matches_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    for registry, counter_cls, histogram_cls in (
        (ours, FastCounter, FastHistogram),
        (theirs, Counter, Histogram),
    ):
        counter = counter_cls("x_calls_total", "Calls.", ("method", "code"), registry=registry)
        histogram = histogram_cls(
            "x_seconds", "Time.", ("method",), registry=registry, buckets=BUCKETS
        )
        unlabelled = histogram_cls("x_sizes", "Sizes.", registry=registry, buckets=BUCKETS)
        counter.labels("get", "OK").inc()
        counter.labels("get", "OK").inc(2.5)
        counter.labels("put", "NOT_FOUND").inc()
        for value in VALUES:
            histogram.labels("get").observe(value)
            unlabelled.observe(value)
    assert _exposition(ours) == _exposition(theirs)


def test_histogram_observe_with_count_equals_repeated_observes() -> None:
    registry = CollectorRegistry()
    batched = FastHistogram("b", "b", registry=registry, buckets=BUCKETS)
    single = FastHistogram("s", "s", registry=registry, buckets=BUCKETS)
    batched.observe(0.05, 7)
    for _ in range(7):
        single.observe(0.05)
    for suffix, labels in (
        ("_bucket", {"le": "0.1"}),
        ("_bucket", {"le": "0.01"}),
        ("_count", {}),
        ("_sum", {}),
    ):
        assert registry.get_sample_value("b" + suffix, labels) == pytest.approx(
            registry.get_sample_value("s" + suffix, labels)
        )
    assert registry.get_sample_value("b_bucket", {"le": "0.1"}) == 7


def test_concurrent_increments_are_not_lost() -> None:
    registry = CollectorRegistry()
    counter = FastCounter("c_total", "c", ("k",), registry=registry)
    histogram = FastHistogram("h", "h", registry=registry, buckets=BUCKETS)

    def work() -> None:
        child = counter.labels("a")
        for _ in range(20_000):
            child.inc()
            histogram.observe(0.5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.get_sample_value("c_total", {"k": "a"}) == 80_000
    assert registry.get_sample_value("h_count") == 80_000


def test_misuse_is_refused() -> None:
    registry = CollectorRegistry()
    counter = FastCounter("d_total", "d", ("k",), registry=registry)
    with pytest.raises(ValueError, match="expected labels"):
        counter.labels("a", "b")
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("a").inc(-1)
    with pytest.raises(ValueError, match="Duplicated"):
        FastCounter("d_total", "again", ("k",), registry=registry)
    with pytest.raises(ValueError, match="distinct finite"):
        FastHistogram("e", "e", buckets=(1.0, 1.0))
