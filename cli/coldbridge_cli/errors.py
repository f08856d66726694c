"""Errors of the command line, each reported as one line on stderr.

The hierarchy::

    CliError(message, code=2)     the user can fix it: a bad flag, path, file or value
    └── UsageError(prog, message)  argparse refused the command line

:func:`coldbridge_cli.app.main` prints ``<prog>: error: <message>`` and returns ``code``;
a bug still ends in a traceback.
"""

from __future__ import annotations

__all__ = ["CliError", "UsageError"]


class CliError(Exception):
    """A problem the user can fix; ``code`` is the exit status (2: usage, 1: runtime).

    Parameters
    ----------
    message
        One line saying what is wrong and, where it helps, what to do.
    code
        Exit status of the command.
    prog
        The (sub)command at fault, e.g. ``coldbridge train``; ``main`` fills it in.
    """

    def __init__(self, message: str, code: int = 2, prog: str | None = None) -> None:
        self.code, self.prog = code, prog
        super().__init__(" ".join(message.split()))


class UsageError(CliError):
    """argparse refused the command line of ``prog`` (e.g. ``coldbridge train``)."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(f"{message} (see {prog} --help)", 2, prog)
