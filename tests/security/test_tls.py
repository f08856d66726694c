"""TLS and mutual TLS through a real server: certificates made by a throw-away CA in tmp_path.

A TLS client works, a plaintext client and a client that does not trust the server's CA fail;
with ``tls_client_ca_file`` only a client presenting a certificate of that CA gets through.
Bad certificate settings stop ``create_server`` with a ConfigError naming the setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from coldbridge_client import Client, Tls, UnavailableError
from coldbridge_server import ConfigError, Settings, create_server, load_bundle
from conftest import TinyBundle
from cryptography.hazmat.primitives import serialization
from eventlib import started
from securitylib import Pki, make_pki

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_port(
    tiny_bundle: TinyBundle, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    state = tmp_path_factory.mktemp("tls-state")
    tls = {"tls_cert_file": str(pki.server.cert), "tls_key_file": str(pki.server.key)}
    with started(tiny_bundle.path, state, **tls) as (_, port, _registry):
        yield port


@pytest.fixture(scope="module")
def mtls_port(
    tiny_bundle: TinyBundle, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    state = tmp_path_factory.mktemp("mtls-state")
    with started(
        tiny_bundle.path,
        state,
        tls_cert_file=str(pki.server.cert),
        tls_key_file=str(pki.server.key),
        tls_client_ca_file=str(pki.ca.cert),
    ) as (_, port, _registry):
        yield port


def _model_version(port: int, host: str = "127.0.0.1", **client: object) -> str:
    with Client(f"{host}:{port}", retry=None, **client) as c:  # type: ignore[arg-type]
        return c.model_info(timeout=10).bundle_version


def test_tls_client_gets_answers(tls_port: int, pki: Pki, tiny_bundle: TinyBundle) -> None:
    tls = Tls.from_files(root_ca=pki.ca.cert)
    assert _model_version(tls_port, tls=tls) == tiny_bundle.version
    assert _model_version(tls_port, "localhost", tls=tls) == tiny_bundle.version


def test_plaintext_client_is_refused(tls_port: int) -> None:
    with pytest.raises(UnavailableError):
        _model_version(tls_port)


def test_client_that_does_not_trust_the_ca_is_refused(tls_port: int, pki: Pki) -> None:
    with pytest.raises(UnavailableError):
        _model_version(tls_port, tls=Tls.from_files(root_ca=pki.rogue_client.cert))


def test_mtls_with_a_client_certificate_of_the_ca_works(
    mtls_port: int, pki: Pki, tiny_bundle: TinyBundle
) -> None:
    tls = Tls.from_files(pki.ca.cert, pki.client.cert, pki.client.key)
    assert _model_version(mtls_port, tls=tls) == tiny_bundle.version


@pytest.mark.parametrize("who", ["no-client-cert", "rogue-ca-cert", "plaintext"])
def test_mtls_refuses_clients_without_a_certificate_of_the_ca(
    mtls_port: int, pki: Pki, who: str
) -> None:
    tls = {
        "no-client-cert": Tls.from_files(pki.ca.cert),
        "rogue-ca-cert": Tls.from_files(pki.ca.cert, pki.rogue_client.cert, pki.rogue_client.key),
        "plaintext": None,
    }[who]
    with pytest.raises(UnavailableError):
        _model_version(mtls_port, tls=tls)


def test_raw_grpc_channel_with_ssl_credentials_works(tls_port: int, pki: Pki) -> None:
    """Any gRPC client works: only the standard TLS credentials are needed."""
    from coldbridge.v1 import recommender_pb2, recommender_pb2_grpc

    creds = grpc.ssl_channel_credentials(pki.ca.cert_pem)
    with grpc.secure_channel(f"localhost:{tls_port}", creds) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        assert stub.GetModelInfo(recommender_pb2.GetModelInfoRequest(), timeout=10).bundle_version


def _encrypted_key(pki: Pki, out: Path) -> Path:
    key = serialization.load_pem_private_key(pki.server.key_pem, password=None)
    path = out / "encrypted-key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return path


def _bad_settings(pki: Pki, tmp: Path) -> dict[str, tuple[dict[str, str], str, str]]:
    (tmp / "garbage.pem").write_text("hello, not a certificate\n")
    body = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    (tmp / "broken.pem").write_text(body)
    cert, key = str(pki.server.cert), str(pki.server.key)
    missing = str(tmp / "missing.pem")
    return {
        # name: (settings, setting named in the error, message fragment)
        "missing-cert": (
            {"tls_cert_file": missing, "tls_key_file": key},
            "tls_cert_file",
            "cannot read",
        ),
        "missing-key": (
            {"tls_cert_file": cert, "tls_key_file": missing},
            "tls_key_file",
            "cannot read",
        ),
        "cert-not-pem": (
            {"tls_cert_file": str(tmp / "garbage.pem"), "tls_key_file": key},
            "tls_cert_file",
            "not a PEM certificate",
        ),
        "cert-bad-pem": (
            {"tls_cert_file": str(tmp / "broken.pem"), "tls_key_file": key},
            "tls_cert_file",
            "bad PEM certificate",
        ),
        "key-not-pem": (
            {"tls_cert_file": cert, "tls_key_file": str(tmp / "garbage.pem")},
            "tls_key_file",
            "not a PEM private key",
        ),
        "key-of-another-cert": (
            {"tls_cert_file": cert, "tls_key_file": str(pki.other_server.key)},
            "tls_key_file",
            "not the key of",
        ),
        "encrypted-key": (
            {"tls_cert_file": cert, "tls_key_file": str(_encrypted_key(pki, tmp))},
            "tls_key_file",
            "encrypted private keys are not supported",
        ),
        "missing-client-ca": (
            {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": missing},
            "tls_client_ca_file",
            "cannot read",
        ),
        "client-ca-not-pem": (
            {"tls_cert_file": cert, "tls_key_file": key, "tls_client_ca_file": str(pki.ca.key)},
            "tls_client_ca_file",
            "not a PEM certificate",
        ),
    }


BAD = [
    "missing-cert",
    "missing-key",
    "cert-not-pem",
    "cert-bad-pem",
    "key-not-pem",
    "key-of-another-cert",
    "encrypted-key",
    "missing-client-ca",
    "client-ca-not-pem",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_certificate_settings_stop_the_start(
    case: str, pki: Pki, tiny_bundle: TinyBundle, tmp_path: Path
) -> None:
    settings, setting, fragment = _bad_settings(pki, tmp_path)[case]
    config = Settings(host="127.0.0.1", port=0, state_dir=str(tmp_path / "s"), **settings)
    with pytest.raises(ConfigError, match=fragment) as info:
        create_server(config, bundle=load_bundle(tiny_bundle.path))
    assert info.value.setting == setting


@pytest.mark.parametrize(
    "settings",
    [
        {"tls_cert_file": "cert.pem"},
        {"tls_key_file": "key.pem"},
        {"tls_client_ca_file": "ca.pem"},
    ],
    ids=["cert-without-key", "key-without-cert", "client-ca-without-tls"],
)
def test_incomplete_tls_settings_are_refused(settings: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="tls"):
        Settings(**settings)
