"""Client-side security: TLS / mutual-TLS settings and the bearer token of every call.

``Client(target, tls=Tls.from_files(root_ca="ca.pem"), token="...")`` opens a TLS channel
and sends ``authorization: Bearer <token>`` with each call (unary calls and event streams).
See docs/security.md for the server's side.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

__all__ = ["BearerToken", "Tls"]

if TYPE_CHECKING:  # generic in grpc-stubs only
    _Unary = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _Stream = grpc.StreamStreamClientInterceptor[Any, Any]
else:
    _Unary = grpc.UnaryUnaryClientInterceptor
    _Stream = grpc.StreamStreamClientInterceptor


@dataclass(frozen=True)
class Tls:
    """TLS settings of a client channel.

    Parameters
    ----------
    root_ca
        PEM CA certificates that sign the server's certificate (``None``: the system's roots).
    client_cert, client_key
        PEM certificate chain and private key of this client, for a server that requires
        mutual TLS (both or neither).
    server_name
        Host name to verify the server's certificate against, when it differs from the
        target's host (e.g. dialling an IP address).

    Examples
    --------
    >>> Tls(server_name="recs.internal").channel_options()
    [('grpc.ssl_target_name_override', 'recs.internal')]
    """

    root_ca: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together (mutual TLS)")

    @classmethod
    def from_files(
        cls,
        root_ca: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
        *,
        server_name: str | None = None,
    ) -> Tls:
        """Read the PEM files (any may be ``None``)."""

        def read(path: str | Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(read(root_ca), read(client_cert), read(client_key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        """The gRPC channel credentials."""
        return grpc.ssl_channel_credentials(self.root_ca, self.client_key, self.client_cert)

    def channel_options(self) -> list[tuple[str, Any]]:
        """Channel options (the server-name override, if any)."""
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


_Fields = collections.namedtuple(
    "_Fields", ["method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"]
)


class _Details(_Fields, grpc.ClientCallDetails):
    """The call details with the token added (grpc's own example does the same)."""


class BearerToken(_Unary, _Stream):
    """Client interceptor adding ``authorization: Bearer <token>`` to every call.

    Raises
    ------
    ValueError
        If the token is empty or holds blanks or non-printable characters.
    """

    def __init__(self, token: str) -> None:
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            raise ValueError("a token is non-empty printable ASCII without blanks")
        self._entry = ("authorization", f"Bearer {token}")

    def __repr__(self) -> str:
        return "BearerToken(***)"

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), self._entry]
        d: Any = details
        return _Details(
            d.method,
            d.timeout,
            metadata,
            d.credentials,
            getattr(d, "wait_for_ready", None),
            getattr(d, "compression", None),
        )

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Iterator[Any]], Any],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[Any],
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)
