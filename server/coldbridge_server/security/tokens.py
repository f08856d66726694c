"""Bearer tokens: the token file, and a constant-time lookup that never reveals a token.

The file (``auth_tokens_file``) has one token per line, three fields separated by blanks::

    # name      roles          token
    recs-web    reader         4f0c2a9e1b7d4e55a3c8f6b2d9e07a1c
    etl         writer         Zr7pQ2...
    ops         admin          ...
    dashboard   reader,writer  ...

``name`` is what logs show instead of the token; ``roles`` is a comma-separated subset of
``reader``, ``writer``, ``admin``; a token has at least 16 printable ASCII characters without
blanks (``openssl rand -hex 32`` makes a good one). Blank lines and lines starting with ``#``
are skipped.

Errors name the file and the line, never the token. The table keeps only SHA-256 digests, and
:meth:`TokenTable.lookup` compares the digest of a presented token with every entry through
:func:`hmac.compare_digest`, without stopping at a match.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from coldbridge_server.errors import ConfigError
from coldbridge_server.security.policy import ROLES

__all__ = ["MIN_TOKEN_LENGTH", "TokenEntry", "TokenTable", "load_tokens"]

logger = logging.getLogger(__name__)
MIN_TOKEN_LENGTH = 16
_SETTING = "auth_tokens_file"


@dataclass(frozen=True)
class TokenEntry:
    """One token of the file: its ``name``, ``roles`` and the SHA-256 ``digest`` of the token."""

    name: str
    roles: frozenset[str]
    digest: bytes


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class TokenTable:
    """The known tokens, looked up in constant time.

    Examples
    --------
    >>> table = TokenTable.parse(["ops admin 0123456789abcdef0123"], source="example")
    >>> table.lookup("0123456789abcdef0123").name, table.lookup("nope") is None
    ('ops', True)
    """

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self.entries = tuple(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, token: str) -> TokenEntry | None:
        """The entry of ``token``, or ``None``; every entry is compared, match or not."""
        digest = _digest(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        return found

    @classmethod
    def parse(cls, lines: Iterable[str], *, source: str) -> TokenTable:
        """Parse the lines of a token file; ``source`` names it in errors.

        Raises
        ------
        ConfigError
            On a malformed line, an unknown role, a short or duplicate token, a duplicate
            name, or no token at all. The message names the line, never the token.
        """
        entries: list[TokenEntry] = []
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                entries.append(_parse_line(line, f"{source}: line {number}", entries))
        if not entries:
            raise ConfigError(_SETTING, f"{source}: no token in the file")
        return cls(entries)


def _parse_line(line: str, where: str, seen: list[TokenEntry]) -> TokenEntry:
    fields = line.split()
    if len(fields) != 3:
        raise ConfigError(
            _SETTING, f"{where}: expected 'name roles token', got {len(fields)} fields"
        )
    name, role_text, token = fields
    roles = frozenset(role_text.split(","))
    if not roles <= ROLES:
        raise ConfigError(
            _SETTING, f"{where}: unknown role(s) {sorted(roles - ROLES)}; known: {sorted(ROLES)}"
        )
    if len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
        raise ConfigError(
            _SETTING,
            f"{where}: the token of {name!r} must be at least {MIN_TOKEN_LENGTH} printable "
            "ASCII characters",
        )
    entry = TokenEntry(name, roles, _digest(token))
    if any(e.name == name for e in seen):
        raise ConfigError(_SETTING, f"{where}: duplicate name {name!r}")
    if any(hmac.compare_digest(e.digest, entry.digest) for e in seen):
        raise ConfigError(_SETTING, f"{where}: the token of {name!r} is used twice")
    return entry


def load_tokens(path: str | Path) -> TokenTable:
    """Read and check the token file at ``path`` (at start-up).

    A file that others may write is refused; one that group or others may read is served
    with a WARNING (``chmod 600`` it).

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, world-writable or invalid (see
        :meth:`TokenTable.parse`).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(_SETTING, f"cannot read {path} ({reason})") from None
    if mode & stat.S_IWOTH:
        raise ConfigError(_SETTING, f"{path} is world-writable; chmod 600 it")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logger.warning(
            "token file %s is readable by group or others (mode %o); chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    table = TokenTable.parse(text.splitlines(), source=str(path))
    logger.info("loaded %d tokens from %s: %s", len(table), path, [e.name for e in table.entries])
    return table
