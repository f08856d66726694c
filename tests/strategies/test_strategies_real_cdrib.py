"""Real CDRIB game->video data, small budget: the item-to-item strategies transfer.

``itemmap`` (closed form) must beat popularity on the test cold users under both protocols,
through its exported ONNX graph, and ``fusion`` of ``itemmap`` and ``emcdr`` must beat
popularity and the co-occurrence-free base bridge; ``itemmap`` must also beat the
co-occurrence scorer (sampled HR@10 and MRR). benchmarks/strategies.py has the full table.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import load_cdrib
from coldbridge_trainer.strategies import attach_strategies
from coldbridge_trainer.train import fit

pytestmark = [pytest.mark.cdrib, pytest.mark.slow]
CDRIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cdrib"
BUDGET = TrainConfig(epochs=8, bridge_epochs=12, patience=4, progress=False)


def test_itemmap_and_fusion_beat_popularity_on_real_data() -> None:
    assert (CDRIB / "video_game" / "test.txt").is_file(), f"CDRIB data not found at {CDRIB}"
    result = attach_strategies(
        fit(load_cdrib(CDRIB, "game", "video"), BUDGET), ["emcdr", "itemmap", "fusion"]
    )
    base = result.metrics["test"]["scorers"]
    for proto in ("sampled", "full"):
        pop = base["popularity"][proto]["line"]
        for name in ("itemmap", "fusion"):
            got = result.metrics["strategies"][name]["test"]["scorers"][name][proto]["line"]
            assert got["HR@10"] > 1.3 * pop["HR@10"] and got["MRR"] > 1.3 * pop["MRR"], (
                name,
                proto,
                got,
                pop,
            )
    # the centred ridge (intercept = overlapping users' target popularity) beats co-occurrence
    item = result.metrics["strategies"]["itemmap"]["test"]["scorers"]["itemmap"]["sampled"]["line"]
    coo = base["cooccurrence"]["sampled"]["line"]
    assert item["HR@10"] > 1.05 * coo["HR@10"] and item["MRR"] > 1.05 * coo["MRR"], (item, coo)
    fusion = result.metrics["strategies"]["fusion"]["test"]["scorers"]["fusion"]["sampled"]["line"]
    assert fusion["MRR"] > base["bridge"]["sampled"]["line"]["MRR"]
