"""``coldbridge serve``: serve a bundle over gRPC.

Every server setting is a flag here, generated from
:data:`coldbridge_server.config.SETTINGS` (``state_dir`` -> ``--state-dir``); the same
setting is read from ``COLDBRIDGE_STATE_DIR`` and from the key ``state_dir`` of the
``--config`` TOML file. Flags > environment > file > default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from coldbridge_cli.errors import CliError

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP = "serve a bundle over gRPC"
DESCRIPTION = (
    "Serve the newest bundle of --bundle over gRPC until SIGTERM/SIGINT. Each setting "
    "below is also read from the environment variable COLDBRIDGE_<NAME> and from the "
    "key <name> of the --config TOML file (flags > environment > file > default)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--print-config``, ``--demo`` and one flag per server setting."""
    from coldbridge_server.config import SETTINGS

    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file of settings (keys: the setting names, e.g. port = 50051)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings and where each comes from, then exit",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="print sample recommendations once the server is healthy",
    )
    group = parser.add_argument_group("settings (flag > COLDBRIDGE_<NAME> > --config file)")
    for s in SETTINGS:
        help_text = f"{s.help} [{s.env}; default: {s.default!r}]".replace("%", "%%")
        if s.type is bool:
            group.add_argument(
                *s.aliases,
                s.flag,
                dest=s.name,
                default=None,
                help=help_text,
                action=argparse.BooleanOptionalAction,
            )
        else:
            group.add_argument(
                *s.aliases,
                s.flag,
                dest=s.name,
                default=None,
                type=s.type,
                metavar=s.type.__name__.upper(),
                help=help_text,
            )
    parser.set_defaults(run=run, prog=parser.prog)


def run(args: argparse.Namespace) -> int:
    """Resolve the settings, then serve (or print them with ``--print-config``)."""
    from coldbridge_server import ColdbridgeError, ConfigError
    from coldbridge_server.config import SETTINGS, load_settings

    flags = {s.name: getattr(args, s.name) for s in SETTINGS if getattr(args, s.name) is not None}
    try:
        resolved = load_settings(flags, config_file=args.config)
        if args.print_config:
            print(resolved.render())
            return 0
        _serve(resolved.settings, demo=args.demo)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    except ColdbridgeError as exc:
        raise CliError(str(exc), 1) from exc
    return 0


def _serve(settings: Any, *, demo: bool) -> None:
    import grpc
    from coldbridge_server import ConfigError, load_bundle, serve
    from coldbridge_server.bundle import resolve_bundle_dir
    from coldbridge_server.demo import print_samples
    from coldbridge_server.observability.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    if not settings.bundle_path:
        raise ConfigError(
            "bundle_path",
            "pass --bundle, set COLDBRIDGE_BUNDLE_PATH or put bundle_path in the --config file",
        )
    bundle = load_bundle(resolve_bundle_dir(settings.bundle_path))

    def on_ready(address: str) -> None:
        print(
            f"coldbridge: serving bundle {bundle.version} ({bundle.source_domain} -> "
            f"{bundle.target_domain}) on {address}",
            flush=True,
        )
        if demo:
            try:
                print_samples(address, bundle)
            except grpc.RpcError as exc:
                print(f"coldbridge serve: demo failed: {exc}", file=sys.stderr)

    serve(settings, on_ready, bundle=bundle)
