"""Errors of the coldbridge client, mapped from gRPC status codes at one boundary.

The hierarchy::

    grpc.RpcError
    └── ClientError              any failed call: .method, .code(), .details()
        ├── DeadlineExceededError    DEADLINE_EXCEEDED: the call's deadline passed (.timeout)
        ├── InvalidArgumentError     INVALID_ARGUMENT: the request was refused (details name why)
        ├── UnavailableError         UNAVAILABLE after the retries: server down or warming up
        ├── UnauthenticatedError     UNAUTHENTICATED: no token, or one the server does not know
        └── PermissionDeniedError    PERMISSION_DENIED: the token lacks the method's role

Every error is a ``grpc.RpcError``, so code written against the plain stubs keeps working, and
it is raised ``from`` the original gRPC error.
"""

from __future__ import annotations

import grpc

__all__ = [
    "ClientError",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "UnavailableError",
    "map_rpc_error",
]


class ClientError(grpc.RpcError):
    """A call of ``method`` ended with a non-OK status.

    Parameters
    ----------
    method
        The RPC, e.g. ``"Recommend"``.
    code
        Its gRPC status code.
    details
        The server's (or gRPC's) message.
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method} failed with {code.name}: {details}")
        self.method = method
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        """Return the gRPC status code."""
        return self._code

    def details(self) -> str:
        """Return the status message."""
        return self._details


class DeadlineExceededError(ClientError):
    """The call did not finish within its deadline.

    Parameters
    ----------
    method
        The RPC.
    details
        gRPC's message.
    timeout
        The deadline the call had, in seconds (``None`` if unknown).
    """

    def __init__(self, method: str, details: str, timeout: float | None) -> None:
        super().__init__(method, grpc.StatusCode.DEADLINE_EXCEEDED, details)
        self.timeout = timeout
        if timeout is not None:
            self.args = (
                f"{method} did not finish within its {timeout:g} s deadline "
                f"(DEADLINE_EXCEEDED: {details})",
            )


class InvalidArgumentError(ClientError):
    """The server refused the request (``INVALID_ARGUMENT``); the details name the field."""


class UnavailableError(ClientError):
    """The server could not be reached or was not ready, after the configured retries."""


class UnauthenticatedError(ClientError):
    """The server wants a valid token (``Client(token=...)``) and got none or an unknown one."""


class PermissionDeniedError(ClientError):
    """The token is valid but lacks the role of the method (the details name the role)."""


_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def map_rpc_error(method: str, exc: grpc.RpcError, timeout: float | None = None) -> ClientError:
    """Return the :class:`ClientError` for a failed call of ``method``.

    Parameters
    ----------
    method
        The RPC that failed.
    exc
        The error gRPC raised (a ``grpc.Call`` as well, for a completed call).
    timeout
        The call's deadline in seconds, reported by :class:`DeadlineExceededError`.

    Returns
    -------
    ClientError
        The most specific subclass for the status code.
    """
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if callable(getattr(exc, "details", None)) else None) or str(exc)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(method, details, timeout)
    return _BY_CODE.get(code, ClientError)(method, code, details)
