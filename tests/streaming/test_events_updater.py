"""The writer's grouped apply (one published state per user per group) equals per-event apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from coldbridge_server import Settings, create_server, load_bundle
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import Domain, Event, Kind
from conftest import TinyBundle
from prometheus_client import CollectorRegistry

USERS = ["u0", "s0", "s1", "new-1", "new-2"]


def events(n: int) -> list[Event]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        user = USERS[int(rng.integers(len(USERS)))]
        if user.startswith("new") and rng.random() < 0.3:
            out.append(Event(f"e{i}", user, f"g{rng.integers(40)}", Domain.SOURCE, Kind.IMPLICIT))
        elif rng.random() < 0.2:
            out.append(
                Event(
                    f"e{i}",
                    user,
                    f"v{rng.integers(50)}",
                    Domain.TARGET,
                    Kind.RATING,
                    float(rng.integers(1, 6)),
                )
            )
        else:
            out.append(Event(f"e{i}", user, f"v{rng.integers(50)}", Domain.TARGET, Kind.IMPLICIT))
    return out


def updater(bundle: Path, state: Path) -> OnlineUpdater:
    config = Settings(
        port=0, state_dir=str(state), metrics_port=-1, warm_threshold=6, prequential_sample_rate=1.0
    )
    server, _ = create_server(config, bundle=load_bundle(bundle), registry=CollectorRegistry())
    assert server.ingestor is not None
    return server.ingestor.updater


def test_grouped_apply_equals_one_event_at_a_time(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    stream = events(300)
    one = updater(tiny_bundle.path, tmp_path / "a")
    grouped = updater(tiny_bundle.path, tmp_path / "b")
    updates = [one.apply(e, 1.0).online_updates for e in stream]
    got: list[int] = []
    for lo in range(0, len(stream), 37):
        got += grouped.apply_many(stream[lo : lo + 37], 1.0)
    assert got == updates
    assert +one.stages == +grouped.stages
    assert {k: (a.cm.n_samples, a.get()) for k, a in one.prequential.items()} == {
        k: (a.cm.n_samples, a.get()) for k, a in grouped.prequential.items()
    }
    for user in USERS:
        a, b = one.states.get(user), grouped.states.get(user)
        assert a is not None and b is not None
        assert (a.source_history, a.source_events, a.target_events, a.online_updates, a.seen) == (
            b.source_history,
            b.source_events,
            b.target_events,
            b.online_updates,
            b.seen,
        )
        for field in ("prior", "delta", "vector"):
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)
        assert b.vector is None or not b.vector.flags.writeable
