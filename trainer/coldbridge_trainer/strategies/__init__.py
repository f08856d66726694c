"""The driver that fits strategies' trainer halves and exports them (torch side of the SDK).

The halves themselves live in :mod:`coldbridge_plugins` (``builtin/<name>/train.py`` for the
built-ins); this package keeps what reads the trainer's results: :class:`TrainContext`,
:class:`FittedStrategy` and the shared maths (``ease``, ``torch_helpers``).

:func:`fit_strategies` fits the requested strategies on top of a base
:class:`~coldbridge_trainer.train.TrainResult`, builds each server half from the exported
parts (onnxruntime, exactly what the server will run) and evaluates it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from coldbridge_plugins import (
    StrategyTrainer,
    TransferStrategy,
    build_strategies,
    get_plugin_manager,
    load_strategies,
)

from coldbridge_trainer.evaluate import EvalSplit, Scorer
from coldbridge_trainer.strategies.context import FittedStrategy, TrainContext
from coldbridge_trainer.train import TrainResult

__all__ = [
    "FittedStrategy",
    "StrategyTrainer",
    "TrainContext",
    "attach_strategies",
    "fit_strategies",
    "ordered_names",
    "strategy_scorer",
]


def fit_strategies(
    result: TrainResult,
    valid: EvalSplit,
    names: Sequence[str] | None = None,
    *,
    registry: Mapping[str, type[TransferStrategy]] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int | None = None,
    on_fit: Callable[[str], None] | None = None,
) -> dict[str, FittedStrategy]:
    """Fit the trainer halves of ``names`` (default: every registered strategy) in order.

    Parameters
    ----------
    result
        The base pipeline (MF, encoder, bridge).
    valid
        Valid cold users (model selection).
    registry
        ``{name: strategy class}`` (default: built-ins plus entry points).
    params
        ``{name: trainer constructor kwargs}``.
    seed
        Seed of every strategy (default: the base config's seed).
    on_fit
        Called with each strategy's name once it is fitted (progress bars).
    """
    registry = registry if registry is not None else load_strategies(get_plugin_manager())
    names = list(names) if names is not None else ordered_names(registry)
    ctx = TrainContext(result, valid, result.config.seed if seed is None else seed)
    for name in names:
        t0, cls = time.perf_counter(), registry[name]
        trainer = cls.trainer_class()(**dict((params or {}).get(name, {})))
        trainer.fit(ctx)
        fitted = FittedStrategy(cls, trainer, trainer.parts(), trainer.config())
        ctx.fitted[name] = fitted
        servers = build_strategies(
            {n: {"parts": f.parts, "config": f.config} for n, f in ctx.fitted.items()},
            {n: f.cls for n, f in ctx.fitted.items()},
            bridge=_bridge(result),
            target_item_embeddings=result.target_item_emb,
            target_item_bias=result.target_item_bias,
        )
        for n, f in ctx.fitted.items():
            f.server = servers[n]
        fitted.seconds = round(time.perf_counter() - t0, 2)
        if on_fit is not None:
            on_fit(name)
    return ctx.fitted


def ordered_names(registry: Mapping[str, type[TransferStrategy]]) -> list[str]:
    """Registered names, blends (``fusion``) last."""
    return sorted(registry, key=lambda n: (n == "fusion", n))


def _bridge(result: TrainResult):  # type: ignore[no-untyped-def]
    return lambda x: result.transfer(x)


def strategy_scorer(fitted: FittedStrategy, ctx_result: TrainResult, valid: EvalSplit) -> Scorer:
    """Cold-user scorer through the strategy's server half (stored source embedding + history)."""
    ctx = TrainContext(ctx_result, valid)
    assert fitted.server is not None
    return lambda users: fitted.server.scores(ctx.cold_users(users))  # type: ignore[union-attr]


def attach_strategies(
    result: TrainResult,
    names: Sequence[str],
    default: str = "emcdr",
    registry: Mapping[str, type[TransferStrategy]] | None = None,
) -> TrainResult:
    """Fit ``names`` on ``result``, evaluate them on valid/test, and make them part of its bundle.

    ``result.metrics.strategies[name]`` gets a
    :class:`~coldbridge_trainer.results.StrategyResult` (valid and test
    :func:`~coldbridge_trainer.evaluate.evaluate_scorers`, one scorer per strategy);
    ``default`` becomes the bundle's ``strategy``.
    """
    from coldbridge_trainer.evaluate import evaluate_scorers, make_split
    from coldbridge_trainer.results import StrategyResult

    cfg, ds = result.config, result.dataset
    splits = {
        "valid": make_split(ds, ds.valid, cfg.eval_negatives, cfg.eval_seed, exclude="split"),
        "test": make_split(ds, ds.test, cfg.eval_negatives, cfg.eval_seed),
    }  # selection: valid only
    registry = registry if registry is not None else load_strategies(get_plugin_manager())
    if default not in registry:
        raise ValueError(f"default strategy {default!r} is not registered: {sorted(registry)}")
    fitted = fit_strategies(result, splits["valid"], names, registry=registry)
    result.strategies, result.default_strategy = dict(fitted), default
    if result.metrics is None:
        raise ValueError("attach_strategies needs a fitted result (result.metrics is None)")
    result.metrics = result.metrics.with_strategies(
        {
            name: StrategyResult(
                **{
                    s: evaluate_scorers({name: strategy_scorer(f, result, ev)}, ev, cfg.ks)
                    for s, ev in splits.items()
                },
                seconds=f.seconds,
            )
            for name, f in fitted.items()
        }
    )
    return result
