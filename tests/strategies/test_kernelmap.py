"""``kernelmap`` against a plain-numpy kernel ridge with dense EASE in both domains."""

from __future__ import annotations

import numpy as np
import pytest
from coldbridge_plugins.builtin.kernelmap.train import KernelMapTrainer
from coldbridge_plugins.testing import base_config, synth_config
from coldbridge_trainer.data import load_dataset
from coldbridge_trainer.evaluate import make_split
from coldbridge_trainer.strategies import TrainContext
from coldbridge_trainer.strategies.ease import ease_neighbours
from coldbridge_trainer.synth import write_dataset
from coldbridge_trainer.train import fit


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> TrainContext:
    dataset = load_dataset(write_dataset(tmp_path_factory.mktemp("km") / "data", synth_config()))
    return TrainContext(fit(dataset, base_config()), make_split(dataset, dataset.valid, 30, 1))


def _positive_ease(domain, lam: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    x = np.zeros((domain.n_users, domain.n_items))
    x[domain.users, domain.items] = 1.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(domain.n_items))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return np.maximum(b, 0.0)  # kernelmap keeps the positive weights (all of them when k >= n - 1)


def _counts(histories: list[np.ndarray], n: int) -> np.ndarray:
    x = np.zeros((len(histories), n))
    for row, h in enumerate(histories):
        np.add.at(x[row], h, 1.0)
    return x


def test_scores_match_plain_numpy_kernel_ridge(ctx: TrainContext) -> None:
    g, eta, lam, beta, ease_lam = 2.0, 0.5, 10.0, 3.0, 50.0
    ds = ctx.result.dataset
    trainer = KernelMapTrainer(
        smoothing=(g,),
        etas=(eta,),
        lambdas=(lam,),
        betas=(beta,),
        ease_lambda=ease_lam,
        neighbours=max(ds.source.n_items, ds.target.n_items),
    )
    trainer.fit(ctx)
    assert (trainer.g, trainer.eta, trainer.lam, trainer.beta) == (g, eta, lam, beta)

    bs, bt = _positive_ease(ds.source, ease_lam), _positive_ease(ds.target, ease_lam)
    s_rows, t_rows = ctx.overlap_rows()
    x = _counts([ctx.histories[r] for r in s_rows], ds.source.n_items)
    z = x + g * x @ bs
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    y = ctx.target_matrix(t_rows)
    a = np.linalg.solve(
        z @ z.T + lam * np.eye(len(z)), y / np.maximum(y.sum(1, keepdims=True), 1.0) ** eta
    )
    users = ctx.cold_users(list(dict.fromkeys(ds.test.user_ids)))
    xc = _counts(list(users.histories), ds.source.n_items)
    s = (xc + g * xc @ bs) @ z.T @ a
    expected = s + beta * s @ bt

    got = trainer.reference(users)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())
    # and the model is not degenerate: cold users get different lists
    assert len({tuple(np.argsort(-row)[:5]) for row in got}) > 1


def test_selection_keeps_the_best_valid_setting_and_exports_it(ctx: TrainContext) -> None:
    grid = KernelMapTrainer(
        smoothing=(0.0, 1.0),
        etas=(0.0, 0.5),
        lambdas=(1.0, 100.0),
        betas=(0.0, 3.0),
        ease_lambda=50.0,
    )
    grid.fit(ctx)
    # the model that is exported scores valid exactly as the (direct) selection path did
    assert grid.best == pytest.approx(ctx.valid_score(grid.reference), abs=1e-6)
    for g in (0.0, 1.0):
        for beta in (0.0, 3.0):
            single = KernelMapTrainer(
                smoothing=(g,),
                etas=(grid.eta,),
                lambdas=(grid.lam,),
                betas=(beta,),
                ease_lambda=50.0,
            )
            single.fit(ctx)
            assert ctx.valid_score(single.reference) <= grid.best + 1e-9


def test_ease_neighbours_are_cached_read_only(ctx: TrainContext) -> None:
    src = ctx.result.dataset.source
    first = ease_neighbours(src.users, src.items, src.n_items, 77.0, 5)
    again = ease_neighbours(src.users[::-1], src.items[::-1], src.n_items, 77.0, 5)  # same pairs
    assert again[0] is first[0] and again[1] is first[1]
    assert not first[0].flags.writeable and not first[1].flags.writeable
    other = ease_neighbours(src.users, src.items, src.n_items, 78.0, 5)
    assert other[1] is not first[1]
    # a smaller k is the cached columns' prefix; a larger one recomputes (and agrees)
    fewer = ease_neighbours(src.users, src.items, src.n_items, 77.0, 3)
    np.testing.assert_array_equal(fewer[1], first[1][:, :3])
    more = ease_neighbours(src.users, src.items, src.n_items, 77.0, 8)
    np.testing.assert_allclose(more[1][:, :5], first[1], rtol=1e-6)
    assert (
        ease_neighbours(src.users, src.items, src.n_items, 77.0, 5)[1] is not first[1]
    )  # sliced from k=8


def test_grid_values_are_checked() -> None:
    with pytest.raises(ValueError, match="lambdas"):
        KernelMapTrainer(lambdas=(0.0,))
    with pytest.raises(ValueError, match="betas"):
        KernelMapTrainer(betas=())


def test_served_graph_matches_reference_across_chunks(ctx: TrainContext) -> None:
    from coldbridge_plugins import ColdUsers, build_strategies
    from coldbridge_plugins.builtin.kernelmap import KernelMap

    trainer = KernelMapTrainer(
        smoothing=(1.0,), etas=(0.5,), lambdas=(10.0,), betas=(3.0,), ease_lambda=50.0
    )
    trainer.fit(ctx)
    server = build_strategies(
        {"kernelmap": {"config": trainer.config(), "parts": trainer.parts()}},
        {"kernelmap": KernelMap},
    )["kernelmap"]
    few = ctx.cold_users(list(dict.fromkeys(ctx.result.dataset.test.user_ids)))
    many = ColdUsers(np.concatenate([few.source_embeddings] * 4), [*few.histories] * 4)
    assert len(many) > 2 * KernelMap.chunk  # scored in several session runs
    got = server.transfer(many)
    np.testing.assert_allclose(got, trainer.reference(many), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[: len(few)], server.transfer(few), rtol=1e-5, atol=1e-6)
