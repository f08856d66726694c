"""Synthetic generator: determinism and the user groups the trainer relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from coldbridge_trainer.data import load_dataset
from coldbridge_trainer.synth import SynthConfig, generate, write_dataset

SMALL = SynthConfig(
    n_overlap=60,
    n_source_only=20,
    n_target_only=15,
    n_cold=25,
    n_source_items=80,
    n_target_items=70,
    seed=7,
)


def test_same_seed_same_data() -> None:
    a, b = generate(SMALL), generate(SMALL)
    for split in a:
        assert a[split].users == b[split].users and a[split].items == b[split].items


def test_different_seed_different_data() -> None:
    other = SynthConfig(**{**SMALL.__dict__, "seed": 8})
    assert generate(SMALL)["source/train"].items != generate(other)["source/train"].items


def test_written_dataset_groups(tmp_path: Path) -> None:
    ds = load_dataset(write_dataset(tmp_path / "d", SMALL))
    src, tgt = set(ds.source.user_ids), set(ds.target.user_ids)
    cold = set(ds.cold_users())
    assert len(src & tgt) == 60  # overlapping users
    assert len(src - tgt - cold) == 20  # source-only
    assert len(tgt - src) == 15  # target-only
    assert len(cold) == 25 and not cold & tgt and cold <= src
    assert set(ds.valid.user_ids) == cold  # every cold user has a valid row
    assert len(ds.test) > 0
    pairs_v = set(zip(ds.valid.user_ids, ds.valid.items.tolist(), strict=True))
    pairs_t = set(zip(ds.test.user_ids, ds.test.items.tolist(), strict=True))
    assert not pairs_v & pairs_t
    assert ds.feedback == "implicit" and ds.source.timestamps is not None


def test_explicit_ratings_in_range(tmp_path: Path) -> None:
    cfg = SynthConfig(**{**SMALL.__dict__, "feedback": "explicit"})
    ds = load_dataset(write_dataset(tmp_path / "e", cfg))
    assert ds.feedback == "explicit"
    assert ds.target.values.min() >= 1 and ds.target.values.max() <= 5
    assert len(set(ds.target.values.tolist())) > 1


def test_bad_feedback() -> None:
    with pytest.raises(ValueError, match="feedback"):
        generate(SynthConfig(feedback="stars"))
