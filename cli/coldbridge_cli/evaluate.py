"""``coldbridge evaluate bundle`` and ``coldbridge evaluate report``.

``bundle`` scores a trained bundle with onnxruntime (no torch) next to the baselines;
``report`` trains the base pipeline and the named strategies for every seed, selects on
valid, scores test once and writes a Markdown report with plots.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

from coldbridge_cli.errors import CliError, UsageError
from coldbridge_cli.options import (
    add_data_args,
    add_dataclass_flags,
    data_loaders,
    dataclass_values,
    int_list,
)

__all__ = [
    "DESCRIPTION",
    "HELP",
    "REPORT_OWNS",
    "add_arguments",
    "check_argv",
    "run_bundle",
    "run_report",
]

HELP = "evaluate a bundle, or train and report strategies vs baselines, on held-out cold users"
DESCRIPTION = (
    "`coldbridge evaluate bundle BUNDLE --data DIR` scores a trained bundle; "
    "`coldbridge evaluate report --strategies NAMES --report-dir DIR --data DIR` "
    "trains and compares strategies."
)

REPORT_OWNS = ("seed", "progress")
"""TrainConfig fields that ``evaluate report`` sets itself (``--seeds``; ``--progress`` is
the report's bar, the per-epoch bars are off)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bundle`` and ``report`` subcommands."""
    from coldbridge_trainer.config import TrainConfig

    modes = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    bundle = modes.add_parser(
        "bundle",
        help="score a trained bundle next to the baselines",
        description=run_bundle.__doc__,
    )
    bundle.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle directory")
    add_data_args(bundle)
    bundle.add_argument(
        "--split",
        choices=("valid", "test", "both"),
        default="test",
        help="held-out cold users to score (default: %(default)s)",
    )
    _add_protocol_flags(bundle, TrainConfig)
    bundle.set_defaults(run=run_bundle, prog=bundle.prog)
    report = modes.add_parser(
        "report",
        help="train strategies and write a comparison report",
        description=run_report.__doc__,
    )
    add_data_args(report, directions=True)
    _add_report_flags(report)
    add_dataclass_flags(
        report.add_argument_group("training (TrainConfig)"), TrainConfig, omit=REPORT_OWNS
    )
    report.set_defaults(run=run_report, prog=report.prog)


def check_argv(argv: list[str]) -> None:
    """Refuse flags before the mode (``evaluate --bundle X`` was the old spelling)."""
    if argv and argv[0] not in ("bundle", "report", "-h", "--help"):
        raise UsageError(
            "coldbridge evaluate",
            f"{argv[0]!r}: give the mode first: "
            "'evaluate bundle BUNDLE --data DIR' or "
            "'evaluate report --strategies NAMES --report-dir DIR --data DIR'",
        )


def _add_protocol_flags(parser: argparse.ArgumentParser, config: Any) -> None:
    parser.add_argument(
        "--eval-negatives",
        type=int,
        default=config.eval_negatives,
        metavar="INT",
        help="sampled negatives per held-out line (default: %(default)s)",
    )
    parser.add_argument(
        "--eval-seed",
        type=int,
        default=config.eval_seed,
        metavar="INT",
        help="seed of the sampled candidate lists (default: %(default)s)",
    )


def _add_report_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("report")
    group.add_argument(
        "--strategies",
        required=True,
        metavar="NAMES",
        help="comma-separated strategies, or 'all' (every registered)",
    )
    group.add_argument(
        "--report-dir",
        type=Path,
        required=True,
        metavar="DIR",
        help="where report.md, results.json and the PNGs go",
    )
    group.add_argument("--seeds", default="1,2,3", help="training seeds (default: %(default)s)")
    group.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="INT",
        help="bootstrap resamples of the users (default: %(default)s)",
    )
    group.add_argument(
        "--warmup-json",
        type=Path,
        metavar="FILE",
        help="benchmarks/online_warmup.py --json output to plot",
    )
    group.add_argument(
        "--profile-best",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="re-train the best strategy in a fresh process for time and peak memory",
    )
    group.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar (one step per fitted model)",
    )
    group.add_argument(
        "--save-runs", type=Path, metavar="FILE", help="also pickle the raw per-line results here"
    )


def run_bundle(args: argparse.Namespace) -> int:
    """Print a bundle's metrics next to popularity, co-occurrence and random (onnxruntime)."""
    from coldbridge_trainer import commands

    if not (args.bundle / "manifest.json").is_file():
        raise CliError(f"{args.bundle}: not a bundle directory (no manifest.json)")
    (loader,) = data_loaders(args)
    try:
        dataset = commands.load(loader)
    except commands.DatasetError as exc:
        raise CliError(f"cannot read the dataset: {exc}") from exc
    splits = ("valid", "test") if args.split == "both" else (args.split,)
    commands.evaluate_bundle(args.bundle, dataset, splits, args.eval_negatives, args.eval_seed)
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Train the base pipeline and every named strategy for each seed, select on valid,
    score test once, and write a Markdown report with plots to --report-dir."""
    from coldbridge_trainer import commands
    from coldbridge_trainer.config import TrainConfig

    try:
        names = commands.resolve_strategies(args.strategies, blends_last=True)
    except ValueError as exc:
        raise CliError(f"--strategies: {exc}") from exc
    seeds = int_list("--seeds", args.seeds)
    loaders = data_loaders(args)
    warmup = _read_json("--warmup-json", args.warmup_json) if args.warmup_json else None
    config = TrainConfig(**dataclass_values(args, TrainConfig, omit=REPORT_OWNS))
    try:
        commands.evaluate_report(
            loaders,
            names,
            seeds,
            config,
            report_dir=args.report_dir,
            bootstrap=args.bootstrap,
            command="coldbridge " + shlex.join(args.argv),
            profile_best=args.profile_best,
            progress=args.progress,
            warmup=warmup,
            save_runs=args.save_runs,
        )
    except commands.DatasetError as exc:
        raise CliError(f"cannot read the dataset: {exc}") from exc
    return 0


def _read_json(flag: str, path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"{flag} {path}: {exc}") from exc
