"""Train on the real CDRIB game->video data with a small budget; transfer must beat popularity."""

from __future__ import annotations

from pathlib import Path

import pytest
from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import load_cdrib
from coldbridge_trainer.train import fit

pytestmark = [pytest.mark.cdrib, pytest.mark.slow]
CDRIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cdrib"

BUDGET = TrainConfig(
    epochs=8, batch_size=2048, lr=0.01, bridge_epochs=12, patience=4, progress=False
)


def test_game_to_video_beats_popularity() -> None:
    assert (CDRIB / "video_game" / "test.txt").is_file(), (
        f"CDRIB data not found at {CDRIB}: it must sit next to the repository "
        "(see shared/data/cdrib/README.md)"
    )
    ds = load_cdrib(CDRIB, "game", "video")
    test = fit(ds, BUDGET).metrics["test"]
    assert test["n_lines"] == 1458 and test["n_candidates"] == 1000
    model = test["scorers"]["bridge"]["sampled"]["line"]
    pop = test["scorers"]["popularity"]["sampled"]["line"]
    assert abs(test["scorers"]["random"]["sampled"]["line"]["HR@10"] - 0.01) < 1e-9
    assert model["HR@10"] > pop["HR@10"] and model["MRR"] > pop["MRR"], (model, pop)
