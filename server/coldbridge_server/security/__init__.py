"""Security of the server: TLS / mutual TLS, bearer tokens with roles, exposure warnings.

* :mod:`.tls` reads and checks the certificate files (``tls_*`` settings);
* :mod:`.tokens` reads the token file (``auth_tokens_file``) and looks tokens up in constant
  time;
* :mod:`.policy` is the one table of which role may call which method;
* :mod:`.interceptor` refuses calls (``UNAUTHENTICATED`` / ``PERMISSION_DENIED``);
* :mod:`.exposure` warns about plaintext, missing authentication and ``/metrics`` on the
  network;
* :func:`load_security` puts them together for :func:`coldbridge_server.app.create_server`.

docs/security.md is the operator's guide.
"""

from __future__ import annotations

from coldbridge_server.security.exposure import exposure_warnings, is_loopback
from coldbridge_server.security.interceptor import AuthInterceptor, bearer_token
from coldbridge_server.security.load import ServerSecurity, load_security
from coldbridge_server.security.policy import ROLES, allowed, required_role
from coldbridge_server.security.tls import server_credentials
from coldbridge_server.security.tokens import TokenTable, load_tokens

__all__ = [
    "ROLES",
    "AuthInterceptor",
    "ServerSecurity",
    "TokenTable",
    "allowed",
    "bearer_token",
    "exposure_warnings",
    "is_loopback",
    "load_security",
    "load_tokens",
    "required_role",
    "server_credentials",
]
