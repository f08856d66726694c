"""The ``coldbridge`` console script.

Usage::

    coldbridge datagen  [trainer args...]   # forwarded to coldbridge_trainer.commands
    coldbridge train    [trainer args...]
    coldbridge evaluate [trainer args...]
    coldbridge serve [--bundle PATH] [--host HOST] [--port PORT] [--demo]

``serve`` starts from :meth:`Settings.from_env` and lets the flags override it. ``--bundle``
is a bundle directory or a directory of bundle versions (the newest is served). ``--demo``
prints sample recommendations once the server is healthy, then keeps serving.

The trainer commands import ``coldbridge_trainer`` (and so torch) lazily, only when they
run: ``coldbridge serve`` never loads torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Sequence
from typing import Any

import grpc

from coldbridge_server.app import serve
from coldbridge_server.bundle import load_bundle, resolve_bundle_dir
from coldbridge_server.config import Settings
from coldbridge_server.demo import print_samples
from coldbridge_server.errors import ColdbridgeError, ConfigError
from coldbridge_server.observability.logs import configure_logging

__all__ = ["TRAINER_COMMANDS", "main"]

#: subcommand -> function name in ``coldbridge_trainer.commands`` (``(argv) -> int``).
TRAINER_COMMANDS = {
    "datagen": ("datagen_main", "generate a synthetic cross-domain data set"),
    "train": ("train_main", "train a transfer model and export a bundle"),
    "evaluate": ("evaluate_main", "evaluate a bundle, or train and report strategies vs baselines, on held-out cold users"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``coldbridge`` command line; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in TRAINER_COMMANDS:
        return _run_trainer(args[0], args[1:])
    options = _parser().parse_args(args)
    if options.command != "serve":
        _parser().print_help()
        return 2
    return _serve(options)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coldbridge", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in TRAINER_COMMANDS.items():
        commands.add_parser(name, help=f"{help_text} (see coldbridge {name} --help)")
    serve_parser = commands.add_parser("serve", help="serve a bundle over gRPC")
    serve_parser.add_argument("--bundle", help="bundle dir, or dir of versions (newest wins); "
                              "default: $COLDBRIDGE_BUNDLE_PATH")
    serve_parser.add_argument("--host", help="interface to bind (default: $COLDBRIDGE_HOST)")
    serve_parser.add_argument("--port", type=int, help="port, 0 = any (default: $COLDBRIDGE_PORT)")
    serve_parser.add_argument("--demo", action="store_true",
                              help="print sample recommendations once healthy")
    return parser


def _run_trainer(command: str, argv: list[str]) -> int:
    try:
        commands = importlib.import_module("coldbridge_trainer.commands")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("torch", "coldbridge_trainer"):
            raise
        print(f"coldbridge {command}: the trainer is not installed ({exc}); "
              "install coldbridge[trainer]", file=sys.stderr)
        return 1
    result: int = getattr(commands, TRAINER_COMMANDS[command][0])(argv)
    return result


def _serve(options: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        name: value for name, value in (("bundle_path", options.bundle),
                                        ("host", options.host), ("port", options.port))
        if value is not None
    }
    try:
        settings = dataclasses.replace(Settings.from_env(), **overrides)
        configure_logging(settings.log_format, settings.log_level)
        if not settings.bundle_path:
            raise ConfigError("bundle_path", "pass --bundle or set COLDBRIDGE_BUNDLE_PATH")
        bundle = load_bundle(resolve_bundle_dir(settings.bundle_path))

        def on_ready(address: str) -> None:
            print(f"coldbridge: serving bundle {bundle.version} ({bundle.source_domain} -> "
                  f"{bundle.target_domain}) on {address}", flush=True)
            if options.demo:
                try:
                    print_samples(address, bundle)
                except grpc.RpcError as exc:
                    print(f"coldbridge serve: demo failed: {exc}", file=sys.stderr)

        serve(settings, on_ready, bundle=bundle)
    except ColdbridgeError as exc:
        print(f"coldbridge serve: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
