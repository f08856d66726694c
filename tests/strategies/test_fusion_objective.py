"""``fusion`` fits its blend on valid under the objective it is given.

Two fixed members on the synthetic data: ``honest`` ranks each user's valid items above
random noise; ``sharp`` puts the positives first among their sampled candidates but
below every item that no candidate list of that user holds, so its sampled MRR is perfect
and its full-ranking MRR poor. A sampled-only fit must take ``sharp`` alone; the default
``balanced`` fit (geometric mean of sampled and full MRR) must serve a better full ranking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from coldbridge_plugins.base import ColdUsers
from coldbridge_plugins.builtin.fusion.train import FusionTrainer
from coldbridge_plugins.testing import base_config, synth_config
from coldbridge_trainer.data import load_dataset
from coldbridge_trainer.evaluate import EvalSplit, make_split, score_split
from coldbridge_trainer.strategies import FittedStrategy, TrainContext
from coldbridge_trainer.synth import write_dataset
from coldbridge_trainer.train import fit


class _ScoresOutput:
    output = "scores"


class _Fixed:
    """A member whose scores for the valid users are given."""

    def __init__(self, scores: np.ndarray) -> None:
        self.matrix = scores

    def scores(self, users: ColdUsers) -> np.ndarray:
        assert len(users.histories) == len(self.matrix)
        return self.matrix


def _members(ev: EvalSplit, n_items: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    honest = rng.uniform(0.0, 3.0, (len(ev.users), n_items))
    sharp = np.full((len(ev.users), n_items), 10.0)
    for row, held in enumerate(ev.held_out):
        honest[row, held] += 1.5
    for line, row in enumerate(ev.line_user):  # held-out items are never candidates
        sharp[row, ev.candidates[line, 1:]] = 0.0
        sharp[row, ev.positives[line]] = 5.0
    return {"honest": honest, "sharp": sharp}


def _mrr(scores: np.ndarray, ev: EvalSplit) -> dict[str, float]:
    res = score_split(scores, ev, protocols=("sampled", "full"))
    return {p: res[p]["line"]["MRR"] for p in ("sampled", "full")}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> TrainContext:
    dataset = load_dataset(
        write_dataset(Path(tmp_path_factory.mktemp("fusion")) / "data", synth_config())
    )
    ctx = TrainContext(fit(dataset, base_config()), make_split(dataset, dataset.valid, 5, 1))
    for name, scores in _members(ctx.valid, dataset.target.n_items).items():
        ctx.fitted[name] = FittedStrategy(
            cls=_ScoresOutput,
            trainer=None,
            parts={},
            config={},  # type: ignore[arg-type]
            server=_Fixed(scores),
        )  # type: ignore[arg-type]
    return ctx


def test_members_disagree_between_protocols(ctx: TrainContext) -> None:
    cached = {n: f.server.scores(ctx.cold_users(ctx.valid.users)) for n, f in ctx.fitted.items()}  # type: ignore[union-attr]
    sharp, honest = _mrr(cached["sharp"], ctx.valid), _mrr(cached["honest"], ctx.valid)
    assert sharp["sampled"] == pytest.approx(1.0)
    assert sharp["full"] < honest["full"]


def test_balanced_fit_serves_a_better_full_ranking_than_a_sampled_fit(ctx: TrainContext) -> None:
    users = ctx.cold_users(ctx.valid.users)
    fits = {}
    for objective in ("sampled", "balanced"):
        trainer = FusionTrainer(objective=objective)
        trainer.fit(ctx)
        assert trainer.config()["objective"] == objective
        fits[objective] = (trainer, _mrr(trainer.reference(users), ctx.valid))
    sampled_fit, sampled_mrr = fits["sampled"]
    balanced_fit, balanced_mrr = fits["balanced"]
    assert list(sampled_fit.members) == ["honest", "sharp"]
    np.testing.assert_allclose(sampled_fit.cold, [0.0, 1.0])
    assert sampled_mrr["sampled"] == pytest.approx(1.0)
    assert balanced_fit.cold[0] > 0.0
    assert balanced_mrr["full"] > sampled_mrr["full"]
    # the balanced fit is at least as good as either member alone, on its own objective
    balanced = np.sqrt(balanced_mrr["sampled"] * balanced_mrr["full"])
    for name in ("honest", "sharp"):
        single = _mrr(ctx.fitted[name].server.scores(users), ctx.valid)  # type: ignore[union-attr]
        assert balanced >= np.sqrt(single["sampled"] * single["full"]) - 1e-12


def test_unknown_objective_is_refused() -> None:
    with pytest.raises(ValueError, match="objective"):
        FusionTrainer(objective="recall")
