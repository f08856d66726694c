"""The ``coldbridge`` console script: one parser, one module per subcommand, one-line errors.

Usage::

    coldbridge datagen --out DIR [--seed N] [size flags]
    coldbridge train (--data DIR | --cdrib DIR [--source S --target T]) --out BUNDLES
    coldbridge evaluate bundle BUNDLE (--data DIR | --cdrib DIR ...)
    coldbridge evaluate report (--data DIR | --cdrib DIR [--directions S:T,...])
                               --strategies NAMES --report-dir DIR
    coldbridge serve [--bundle PATH] [--config FILE] [--print-config] [--demo] [setting flags]

Only the chosen subcommand's flags are built, and each subcommand imports what it runs,
so ``coldbridge serve`` never imports the trainer (nor torch) and ``coldbridge train`` never
imports the server. A mistake the user can fix ends with one line on stderr and exit
status 2 (:class:`~coldbridge_cli.errors.CliError`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

from coldbridge_cli import datagen, evaluate, serve, train
from coldbridge_cli.errors import CliError, UsageError

__all__ = ["COMMANDS", "Parser", "build_parser", "main"]

COMMANDS: dict[str, ModuleType] = {
    "datagen": datagen,
    "train": train,
    "evaluate": evaluate,
    "serve": serve,
}
"""Subcommand -> module with ``HELP``, ``DESCRIPTION``, ``add_arguments(parser)`` and
optionally ``check_argv(rest)`` (a check of the words after the subcommand)."""

_EXTRAS = {
    "torch": "trainer",
    "tqdm": "trainer",
    "matplotlib": "trainer",
    "onnx": "trainer",
    "grpc": "server",
    "grpc_health": "server",
    "grpc_reflection": "server",
    "river": "server",
    "prometheus_client": "server",
    "onnxruntime": "server",
}


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises :class:`UsageError` instead of printing usage.

    Abbreviated long flags are refused (``--bund`` is not ``--bundle``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` (``main`` prints it as one line, exit status 2)."""
        raise UsageError(self.prog, message)


def build_parser(command: str | None = None) -> Parser:
    """The ``coldbridge`` parser; only ``command``'s flags are added (the others list help)."""
    parser = Parser(
        prog="coldbridge",
        description="Train a cold-start cross-domain bridge and serve it over gRPC.",
        epilog="See docs/configuration.md.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION)
        if name == command:
            module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``coldbridge`` command line; return the exit status.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args if not a.startswith("-")), None)
    prog = f"coldbridge {command}" if command in COMMANDS else "coldbridge"
    try:
        return _run(args, command if command in COMMANDS else None)
    except CliError as exc:
        print(f"{exc.prog or prog}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _run(args: list[str], command: str | None) -> int:
    if command is not None and hasattr(COMMANDS[command], "check_argv"):
        COMMANDS[command].check_argv(args[args.index(command) + 1 :])
    parser = build_parser(command)
    if not args:
        parser.print_help()
        return 2
    try:
        options, extra = parser.parse_known_args(args)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    prog = getattr(options, "prog", parser.prog)
    if extra:
        raise UsageError(prog, f"unrecognized arguments: {' '.join(extra)}")
    if not hasattr(options, "run"):
        raise UsageError(prog, "give a command")
    options.argv = args
    try:
        status: int = options.run(options)
    except CliError as exc:
        exc.prog = exc.prog or options.prog
        raise
    except ModuleNotFoundError as exc:
        package = _EXTRAS.get((exc.name or "").split(".")[0])
        if package is None:
            raise
        raise CliError(
            f"needs the '{package}' extra ({exc}): pip install 'coldbridge[{package}]'",
            1,
            options.prog,
        ) from exc
    return status
