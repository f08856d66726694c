"""Exceptions raised when a bundle cannot be read.

The hierarchy::

    BundleError(path, message)          base: the bundle at ``path`` cannot be used
    ├── BundleFormatError(path, msg)    the manifest is unreadable, of an unknown format or
    │                                   format_version, or a field has the wrong type or value
    └── BundleFileError(path, msg)      a file is missing, altered (sha256) or disagrees with
                                        the manifest (array shape, dtype, values)

Every error carries the offending file as ``path`` and starts its message with it; a
manifest error also names the field (``field 'embedding_dim.target': ...``). Writing a
bundle from inconsistent content raises :class:`ValueError` instead (a caller's mistake).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BundleError", "BundleFileError", "BundleFormatError"]


class BundleError(Exception):
    """The bundle cannot be used.

    Parameters
    ----------
    path
        The offending file (or the bundle directory itself).
    message
        What is wrong; a manifest error names the field too.
    """

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


class BundleFormatError(BundleError):
    """The manifest is unreadable, of an unknown format or version, or has a bad field."""


class BundleFileError(BundleError):
    """A bundle file is missing, altered, or inconsistent with the manifest."""
