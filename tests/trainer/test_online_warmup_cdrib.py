"""Real data: online updates from streamed valid.txt events beat the static bridge on test.txt.

Trains a small game -> video bundle on ``../shared/data/cdrib`` with the project's trainer,
streams every cold user's valid interactions through a real server, then ranks test.txt with
the sampled protocol (999 negatives; only the candidates are scored, which keeps the test at
about a minute: benchmarks/online_warmup.py prints the full warm-up table, both protocols).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cdrib, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CDRIB = ROOT.parent / "shared" / "data" / "cdrib"
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402,F401  (the trainer builds the bundle: torch must be installed)


@pytest.mark.timeout(600)
def test_streamed_events_beat_the_static_bridge(tmp_path: Path) -> None:
    assert CDRIB.is_dir(), f"CDRIB data missing at {CDRIB}"
    import online_warmup
    from coldbridge_trainer.data import load_cdrib

    bundle = online_warmup.train(
        CDRIB,
        "game",
        "video",
        tmp_path / "bundles",
        ["--epochs", "8", "--bridge-epochs", "30", "--batch-size", "4096", "--lr", "0.02"],
    )
    dataset = load_cdrib(CDRIB, "game", "video")
    results = online_warmup.measure(bundle, dataset, steps=(0, None), protocols=("sampled",))
    static, online = results["0"]["sampled"]["line"], results["all"]["sampled"]["line"]
    popularity = results["popularity"]["sampled"]["line"]
    assert static["HR@10"] > popularity["HR@10"]  # the bridge transfers at all
    for metric in ("HR@10", "NDCG@10", "MRR"):
        assert online[metric] > 1.1 * static[metric], (metric, online, static)
