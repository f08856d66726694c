"""The ``coldbridge`` command line, above the trainer and the server.

``coldbridge datagen | train | evaluate bundle | evaluate report | serve``; see
docs/configuration.md. Importing this package loads neither the trainer nor the server: each
subcommand imports what it runs, so ``coldbridge serve`` never imports torch.
"""

from __future__ import annotations

from coldbridge_cli.app import main
from coldbridge_cli.errors import CliError, UsageError

__all__ = ["CliError", "UsageError", "main"]
