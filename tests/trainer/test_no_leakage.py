"""Real CDRIB data: test interactions never enter training or model selection.

* The loader: the training interactions of both domains are exactly the ``train.txt`` rows,
  disjoint from every ``test.txt`` (and ``valid.txt``) line; cold users have no target-domain
  training row; valid and test are disjoint.
* The selection path of the evaluation harness (bridge early stopping, every strategy's
  valid-fitted choices, the choice of the best strategy): replacing ``test.txt`` by garbage
  changes nothing of it, bit for bit, and the valid candidate lists do not depend on test.
* The bundle's history part (item-to-item model and the blend weights a(n) fitted on the
  valid streams): the same, bit for bit, with a scrambled ``test.txt``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import CDRIB_DOMAINS, CrossDomainDataset, HeldOut, load_cdrib
from coldbridge_trainer.harness import run_direction, selection_split, test_split
from coldbridge_trainer.history import fit_history
from coldbridge_trainer.train import fit

pytestmark = [pytest.mark.cdrib, pytest.mark.slow]
CDRIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cdrib"
DIRECTIONS = [("game", "video"), ("video", "game")]


def _pairs(path: Path) -> set[tuple[int, int]]:
    rows = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    return set(map(tuple, rows.tolist()))


def _raw_uid(user: str) -> int:
    return int(user[1:]) if user.startswith("u") else int(user.split(":")[1])


def _train_pairs(domain) -> set[tuple[int, int]]:  # type: ignore[no-untyped-def]
    return {
        (_raw_uid(domain.user_ids[u]), int(domain.item_ids[i]))
        for u, i in zip(domain.users.tolist(), domain.items.tolist(), strict=True)
    }


@pytest.mark.parametrize(("source", "target"), DIRECTIONS)
def test_loader_keeps_test_out_of_training(source: str, target: str) -> None:
    assert (CDRIB / "video_game" / "test.txt").is_file(), f"CDRIB data not found at {CDRIB}"
    ds = load_cdrib(CDRIB, source, target)
    tgt_dir, src_dir = CDRIB / CDRIB_DOMAINS[target], CDRIB / CDRIB_DOMAINS[source]
    test, valid = _pairs(tgt_dir / "test.txt"), _pairs(tgt_dir / "valid.txt")
    # the training arrays are exactly the train.txt rows of each domain
    tgt_train, src_train = _train_pairs(ds.target), _train_pairs(ds.source)
    assert tgt_train == _pairs(tgt_dir / "train.txt")
    assert src_train == _pairs(src_dir / "train.txt")
    with open(tgt_dir / "train.txt", encoding="utf-8") as fh:
        assert len(ds.target.users) == sum(1 for _ in fh)
    # no test (or valid) line is a training interaction; valid and test are disjoint
    assert not test & tgt_train and not valid & tgt_train and not test & valid
    # the loaded held-out rows are exactly the files' lines
    loaded_test = {
        (_raw_uid(u), int(ds.target.item_ids[i]))
        for u, i in zip(ds.test.user_ids, ds.test.items.tolist(), strict=True)
    }
    assert loaded_test == test and len(ds.test) == len(test)
    # cold users: no target-domain training row, but a source history
    cold = set(ds.valid.user_ids) | set(ds.test.user_ids)
    assert cold and not cold & set(ds.target.user_ids)
    assert not cold & {ds.target.user_ids[u] for u in np.unique(ds.target.users).tolist()}
    assert cold <= set(ds.source.user_ids)
    assert not {u for u, _ in test} & {u for u, _ in tgt_train}
    # the selection candidates never depend on test.txt; the test candidates exclude valid items
    config = TrainConfig()
    garbage = replace(ds, test=HeldOut(ds.test.user_ids, np.zeros(len(ds.test), np.int64)))
    assert selection_split(garbage, config).digest == selection_split(ds, config).digest
    ev = test_split(ds, config)
    for line in range(len(ev.positives)):
        assert not set(ev.candidates[line, 1:].tolist()) & set(
            ev.held_out[ev.line_user[line]].tolist()
        )


def _scrambled(ds: CrossDomainDataset) -> CrossDomainDataset:
    rng = np.random.default_rng(0)
    return replace(
        ds,
        test=HeldOut(
            list(rng.permutation(ds.test.user_ids)),
            rng.integers(0, ds.target.n_items, len(ds.test)),
        ),
    )


def test_selection_never_reads_test() -> None:
    """The whole selection path, run on the real test.txt and on a scrambled one: identical."""
    ds = load_cdrib(CDRIB, "game", "video")
    scrambled = _scrambled(ds)
    config = TrainConfig(epochs=1, bridge_epochs=3, patience=2, threads=1, progress=False)
    names = ["emcdr", "knn", "fusion"]
    real = run_direction(ds, names, [1], config)
    fake = run_direction(scrambled, names, [1], config)
    assert real.valid_split.digest == fake.valid_split.digest
    assert real.best == fake.best
    assert real.configs == fake.configs  # every strategy's valid-fitted choices
    for name in names + ["random", "popularity", "cooccurrence"]:
        for a, b in zip(real.valid[name], fake.valid[name], strict=True):
            for proto in ("sampled", "full"):
                for metric, values in a[proto].items():
                    np.testing.assert_array_equal(
                        values, b[proto][metric], err_msg=f"{name} {proto} {metric}"
                    )
    # ... while the test numbers do change (the scrambled test is scored, never selected on)
    assert real.test_split.digest != fake.test_split.digest


def test_history_fit_never_reads_test() -> None:
    """The history part of a bundle, fitted with the real test.txt and a scrambled one."""
    ds = load_cdrib(CDRIB, "game", "video")
    config = TrainConfig(epochs=1, bridge_epochs=2, patience=1, threads=1, progress=False)
    result = fit(ds, config, valid_split=selection_split(ds, config))
    real = fit_history(result)
    fake = fit_history(replace(result, dataset=_scrambled(ds), history=None))
    assert real.model.history_weight == fake.model.history_weight
    assert real.config["buckets"] == fake.config["buckets"]
    assert real.config["buckets"][0]["users"] > 0
    for part in ("ptr", "cols", "weights"):
        np.testing.assert_array_equal(getattr(real.model, part), getattr(fake.model, part))
