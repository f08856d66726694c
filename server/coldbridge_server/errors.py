"""Exceptions raised by the coldbridge server.

The hierarchy::

    ColdbridgeError                  base of everything raised on purpose
    ├── ConfigError(setting, msg)    a bad Settings value or COLDBRIDGE_* variable (start-up)
    ├── ModelLoadError               the model cannot be loaded or run (start-up)
    │   └── BundleError(path, msg)   the bundle directory is corrupt or incomplete
    ├── InvalidRequestError(field, msg)
    │                                a request violates the API contract -> INVALID_ARGUMENT
    ├── RequestTooLargeError         a message over max_message_bytes -> RESOURCE_EXHAUSTED
    ├── NotReadyError                the model is not loaded / warmed up yet -> UNAVAILABLE
    ├── UnauthenticatedError         no valid bearer token (security) -> UNAUTHENTICATED
    ├── PermissionDeniedError        the token lacks the method's role -> PERMISSION_DENIED
    ├── CapacityError(setting, msg)  a concurrency cap is reached -> RESOURCE_EXHAUSTED
    ├── BundleRefusedError           a hot reload refused its bundle -> FAILED_PRECONDITION
    └── StorageError                 the durable state cannot be written (I/O) -> UNAVAILABLE
        └── StorageFullError         the disk (or size limit) is full -> RESOURCE_EXHAUSTED

Errors carry their subject (the setting, file or request field) as an attribute and in
their message. Start-up errors are raised before the server accepts traffic; request errors
are translated to gRPC status codes in exactly one place, :mod:`coldbridge_server.status`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BundleError",
    "BundleRefusedError",
    "CapacityError",
    "ColdbridgeError",
    "ConfigError",
    "InvalidRequestError",
    "ModelLoadError",
    "NotReadyError",
    "PermissionDeniedError",
    "RequestTooLargeError",
    "StorageError",
    "StorageFullError",
    "UnauthenticatedError",
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


class UnauthenticatedError(ColdbridgeError):
    """The call has no valid bearer token (the message never contains the token)."""


class PermissionDeniedError(ColdbridgeError):
    """The call's token does not hold the role its method needs."""


class BundleRefusedError(ColdbridgeError):
    """A hot reload refused its bundle (the old one keeps serving); the message says why."""


class CapacityError(ColdbridgeError):
    """A concurrency cap of the server is reached (e.g. too many open streams).

    Parameters
    ----------
    setting
        The setting that sets the cap (``max_streams``...), named in the message.
    message
        What is full.
    """

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{message} (setting {setting})")


class StorageError(ColdbridgeError):
    """The durable event log or snapshot could not be written (an I/O error).

    Nothing of the failed write is stored; the message carries the backend's cause.
    """


class StorageFullError(StorageError):
    """The disk (or the configured size limit) of the durable state is full."""
