"""Prequential hit counts at the default sample rate, against what Recommend served.

Each target event is streamed alone; right before it, the test asks Recommend for the user's
top ``prequential_k`` (without excluding seen items, as the check does). The server must have
evaluated exactly the events whose ``crc32(event_id)`` falls in the default 10 % sample, and
counted a hit exactly when the event's item was in that served list.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from coldbridge_server import Settings
from conftest import TinyBundle
from eventlib import batch, event, serving

DEFAULT_RATE = Settings().prequential_sample_rate
K = Settings().prequential_k


def _sampled(event_id: str) -> bool:
    return zlib.crc32(event_id.encode()) < int(DEFAULT_RATE * 2**32)


def test_prequential_counts_at_the_default_rate(tiny_bundle: TinyBundle, tmp_path: Path) -> None:
    assert 0 < DEFAULT_RATE < 1, "the test is about the default, sampled rate"
    rng = np.random.default_rng(3)
    users = ["s0", "s1", "new-a", "new-b"]
    expected_events = expected_hits = 0
    with serving(tiny_bundle.path, tmp_path / "state", warm_threshold=1000) as client:
        for n in range(240):
            user, item = users[n % len(users)], f"v{int(rng.integers(0, 50))}"
            eid = f"pq-{n}"
            served = [i.item_id for i in client.recommend(user, k=K).items]
            if _sampled(eid):
                expected_events += 1
                expected_hits += item in served
            (ack,) = client.stream([batch(n + 1, event(eid, user, item))])
            assert ack.accepted == 1
        strategy = client.state("s0").strategy

        def total(name: str) -> float:
            return sum(
                client.metric(name, strategy=strategy, stage=stage)
                for stage in ("new", "transferred", "warming", "warm")
            )

        assert expected_events >= 15, "the sample must hold enough events to mean something"
        assert 0 < expected_hits < expected_events
        assert total("coldbridge_prequential_events_total") == expected_events
        assert total("coldbridge_prequential_hits_total") == expected_hits
