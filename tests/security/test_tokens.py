"""The token file and the role table: format errors that never show the token, permissions,
lookup, and a row for every coldbridge.v1 method."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from coldbridge.v1 import events_pb2, recommender_pb2
from coldbridge_server import ConfigError
from coldbridge_server.security import TokenTable, allowed, load_tokens, required_role
from coldbridge_server.security.policy import METHOD_ROLES
from securitylib import write_tokens

SECRET = "s3cret-0123456789abcdef"


def test_a_valid_file_is_loaded(tmp_path: Path) -> None:
    path = write_tokens(
        tmp_path / "tokens",
        ["# name roles token", "", f"ops admin {SECRET}", "etl reader,writer etl#0123456789abcdef"],
    )
    table = load_tokens(path)
    ops, etl = table.lookup(SECRET), table.lookup("etl#0123456789abcdef")
    assert ops is not None and ops.name == "ops" and ops.roles == {"admin"}
    assert etl is not None and etl.roles == {"reader", "writer"}
    for wrong in ("", SECRET[:-1], SECRET + "x", SECRET.upper()):
        assert table.lookup(wrong) is None


BAD_LINES = {
    "two-fields": ([f"ops {SECRET}"], "line 1: expected 'name roles token', got 2 fields"),
    "four-fields": ([f"ops admin {SECRET} extra"], "got 4 fields"),
    "unknown-role": ([f"ops root {SECRET}"], "unknown role(s) ['root']"),
    "short-token": (["ops admin short-secret"], "at least 16 printable ASCII"),
    "non-ascii-token": (["ops admin sécret-0123456789abcdef"], "printable ASCII"),
    "duplicate-token": ([f"a admin {SECRET}", f"b reader {SECRET}"], "line 2: the token of 'b'"),
    "duplicate-name": ([f"a admin {SECRET}", "a reader other-0123456789abcdef"], "duplicate name"),
    "empty": (["# only a comment"], "no token in the file"),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_a_bad_file_is_refused_without_showing_the_token(tmp_path: Path, case: str) -> None:
    lines, message = BAD_LINES[case]
    path = write_tokens(tmp_path / "tokens", lines)
    with pytest.raises(ConfigError) as info:
        load_tokens(path)
    assert info.value.setting == "auth_tokens_file"
    assert message in str(info.value) and str(path) in str(info.value)
    for token in ("short-secret", SECRET, "sécret-0123456789abcdef"):
        assert token not in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read .*missing"):
        load_tokens(tmp_path / "missing")


def test_a_world_writable_file_is_refused(tmp_path: Path) -> None:
    path = write_tokens(tmp_path / "tokens", [f"ops admin {SECRET}"], mode=0o666)
    with pytest.raises(ConfigError, match="world-writable"):
        load_tokens(path)


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_a_readable_file_is_served_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path = write_tokens(tmp_path / "tokens", [f"ops admin {SECRET}"], mode=mode)
    with caplog.at_level(logging.INFO):
        assert len(load_tokens(path)) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"token file {path} is readable by group or others (mode {mode:o}); chmod 600 it"
    ]
    assert SECRET not in caplog.text and "['ops']" in caplog.text


def test_a_private_file_loads_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_tokens(tmp_path / "tokens", [f"ops admin {SECRET}"], mode=0o600)
    load_tokens(path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_lookup_checks_every_entry_and_finds_any_position() -> None:
    lines = [f"n{i} reader tok-{i:04d}-0123456789abcdef" for i in range(50)]
    table = TokenTable.parse(lines, source="test")
    for i in (0, 25, 49):
        entry = table.lookup(f"tok-{i:04d}-0123456789abcdef")
        assert entry is not None and entry.name == f"n{i}"
    assert all(len(e.digest) == 32 for e in table.entries)  # only digests are kept
    assert not any(hasattr(e, "token") for e in table.entries)


def _proto_methods() -> list[str]:
    return [
        f"/{service.full_name}/{method.name}"
        for module in (recommender_pb2, events_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


@pytest.mark.parametrize("method", _proto_methods())
def test_every_coldbridge_method_has_a_role(method: str) -> None:
    """A new RPC must get a row in security/policy.py (an Admin service needs admin anyway)."""
    assert method in METHOD_ROLES or method.startswith("/coldbridge.v1.Admin/"), method


@pytest.mark.parametrize(
    "method",
    [
        "/coldbridge.v1.Events/DeleteUser",
        "/coldbridge.v1.Admin/ReloadBundle",
        "/coldbridge.v1.Recommender/SomethingNew",
        "/other.Service/Method",
    ],
)
def test_admin_and_unknown_methods_are_for_admins_only(method: str) -> None:
    assert required_role(method) == "admin"
    assert allowed({"admin"}, method)
    assert not allowed({"reader", "writer"}, method)


def test_health_is_open_and_reflection_needs_any_role() -> None:
    assert required_role("/grpc.health.v1.Health/Check") == ""
    reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    assert required_role(reflection) == "*" and allowed({"writer"}, reflection)
