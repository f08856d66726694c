"""TLS and mutual TLS of the gRPC port: read and check the PEM files at start-up.

``tls_cert_file`` + ``tls_key_file`` make the port TLS-only; ``tls_client_ca_file`` adds
mutual TLS: a client must present a certificate signed by one of those CAs, or the handshake
fails (the client sees ``UNAVAILABLE``). The files are read once, by :func:`server_credentials`;
each is checked with the standard :mod:`ssl` module first, so a missing file, a file that is
not PEM, an encrypted key or a key that does not match the certificate stops the start with
a :class:`~coldbridge_server.errors.ConfigError` naming the setting and the file. Rotating a
certificate takes a restart.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from coldbridge_server.errors import ConfigError

__all__ = ["server_credentials"]

_CERT_MARK = b"-----BEGIN CERTIFICATE-----"


class _EncryptedKey(Exception):
    pass


def _no_password() -> str:
    raise _EncryptedKey


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(setting, f"cannot read {path} ({exc.strerror})") from None


def _check_certificates(setting: str, path: str, data: bytes) -> None:
    """``data`` holds PEM certificates only, and OpenSSL parses them."""
    if _CERT_MARK not in data:
        raise ConfigError(setting, f"{path} is not a PEM certificate (no {_CERT_MARK.decode()})")
    try:
        ssl.create_default_context(cadata=data.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(setting, f"{path}: bad PEM certificate ({exc})") from None


def _check_key(cert_path: str, key_path: str, key: bytes) -> None:
    """The key is an unencrypted PEM private key that matches the certificate."""
    if b"ENCRYPTED" in key:
        raise ConfigError("tls_key_file", f"{key_path}: encrypted private keys are not supported")
    if b"-----BEGIN" not in key or b"PRIVATE KEY-----" not in key:
        raise ConfigError("tls_key_file", f"{key_path} is not a PEM private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path, password=_no_password)
    except _EncryptedKey:
        raise ConfigError(
            "tls_key_file", f"{key_path}: encrypted private keys are not supported"
        ) from None
    except ssl.SSLError as exc:
        raise ConfigError(
            "tls_key_file", f"{key_path}: bad key, or not the key of {cert_path} ({exc})"
        ) from None


def server_credentials(
    cert_file: str, key_file: str, client_ca_file: str = ""
) -> grpc.ServerCredentials | None:
    """The gRPC server credentials of the TLS settings; ``None`` when TLS is off.

    Parameters
    ----------
    cert_file, key_file
        PEM certificate chain and its unencrypted private key (both empty: plaintext).
    client_ca_file
        PEM CA certificates of the clients; when given, client certificates are required.

    Raises
    ------
    ConfigError
        If a file is missing or unreadable, is not PEM, or the key does not match.
    """
    if not cert_file:
        return None
    cert, key = _read("tls_cert_file", cert_file), _read("tls_key_file", key_file)
    _check_certificates("tls_cert_file", cert_file, cert)
    _check_key(cert_file, key_file, key)
    client_ca = None
    if client_ca_file:
        client_ca = _read("tls_client_ca_file", client_ca_file)
        _check_certificates("tls_client_ca_file", client_ca_file, client_ca)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
