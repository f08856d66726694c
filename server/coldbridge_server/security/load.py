"""``ServerSecurity``: what the security settings add to a server, loaded once at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import grpc

from coldbridge_server.config import Settings
from coldbridge_server.errors import ConfigError
from coldbridge_server.security.exposure import exposure_warnings
from coldbridge_server.security.interceptor import AuthInterceptor
from coldbridge_server.security.tls import server_credentials
from coldbridge_server.security.tokens import TokenTable, load_tokens

__all__ = ["ServerSecurity", "load_security"]

logger = logging.getLogger("coldbridge.security")


@dataclass(frozen=True)
class ServerSecurity:
    """TLS credentials (``None``: plaintext) and tokens (``None``: no authentication)."""

    credentials: grpc.ServerCredentials | None = None
    tokens: TokenTable | None = None

    @property
    def interceptors(self) -> list[Any]:
        """Interceptors to put *after* the metrics interceptor (so rejections are counted)."""
        return [] if self.tokens is None else [AuthInterceptor(self.tokens)]

    def bind(self, server: grpc.Server, address: str) -> int:
        """Bind ``address`` with TLS or in plaintext; return the port.

        Raises
        ------
        ConfigError
            If the address cannot be bound.
        """
        try:
            if self.credentials is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, self.credentials)
        except RuntimeError:
            port = 0
        if port <= 0:  # grpc returns 0 (or raises) when it cannot bind
            raise ConfigError(
                "port", f"cannot bind {address}: in use by another process, or not an address here"
            )
        return port


def load_security(settings: Settings) -> ServerSecurity:
    """Read the certificate and token files of ``settings``; log a WARNING per exposure gap.

    Raises
    ------
    ConfigError
        If a certificate, key or token file is missing or invalid (see
        :func:`~coldbridge_server.security.tls.server_credentials`, :func:`load_tokens`).
    """
    credentials = server_credentials(
        settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    )
    tokens = load_tokens(settings.auth_tokens_file) if settings.auth_tokens_file else None
    for warning in exposure_warnings(settings):
        logger.warning("%s", warning)
    return ServerSecurity(credentials, tokens)
