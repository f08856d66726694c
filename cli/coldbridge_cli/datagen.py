"""``coldbridge datagen``: write a synthetic cross-domain dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from coldbridge_cli.errors import CliError
from coldbridge_cli.options import add_dataclass_flags, dataclass_values

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP = "generate a synthetic cross-domain data set"
DESCRIPTION = (
    "Write a synthetic dataset directory (the layout `coldbridge train --data` reads): "
    "users drawn from shared latent tastes, deterministic given --seed."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out DIR`` and one flag per :class:`~coldbridge_trainer.synth.SynthConfig` field."""
    from coldbridge_trainer.synth import SynthConfig

    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="dataset directory to write"
    )
    add_dataclass_flags(parser.add_argument_group("data set shape (SynthConfig)"), SynthConfig)
    parser.set_defaults(run=run, prog=parser.prog)


def run(args: argparse.Namespace) -> int:
    """Write the dataset and print a one-line summary."""
    from coldbridge_trainer.commands import datagen
    from coldbridge_trainer.synth import SynthConfig

    try:
        print(datagen(args.out, SynthConfig(**dataclass_values(args, SynthConfig))))
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    return 0
