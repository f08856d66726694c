"""``coldbridge train``: train the base pipeline (and strategies), export a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from coldbridge_cli.errors import CliError
from coldbridge_cli.options import (
    add_data_args,
    add_dataclass_flags,
    data_loaders,
    dataclass_values,
)

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP = "train a transfer model and export a bundle"
DESCRIPTION = (
    "Train the MF models, source encoder and bridge (torch, CPU), print the "
    "metrics on the valid and test cold users next to the baselines, and export "
    "a bundle to --out/<version>. Every TrainConfig field is a flag."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Dataset flags, output flags, strategy flags and one flag per ``TrainConfig`` field."""
    from coldbridge_trainer.config import TrainConfig

    add_data_args(parser)
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="BUNDLES",
        help="bundles directory (the bundle goes to BUNDLES/<version>)",
    )
    parser.add_argument("--version", help="bundle version (default: a timestamp)")
    parser.add_argument("--metrics-json", type=Path, metavar="FILE", help="also write metrics here")
    parser.add_argument(
        "--strategies",
        default="",
        metavar="NAMES",
        help="comma-separated strategy plugins to train into the bundle ('all' = every registered)",
    )
    parser.add_argument(
        "--default-strategy",
        default="emcdr",
        metavar="NAME",
        help="the bundle's default strategy (served unless a request names "
        "another; default: %(default)s)",
    )
    add_dataclass_flags(parser.add_argument_group("training (TrainConfig)"), TrainConfig)
    parser.set_defaults(run=run, prog=parser.prog)


def run(args: argparse.Namespace) -> int:
    """Check the strategy names and the dataset first, then train and export."""
    from coldbridge_trainer import commands
    from coldbridge_trainer.config import TrainConfig

    strategies: list[str] = []
    if args.strategies or args.default_strategy != "emcdr":
        try:
            strategies = commands.resolve_strategies(args.strategies, args.default_strategy)
        except ValueError as exc:
            raise CliError(f"--strategies: {exc}") from exc
    (loader,) = data_loaders(args)
    try:
        dataset = commands.load(loader)
    except commands.DatasetError as exc:
        raise CliError(f"cannot read the dataset: {exc}") from exc
    commands.train(
        dataset,
        TrainConfig(**dataclass_values(args, TrainConfig)),
        args.out,
        version=args.version,
        strategies=strategies,
        default_strategy=args.default_strategy,
        metrics_json=args.metrics_json,
    )
    return 0
