"""Exceptions raised by the coldbridge server.

The hierarchy::

    ColdbridgeError                  base of everything raised on purpose
    ├── ConfigError(setting, msg)    a bad Settings value or COLDBRIDGE_* variable (start-up)
    ├── ModelLoadError               the model cannot be loaded or run (start-up)
    │   └── BundleError(path, msg)   the bundle directory is corrupt or incomplete
    ├── InvalidRequestError(field, msg)
    │                                a request violates the API contract -> INVALID_ARGUMENT
    ├── RequestTooLargeError         a message over max_message_bytes -> RESOURCE_EXHAUSTED
    └── NotReadyError                the model is not loaded / warmed up yet -> UNAVAILABLE

Errors carry their subject (the setting, file or request field) as an attribute and in
their message. Start-up errors are raised before the server accepts traffic; request errors
are translated to gRPC status codes in exactly one place, :mod:`coldbridge_server.status`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BundleError",
    "ColdbridgeError",
    "ConfigError",
    "InvalidRequestError",
    "ModelLoadError",
    "NotReadyError",
    "RequestTooLargeError",
]


class ColdbridgeError(Exception):
    """Base class of all coldbridge server errors."""


class ConfigError(ColdbridgeError):
    """A setting has an invalid value.

    Parameters
    ----------
    setting
        Name of the setting (or environment variable) at fault.
    message
        What is wrong with it.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class ModelLoadError(ColdbridgeError):
    """The model could not be loaded or warmed up."""


class BundleError(ModelLoadError):
    """The bundle directory is invalid.

    Parameters
    ----------
    path
        The offending file (or the bundle directory itself).
    message
        What is wrong; usually names the manifest field too.
    """

    def __init__(self, path: Path | str, message: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {message}")


class InvalidRequestError(ColdbridgeError):
    """A request field violates the API contract.

    Parameters
    ----------
    field
        Name of the request field (as in the .proto), e.g. ``"k"``.
    message
        What is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class RequestTooLargeError(ColdbridgeError):
    """A request message is larger than the server accepts (``max_message_bytes``)."""


class NotReadyError(ColdbridgeError):
    """The server has not finished loading and warming up its model."""
