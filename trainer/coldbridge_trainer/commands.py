"""The work behind ``coldbridge datagen``, ``train``, ``evaluate bundle`` and ``evaluate report``.

Plain functions with typed arguments: the command line (package ``coldbridge_cli``) parses
and checks the flags, then calls these. torch is imported only where a model is trained
(:func:`train`, :func:`evaluate_report`), so :func:`datagen` and :func:`evaluate_bundle`
(onnxruntime) stay light. A dataset that cannot be read raises :class:`DatasetError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import CrossDomainDataset, load_dataset
from coldbridge_trainer.evaluate import (
    Scorer,
    cooccurrence_scorer,
    evaluate_scorers,
    format_table,
    make_split,
    popularity_scorer,
    random_scorer,
)
from coldbridge_trainer.results import TrainMetrics
from coldbridge_trainer.synth import SynthConfig, write_dataset

__all__ = [
    "DatasetError",
    "bundle_scorer",
    "datagen",
    "evaluate_bundle",
    "evaluate_report",
    "load",
    "resolve_strategies",
    "train",
]

Loader = Callable[[], CrossDomainDataset]
"""A picklable dataset loader, e.g. ``functools.partial(load_cdrib, root, "game", "video")``."""


class DatasetError(ValueError):
    """A dataset directory is missing, incomplete or malformed (the message names the file)."""


def load(loader: Loader) -> CrossDomainDataset:
    """Run ``loader``; a missing file or a bad row becomes :class:`DatasetError`."""
    try:
        return loader()
    except (OSError, ValueError) as exc:
        raise DatasetError(" ".join(str(exc).split())) from exc


def datagen(out: Path, config: SynthConfig) -> str:
    """Write a synthetic dataset to ``out``; return a one-line summary of what was written."""
    path = write_dataset(out, config)
    ds = load_dataset(path)
    return (
        f"wrote {path}: source {ds.source.n_users} users/{len(ds.source.users)} rows, "
        f"target {ds.target.n_users} users/{len(ds.target.users)} rows, "
        f"{len(ds.cold_users())} cold users ({len(ds.valid)} valid / {len(ds.test)} test rows)"
    )


def resolve_strategies(
    spec: str, default: str | None = None, *, blends_last: bool = False
) -> list[str]:
    """Registered strategy names of a comma-separated ``spec`` (``"all"`` = every one).

    ``default`` is added when it is not ``emcdr`` (the base pipeline's own); with
    ``blends_last`` the names follow the registry order (blends such as ``fusion`` after
    their members). Raises ``ValueError`` naming unknown strategies (or none given).
    """
    from coldbridge_plugins import get_plugin_manager, load_strategies

    from coldbridge_trainer.strategies import ordered_names

    registry = load_strategies(get_plugin_manager())
    chosen = ordered_names(registry) if spec == "all" else [n for n in spec.split(",") if n]
    if default is not None and default != "emcdr" and default not in chosen:
        chosen.append(default)
    unknown = [n for n in chosen if n not in registry]
    if unknown or not (chosen or default):
        raise ValueError(f"unknown strategies {unknown or spec!r}; registered: {sorted(registry)}")
    return [n for n in ordered_names(registry) if n in chosen] if blends_last else chosen


def _print_results(metrics: TrainMetrics, splits: tuple[str, ...]) -> None:
    for split in splits:
        print(format_table(getattr(metrics, split), f"== {split} cold users =="))


def train(
    dataset: CrossDomainDataset,
    config: TrainConfig,
    out: Path,
    *,
    version: str | None = None,
    strategies: Sequence[str] = (),
    default_strategy: str = "emcdr",
    metrics_json: Path | None = None,
) -> Path:
    """Train the base pipeline (and ``strategies``), print the metrics, export a bundle.

    Returns the bundle directory, ``out/<version>`` (default version: a timestamp).
    """
    from coldbridge_trainer.strategies import attach_strategies
    from coldbridge_trainer.train import export_result, fit

    result = fit(dataset, config)
    if result.metrics is None:  # fit always measures; narrows the type
        raise RuntimeError("fit returned no metrics")
    _print_results(result.metrics, ("valid", "test"))
    if strategies or default_strategy != "emcdr":
        attach_strategies(result, list(strategies), default_strategy)
        for name, res in (result.metrics.strategies or {}).items():
            line = res.test.scorers[name].sampled.line
            print(
                f"strategy {name:10s} test sampled HR@10 {line.hr(10):.4f} "
                f"MRR {line.mrr:.4f} ({res.seconds}s)"
            )
    path = export_result(result, out, version)
    metrics = result.metrics
    if metrics_json is not None:
        metrics_json.write_text(json.dumps(metrics.to_dict(), indent=1), encoding="utf-8")
    print(f"best bridge epoch {metrics.best_epoch}, {metrics.seconds}")
    print(f"bundle: {path}")
    return path


def bundle_scorer(
    bundle: Path, dataset: CrossDomainDataset, max_history: int | None = None
) -> Scorer:
    """Score cold users with a bundle's ONNX models (onnxruntime, no torch).

    A user listed in the manifest's source users uses its stored embedding; any other
    user is encoded from its source training history with ``source_encoder.onnx``.
    """
    from coldbridge_bundle import open_session, read

    loaded = read(bundle)
    spec = loaded.spec
    sess = {k: open_session(p, threads=0) for k, p in loaded.model_paths().items()}
    src_emb = loaded.arrays["source_user_embeddings"]
    src_rows = {u: i for i, u in enumerate(spec.users.source)}
    item_pos = {t: i for i, t in enumerate(spec.items.source)}
    tgt_items = spec.items.target
    remap = np.array([dataset.target.item_index[t] for t in tgt_items], dtype=np.int64)
    hist = dataset.source.user_histories()
    max_len = max_history or spec.encoder_max_history

    def encode(user: str) -> np.ndarray:
        if user in src_rows:
            return src_emb[src_rows[user]]
        h = [
            item_pos[dataset.source.item_ids[i]]
            for i in hist[dataset.source.user_index[user]][-max_len:]
        ]
        idx, mask = np.array([h], np.int64), np.ones((1, len(h)), np.float32)
        return sess["source_encoder"].run(None, {"item_indices": idx, "mask": mask})[0][0]

    def score(users: list[str]) -> np.ndarray:
        s = np.stack([encode(u) for u in users]).astype(np.float32)
        t = sess["bridge"].run(None, {"source_embedding": s})[0]
        cand = np.broadcast_to(
            np.arange(len(tgt_items), dtype=np.int64), (len(users), len(tgt_items))
        )
        raw = sess["target_candidates"].run(
            None, {"user_embedding": t, "item_indices": np.ascontiguousarray(cand)}
        )[0]
        out = np.full((len(users), dataset.target.n_items), -np.inf, dtype=np.float32)
        out[:, remap] = raw
        return out

    return score


def evaluate_bundle(
    bundle: Path, dataset: CrossDomainDataset, splits: Sequence[str], negatives: int, seed: int
) -> None:
    """Print the metrics of a trained bundle next to the baselines on each of ``splits``."""
    scorers = {
        "bundle": bundle_scorer(bundle, dataset),
        "popularity": popularity_scorer(dataset),
        "cooccurrence": cooccurrence_scorer(dataset),
        "random": random_scorer(dataset),
    }
    for split in splits:
        ev = make_split(dataset, getattr(dataset, split), negatives, seed)
        print(format_table(evaluate_scorers(scorers, ev), f"== {split} cold users: {bundle} =="))


def evaluate_report(
    loaders: Sequence[Loader],
    names: Sequence[str],
    seeds: Sequence[int],
    config: TrainConfig,
    *,
    report_dir: Path,
    command: str,
    bootstrap: int = 1000,
    profile_best: bool = True,
    progress: bool = True,
    warmup: Mapping[str, Any] | None = None,
    save_runs: Path | None = None,
) -> Path:
    """Train and compare ``names`` on each dataset for every seed; write the report.

    One tqdm step per fitted model (base and each strategy, per seed), per direction's
    baselines and per profiled re-training. Returns the path of ``report.md``.
    """
    from tqdm.auto import tqdm

    from coldbridge_trainer.harness import profile_training, run_direction
    from coldbridge_trainer.report import write_report

    config = replace(config, progress=False)
    total = len(loaders) * (1 + len(seeds) * (1 + len(names)) + int(profile_best))
    bar = tqdm(total=total, desc="evaluate", disable=not progress, unit="model")
    runs = []
    for loader in loaders:
        dataset = load(loader)
        direction = f"{dataset.source.name}->{dataset.target.name}"

        def step(label: str, direction: str = direction) -> None:
            bar.set_postfix_str(f"{direction} {label}")
            bar.update(1)

        run = run_direction(dataset, names, seeds, config, step=step)
        if profile_best and run.best is not None:
            bar.set_postfix_str(f"{direction} profiling {run.best}")
            chain = _training_chain(names, run.best)
            run.profile = profile_training(chain, replace(config, seed=seeds[0]), loader)
            step(f"profiled {run.best}")
        runs.append(run)
        print(
            f"{run.name}: best on valid = {run.best}; test candidates sha256 "
            f"{run.test_split.digest}",
            flush=True,
        )
    bar.close()
    if save_runs is not None:
        import pickle

        save_runs.write_bytes(pickle.dumps(runs))
    path = write_report(
        runs,
        report_dir,
        command=command,
        config=config.to_dict(),
        n_boot=bootstrap,
        warmup=dict(warmup) if warmup is not None else None,
    )
    print(path.read_text(encoding="utf-8").split("## Summary", 1)[1].split("\n## ", 1)[0])
    print(f"report: {path}")
    return path


def _training_chain(names: Sequence[str], best: str) -> list[str]:
    """What training ``best`` takes: itself, or for the blend ``fusion`` its members too."""
    return list(names)[: list(names).index(best) + 1] if best == "fusion" else [best]
