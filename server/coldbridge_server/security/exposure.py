"""Start-up warnings about what a configuration exposes to the network.

A server bound to a loopback address (``127.0.0.1``, ``::1``, ``localhost``) is reachable
from its own machine only; anything else (``0.0.0.0``, ``[::]``, a host name, a LAN address)
is treated as reachable from the network. There, :func:`exposure_warnings` names each gap:
plaintext gRPC, no authentication, an unauthenticated ``/metrics`` endpoint.
"""

from __future__ import annotations

import ipaddress

from coldbridge_server.config import Settings

__all__ = ["exposure_warnings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback interface (a host name other than localhost is not).

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("[::1]"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    bare = host.strip("[]")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def exposure_warnings(settings: Settings) -> list[str]:
    """One sentence per gap of ``settings`` on a non-loopback address (empty when none)."""
    warnings = []
    where = f"{settings.host}:{settings.port}"
    if not is_loopback(settings.host):
        if not settings.tls_cert_file:
            warnings.append(
                f"gRPC on {where} is plaintext: requests, user ids and tokens cross the "
                "network unencrypted; set tls_cert_file and tls_key_file (docs/security.md)"
            )
        if not settings.auth_tokens_file:
            warnings.append(
                f"authentication is off on {where}: any client may read, write and delete "
                "any user; set auth_tokens_file (docs/security.md)"
            )
    if settings.metrics_port >= 0 and not is_loopback(settings.metrics_host):
        warnings.append(
            f"/metrics on {settings.metrics_host}:{settings.metrics_port} is served to the "
            "network without authentication; set metrics_host = '127.0.0.1' or metrics_port = -1"
        )
    return warnings
