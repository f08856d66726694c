"""Entry points of ``coldbridge datagen``, ``coldbridge train`` and ``coldbridge evaluate``.

Each ``*_main(argv) -> int`` parses its own arguments. torch is imported only inside
:func:`train_main`, so ``datagen`` and ``evaluate`` (onnxruntime) stay light.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from coldbridge_trainer.config import TrainConfig
from coldbridge_trainer.data import CrossDomainDataset, load_cdrib, load_dataset
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

__all__ = ["bundle_scorer", "datagen_main", "evaluate_main", "load_data_args", "train_main"]


def _add_fields(parser: argparse.ArgumentParser, cls: type, skip: set[str]) -> None:
    """One ``--flag`` per dataclass field (tuples take several values)."""
    for f in fields(cls):
        if f.name in skip:
            continue
        flag, default = "--" + f.name.replace("_", "-"), f.default
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=int, nargs="*", default=list(default), metavar="N")
        else:
            parser.add_argument(flag, type=type(default), default=default, metavar=type(default).__name__.upper())


def _values(args: argparse.Namespace, cls: type, skip: set[str]) -> dict[str, Any]:
    out = {f.name: getattr(args, f.name) for f in fields(cls) if f.name not in skip}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in out.items()}


def datagen_main(argv: list[str]) -> int:
    """``coldbridge datagen --out DIR [--seed N] [size flags]``: write a synthetic dataset."""
    parser = argparse.ArgumentParser(prog="coldbridge datagen", description=datagen_main.__doc__)
    parser.add_argument("--out", type=Path, required=True, help="dataset directory to write")
    _add_fields(parser, SynthConfig, set())
    args = parser.parse_args(argv)
    out = write_dataset(args.out, SynthConfig(**_values(args, SynthConfig, set())))
    ds = load_dataset(out)
    print(f"wrote {out}: source {ds.source.n_users} users/{len(ds.source.users)} rows, "
          f"target {ds.target.n_users} users/{len(ds.target.users)} rows, "
          f"{len(ds.cold_users())} cold users ({len(ds.valid)} valid / {len(ds.test)} test rows)")
    return 0


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--data", type=Path, help="dataset directory (coldbridge datagen layout)")
    group.add_argument("--cdrib", type=Path, help="CDRIB folder holding game_video/ and video_game/")
    parser.add_argument("--source", default="game", help="CDRIB source domain (game|video)")
    parser.add_argument("--target", default="video", help="CDRIB target domain (game|video)")


def load_data_args(args: argparse.Namespace) -> CrossDomainDataset:
    """Load the dataset named by ``--data`` or ``--cdrib/--source/--target``."""
    if args.data is not None:
        return load_dataset(args.data)
    return load_cdrib(args.cdrib, args.source, args.target)


def _print_results(metrics: TrainMetrics, splits: tuple[str, ...]) -> None:
    for split in splits:
        print(format_table(getattr(metrics, split), f"== {split} cold users =="))


def train_main(argv: list[str]) -> int:
    """``coldbridge train (--data DIR | --cdrib DIR) --out BUNDLES``: train, evaluate, export."""
    parser = argparse.ArgumentParser(prog="coldbridge train", description=train_main.__doc__)
    _add_data_args(parser)
    parser.add_argument("--out", type=Path, required=True, help="bundles directory")
    parser.add_argument("--version", default=None, help="bundle version (default: timestamp)")
    parser.add_argument("--metrics-json", type=Path, default=None, help="also write metrics here")
    parser.add_argument("--strategies", default="", metavar="NAMES",
                        help="comma-separated strategy plugins to train into the bundle ('all' = every registered)")
    parser.add_argument("--default-strategy", default="emcdr", metavar="NAME",
                        help="the bundle's default strategy (served unless a request names another)")
    _add_fields(parser, TrainConfig, set())
    args = parser.parse_args(argv)
    dataset = load_data_args(args)
    from coldbridge_trainer.train import export_result, fit

    result = fit(dataset, TrainConfig(**_values(args, TrainConfig, set())))
    if result.metrics is None:  # fit always measures; narrows the type
        raise RuntimeError("fit returned no metrics")
    _print_results(result.metrics, ("valid", "test"))
    if args.strategies or args.default_strategy != "emcdr":
        _train_strategies(result, args.strategies, args.default_strategy)
    path = export_result(result, args.out, args.version)
    metrics = result.metrics
    if args.metrics_json is not None:
        args.metrics_json.write_text(json.dumps(metrics.to_dict(), indent=1), encoding="utf-8")
    print(f"best bridge epoch {metrics.best_epoch}, {metrics.seconds}")
    print(f"bundle: {path}")
    return 0


def _train_strategies(result: Any, names: str, default: str) -> None:
    from coldbridge_plugins import get_plugin_manager, load_strategies

    from coldbridge_trainer.strategies import ordered_names, attach_strategies

    registry = load_strategies(get_plugin_manager())
    chosen = ordered_names(registry) if names == "all" else [n for n in names.split(",") if n]
    if default not in chosen and default != "emcdr":
        chosen.append(default)
    unknown = [n for n in chosen if n not in registry]
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; registered: {sorted(registry)}")
    attach_strategies(result, chosen, default, registry)
    for name, res in (result.metrics.strategies or {}).items():
        line = res.test.scorers[name].sampled.line
        print(f"strategy {name:10s} test sampled HR@10 {line.hr(10):.4f} MRR {line.mrr:.4f} "
              f"({res.seconds}s)")


def bundle_scorer(bundle: Path, dataset: CrossDomainDataset, max_history: int | None = None) -> Scorer:
    """Score cold users with a bundle's ONNX models (onnxruntime, no torch).

    A user listed in the manifest's source users uses its stored embedding; any other
    user is encoded from its source training history with ``source_encoder.onnx``.
    """
    import onnxruntime as ort

    bundle = Path(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    sess = {k: ort.InferenceSession(str(bundle / v), providers=["CPUExecutionProvider"])
            for k, v in manifest["models"].items()}
    src_emb = np.load(bundle / manifest["arrays"]["source_user_embeddings"])
    src_rows = {u: i for i, u in enumerate(manifest["users"]["source"])}
    item_pos = {t: i for i, t in enumerate(manifest["items"]["source"])}
    tgt_items = manifest["items"]["target"]
    remap = np.array([dataset.target.item_index[t] for t in tgt_items], dtype=np.int64)
    hist = dataset.source.user_histories()
    max_len = max_history or int(manifest["encoder_max_history"])

    def encode(user: str) -> np.ndarray:
        if user in src_rows:
            return src_emb[src_rows[user]]
        h = [item_pos[dataset.source.item_ids[i]] for i in hist[dataset.source.user_index[user]][-max_len:]]
        idx, mask = np.array([h], np.int64), np.ones((1, len(h)), np.float32)
        return sess["source_encoder"].run(None, {"item_indices": idx, "mask": mask})[0][0]

    def score(users: list[str]) -> np.ndarray:
        s = np.stack([encode(u) for u in users]).astype(np.float32)
        t = sess["bridge"].run(None, {"source_embedding": s})[0]
        cand = np.broadcast_to(np.arange(len(tgt_items), dtype=np.int64), (len(users), len(tgt_items)))
        raw = sess["target_candidates"].run(None, {"user_embedding": t, "item_indices": np.ascontiguousarray(cand)})[0]
        out = np.full((len(users), dataset.target.n_items), -np.inf, dtype=np.float32)
        out[:, remap] = raw
        return out

    return score


def evaluate_main(argv: list[str]) -> int:
    """``coldbridge evaluate``: score a bundle, or train and compare strategies into a report.

    ``--bundle PATH (--data DIR | --cdrib DIR)``: print the metrics of a trained bundle next to
    the baselines. ``--strategies NAMES --report-dir DIR``: train the base pipeline and every
    named strategy for each ``--seeds`` seed, select on valid, score test once, and write a
    Markdown report with plots (see :mod:`coldbridge_trainer.report`).
    """
    parser = argparse.ArgumentParser(prog="coldbridge evaluate", description=evaluate_main.__doc__)
    parser.add_argument("--bundle", type=Path, default=None, help="bundle directory (bundle mode)")
    _add_data_args(parser)
    parser.add_argument("--split", choices=("valid", "test", "both"), default="test", help="bundle mode split")
    parser.add_argument("--negatives", type=int, default=999, help="sampled negatives per line")
    parser.add_argument("--seed", type=int, default=2022, help="seed of the candidate lists")
    report = parser.add_argument_group("report mode (train and compare strategies)")
    report.add_argument("--strategies", default=None, metavar="NAMES",
                        help="comma-separated strategies, or 'all' (every registered)")
    report.add_argument("--seeds", default="1,2,3", help="training seeds, comma-separated")
    report.add_argument("--directions", default=None, metavar="S:T,...",
                        help="CDRIB directions, e.g. game:video,video:game (default: --source:--target)")
    report.add_argument("--report-dir", type=Path, default=None, help="where report.md and the PNGs go")
    report.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the users")
    report.add_argument("--warmup-json", type=Path, default=None,
                        help="benchmarks/online_warmup.py --json output to plot")
    report.add_argument("--profile-best", action=argparse.BooleanOptionalAction, default=True,
                        help="re-train the best strategy in a fresh process for time and peak memory")
    report.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    report.add_argument("--train-negatives", type=int, default=TrainConfig.negatives, metavar="INT",
                        help="TrainConfig.negatives: sampled negatives per positive when training the base MF "
                             "(--negatives is the evaluation's, per held-out line)")
    report.add_argument("--save-runs", type=Path, default=None,
                        help="also pickle the raw per-line results here (re-render the report later)")
    _add_fields(parser, TrainConfig, _REPORT_SKIP)
    args = parser.parse_args(argv)
    if args.bundle is None and args.strategies is None:
        parser.error("give --bundle PATH (score a bundle) or --strategies NAMES (report)")
    if args.strategies is not None:
        if args.report_dir is None:
            parser.error("--strategies needs --report-dir")
        return _report_main(args, argv)
    dataset = load_data_args(args)
    scorers = {"bundle": bundle_scorer(args.bundle, dataset), "popularity": popularity_scorer(dataset),
               "cooccurrence": cooccurrence_scorer(dataset), "random": random_scorer(dataset)}
    for split in ("valid", "test") if args.split == "both" else (args.split,):
        ev = make_split(dataset, getattr(dataset, split), args.negatives, args.seed)
        print(format_table(evaluate_scorers(scorers, ev), f"== {split} cold users: {args.bundle} =="))
    return 0


_REPORT_SKIP = {"seed", "eval_negatives", "eval_seed", "progress", "negatives"}  # clash with evaluate flags


def _report_main(args: argparse.Namespace, argv: list[str]) -> int:
    import shlex

    from coldbridge_plugins import get_plugin_manager, load_strategies
    from tqdm.auto import tqdm

    from coldbridge_trainer.harness import profile_training, run_direction
    from coldbridge_trainer.report import write_report
    from coldbridge_trainer.strategies import ordered_names

    registry = load_strategies(get_plugin_manager())
    names = ordered_names(registry) if args.strategies == "all" else [n for n in args.strategies.split(",") if n]
    unknown = [n for n in names if n not in registry]
    if unknown or not names:
        raise SystemExit(f"unknown strategies {unknown or names}; registered: {sorted(registry)}")
    names = [n for n in ordered_names(registry) if n in names]  # blends (fusion) after their members
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    config = TrainConfig(**_values(args, TrainConfig, _REPORT_SKIP), eval_negatives=args.negatives,
                         negatives=args.train_negatives, eval_seed=args.seed, progress=False)
    if args.data is not None:
        directions = [(None, None)]
    elif args.directions:
        directions = [tuple(d.split(":")) for d in args.directions.split(",") if d]
    else:
        directions = [(args.source, args.target)]
    bar = tqdm(total=len(directions) * (1 + len(seeds) * (1 + len(names))), desc="evaluate",
               disable=not args.progress, unit="step")
    runs = []
    for source, target in directions:
        ns = argparse.Namespace(data=args.data, cdrib=args.cdrib, source=source, target=target)
        dataset = load_data_args(ns)

        def step(label: str, direction: str = f"{dataset.source.name}->{dataset.target.name}") -> None:
            bar.set_postfix_str(f"{direction} {label}")
            bar.update(1)

        run = run_direction(dataset, names, seeds, config, registry=registry, step=step)
        if args.profile_best:
            chain = names[: names.index(run.best) + 1] if run.best == "fusion" else [run.best]
            bar.set_postfix_str(f"profiling {run.best}")
            run.profile = profile_training(
                chain, replace(config, seed=seeds[0]), source=dataset.source.name, target=dataset.target.name,
                cdrib=None if args.cdrib is None else str(args.cdrib),
                data=None if args.data is None else str(args.data))
        runs.append(run)
        print(f"{run.name}: best on valid = {run.best}; test candidates sha256 {run.test_split.digest}",
              flush=True)
    bar.close()
    if args.save_runs is not None:
        import pickle

        args.save_runs.write_bytes(pickle.dumps(runs))
    warmup = json.loads(args.warmup_json.read_text(encoding="utf-8")) if args.warmup_json else None
    command = "coldbridge evaluate " + shlex.join(argv)
    path = write_report(runs, args.report_dir, command=command, config=config.to_dict(),
                        n_boot=args.bootstrap, warmup=warmup)
    print(path.read_text(encoding="utf-8").split("## Summary", 1)[1].split("\n## ", 1)[0])
    print(f"report: {path}")
    return 0
