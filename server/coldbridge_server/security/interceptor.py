"""``AuthInterceptor``: bearer-token authentication and role checks, before any handler runs.

For each call it reads the ``authorization: Bearer <token>`` metadata, looks the token up
(:class:`~coldbridge_server.security.tokens.TokenTable`) and checks the method's role
(:mod:`~coldbridge_server.security.policy`). A refused call never reaches the servicer, and
its request is not even deserialised: it ends with

* ``UNAUTHENTICATED`` when the token is missing or unknown,
* ``PERMISSION_DENIED`` when the token's roles do not cover the method,

raised as :class:`~coldbridge_server.errors.UnauthenticatedError` /
:class:`~coldbridge_server.errors.PermissionDeniedError` and mapped by
:mod:`coldbridge_server.status`. The metrics interceptor sits *outside* this one (first in
the server's interceptor list), so a rejection is counted in ``grpc_server_handled_total``
with its code. Neither the message, nor the log line (logger ``coldbridge.security``, with
the token's name when there is one) contains the token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from coldbridge_server.errors import ColdbridgeError, PermissionDeniedError, UnauthenticatedError
from coldbridge_server.interception import Interceptor, refusal
from coldbridge_server.security.policy import OPEN, allowed, required_role
from coldbridge_server.security.tokens import TokenTable

__all__ = ["AUTHORIZATION_KEY", "AuthInterceptor", "bearer_token"]

AUTHORIZATION_KEY = "authorization"
logger = logging.getLogger("coldbridge.security")
_MISSING = "missing credentials: send the metadata 'authorization: Bearer <token>'"
_INVALID = "invalid token"


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the first ``authorization`` entry if it reads ``Bearer <token>``.

    Examples
    --------
    >>> bearer_token([("authorization", "Bearer abc")]), bearer_token([("x", "y")])
    ('abc', None)
    """
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY:
            if not isinstance(value, str):
                return ""
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return None


class AuthInterceptor(Interceptor):
    """Refuse calls without a valid token or the role their method needs.

    Parameters
    ----------
    tokens
        The known tokens.
    """

    def __init__(self, tokens: TokenTable) -> None:
        self._tokens = tokens

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        method = details.method
        error = self._check(method, details.invocation_metadata)
        handler = continuation(details)
        if error is None or handler is None:
            return handler
        return self._rejection(handler, method, error)

    def _check(
        self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None
    ) -> ColdbridgeError | None:
        """``None`` if the call may proceed, else the error that refuses it."""
        if required_role(method) == OPEN:
            return None
        token = bearer_token(metadata)
        if not token:
            return UnauthenticatedError(_MISSING)
        entry = self._tokens.lookup(token)
        if entry is None:
            return UnauthenticatedError(_INVALID)
        if not allowed(entry.roles, method):
            return PermissionDeniedError(
                f"{method} needs the role {required_role(method)!r}; token {entry.name!r} "
                f"has {sorted(entry.roles)}"
            )
        return None

    def _rejection(self, handler: Any, method: str, error: ColdbridgeError) -> Any:
        """A handler of ``handler``'s shape that logs and aborts with ``error``."""

        def log(context: grpc.ServicerContext) -> None:
            logger.info("refused %s from %s: %s", method, context.peer(), error)

        return refusal(handler, error, log)  # no deserialiser: the request stays bytes
