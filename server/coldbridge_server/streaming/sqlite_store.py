"""The first :class:`~coldbridge_server.streaming.store.EventStore`: one SQLite database, WAL.

Layout of ``<state_dir>/coldbridge.sqlite3``::

    events(seq PRIMARY KEY, event_id UNIQUE, user_id, item_id, domain, kind, value,
           event_time, received_at)            the append-only log; seq = apply order
    user_state(user_id PRIMARY KEY, counters JSON, prior BLOB, delta BLOB)
    meta(key PRIMARY KEY, value)               snapshot_seq, bundle_version, log_end

Durability: :meth:`SqliteEventStore.append` writes a whole batch in one transaction and returns
after ``COMMIT``. With ``synchronous=FULL`` (default) SQLite fsyncs the WAL on every commit, so
an acknowledged batch survives a process kill *and* a power loss; ``NORMAL`` in WAL mode
survives a process kill (``kill -9``) but a power loss may roll back the last commits. The
snapshot (``user_state`` plus ``snapshot_seq``) is written in its own transaction, every
``snapshot_every_events`` events; a restart loads it and replays the log after
``snapshot_seq``. A snapshot belongs to one bundle version: with another bundle the whole log
is replayed.

Storage faults: a full disk (``SQLITE_FULL``, ``ENOSPC``, or the ``max_bytes`` limit, which is
SQLite's ``max_page_count``) raises :class:`~coldbridge_server.errors.StorageFullError`, other
I/O errors :class:`~coldbridge_server.errors.StorageError`, both naming the real cause; the
failed transaction is rolled back (unless SQLite already did). :meth:`delete_user` (erasure)
and :meth:`compact` (retention) delete events; ``log_end`` keeps the last position, so
positions are never reused. ``secure_delete`` is on: deleted rows are overwritten.

The store is used by the ingest writer thread only (and by start-up recovery before that
thread starts). ``<state_dir>/lock`` holds a POSIX lock so that two server processes never
share one state directory.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from coldbridge_server.core import UserState
from coldbridge_server.errors import ConfigError, StorageError, StorageFullError
from coldbridge_server.streaming.sqlite_codec import decode_state, encode_state, event_row
from coldbridge_server.streaming.store import EventStore
from coldbridge_server.streaming.validate import Domain, Event, Kind

__all__ = ["DATABASE", "SqliteEventStore", "storage_error"]

logger = logging.getLogger(__name__)
DATABASE = "coldbridge.sqlite3"
_SQLITE_FULL = 13
# IOERR, CANTOPEN, READONLY, CORRUPT, NOTADB, BUSY, LOCKED, NOMEM, PROTOCOL
_SQLITE_IO = frozenset((10, 14, 8, 11, 26, 5, 6, 7, 15))
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
    item_id TEXT NOT NULL, domain TEXT NOT NULL, kind TEXT NOT NULL, value REAL NOT NULL,
    event_time REAL NOT NULL, received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS user_state (
    user_id TEXT PRIMARY KEY, counters TEXT NOT NULL, prior BLOB, delta BLOB);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteEventStore(EventStore):
    """The event log and snapshots in ``state_dir`` (created if missing), locked by this process.

    Parameters
    ----------
    state_dir
        Directory of the database.
    synchronous
        SQLite ``synchronous`` mode, ``"FULL"`` or ``"NORMAL"`` (see the module docs).

    Raises
    ------
    ConfigError
        If the directory cannot be created or opened, or another process uses it.
    """

    def __init__(
        self, state_dir: Path | str, *, synchronous: str = "FULL", max_bytes: int = 0
    ) -> None:
        self.path = Path(state_dir) / DATABASE
        self._lock = _lock(Path(state_dir))
        self._max_bytes: int | None = max_bytes  # applied by the next transaction
        db: sqlite3.Connection | None = None
        try:
            self._db = db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA secure_delete=ON")  # erased rows leave no bytes behind
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM events").fetchone()
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            if db is not None:  # e.g. not a database, or a read-only directory
                db.close()
            self._lock.close()
            raise ConfigError("state_dir", f"cannot open {self.path}: {exc}") from exc
        # deletions and compaction may remove the last events: positions are never reused
        ends = (int(row[0]), int(meta.get("log_end", 0)), int(meta.get("snapshot_seq", 0)))
        self._last_seq, self._count = max(ends), int(row[1])

    @property
    def max_bytes(self) -> int:
        """Size limit of the database file in bytes (0 = none; a full limit = a full disk)."""
        return int(self._max_bytes or 0)

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._max_bytes = value  # PRAGMA max_page_count, set by the next transaction

    @property
    def last_seq(self) -> int:
        """The log position of the last logged event (0 for an empty log)."""
        return self._last_seq

    @property
    def count(self) -> int:
        """The number of logged events."""
        return self._count

    def append(self, events: Sequence[Event], received_at: float) -> int:
        """Append ``events`` in one committed transaction; return the last log position.

        Raises
        ------
        StorageFullError, StorageError
            On a full disk (or ``max_bytes``) or another I/O error; nothing is logged.
        sqlite3.Error
            If an event breaks a constraint (a logged ``event_id``); nothing is logged.
        """
        rows = [
            event_row(seq, event, received_at)
            for seq, event in enumerate(events, self._last_seq + 1)
        ]
        with self._transaction("append"):
            self._db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", rows)
        self._last_seq += len(rows)
        self._count += len(rows)
        return self._last_seq

    def delete_user(self, user_id: str) -> list[str]:
        """Delete the events and the snapshot state of ``user_id`` in one transaction.

        Returns the deleted event ids. The rows are overwritten (``secure_delete``) and the
        WAL is checkpointed and truncated, so no copy of them stays in the files.
        """
        where = ("WHERE user_id = ?", (user_id,))
        with self._transaction("delete"):
            ids = self._delete_events(*where)
            self._db.execute("DELETE FROM user_state WHERE user_id = ?", (user_id,))
        self._count -= len(ids)
        self._checkpoint()
        return ids

    def compact(self, through_seq: int, received_before: float) -> list[str]:
        """Delete the events up to position ``through_seq`` received before ``received_before``.

        Returns their event ids (they are no longer recognised as duplicates).
        """
        where = ("WHERE seq <= ? AND received_at < ?", (through_seq, received_before))
        with self._transaction("compact"):
            ids = self._delete_events(*where)
        self._count -= len(ids)
        return ids

    def probe(self, size: int = 65536) -> None:
        """Write and delete ``size`` bytes (two commits): raises while the disk is full."""
        with self._transaction("probe"):
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', zeroblob(?))", (size,))
        with self._transaction("probe"):
            self._db.execute("DELETE FROM meta WHERE key = 'probe'")

    def event_ids(self) -> Iterator[str]:
        """Every logged event id."""
        for (event_id,) in self._db.execute("SELECT event_id FROM events"):
            yield event_id

    def events_after(self, seq: int) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` of the log after position ``seq``, in log order."""
        query = (
            "SELECT seq, event_id, user_id, item_id, domain, kind, value, event_time "
            "FROM events WHERE seq > ? ORDER BY seq"
        )
        for row in self._db.execute(query, (seq,)):
            yield (
                row[0],
                Event(row[1], row[2], row[3], Domain(row[4]), Kind(row[5]), row[6], row[7]),
            )

    def received_after(self, seq: int) -> Iterator[tuple[int, Event, float]]:
        """``(seq, event, received_at)`` of the log after position ``seq``, in log order."""
        query = (
            "SELECT seq, event_id, user_id, item_id, domain, kind, value, event_time, "
            "received_at FROM events WHERE seq > ? ORDER BY seq"
        )
        for row in self._db.execute(query, (seq,)):
            event = Event(row[1], row[2], row[3], Domain(row[4]), Kind(row[5]), row[6], row[7])
            yield row[0], event, row[8]

    def snapshot_info(self) -> tuple[str, int]:
        """``(bundle_version, snapshot_seq)`` of the stored snapshot (``("", 0)`` if none)."""
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        return meta.get("bundle_version", ""), int(meta.get("snapshot_seq", 0))

    def load_states(self) -> Iterator[UserState]:
        """The user states of the stored snapshot."""
        for user_id, counters, prior, delta in self._db.execute("SELECT * FROM user_state"):
            yield decode_state(user_id, json.loads(counters), prior, delta)

    def write_snapshot(
        self, states: Iterable[UserState], seq: int, bundle_version: str, *, replace: bool = False
    ) -> None:
        """Upsert ``states`` and mark the snapshot as covering the log up to ``seq``.

        ``replace`` first drops every stored state (a snapshot of all users).
        """
        rows = [encode_state(s) for s in states]
        with self._transaction("snapshot"):
            if replace:
                self._db.execute("DELETE FROM user_state")
            self._db.executemany("INSERT OR REPLACE INTO user_state VALUES (?,?,?,?)", rows)
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?,?)",
                [("snapshot_seq", str(seq)), ("bundle_version", bundle_version)],
            )

    def close(self) -> None:
        """Close the database and release the directory lock."""
        try:
            self._db.close()
        finally:
            self._lock.close()

    def _delete_events(self, where: str, args: tuple[object, ...]) -> list[str]:
        """Delete the matching events (inside a transaction); return their ids."""
        ids = [r[0] for r in self._db.execute(f"SELECT event_id FROM events {where}", args)]
        if ids:
            self._db.execute(f"DELETE FROM events {where}", args)
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('log_end', ?)", (str(self._last_seq),)
            )
        return ids

    def _checkpoint(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # the deletion is committed; the WAL is emptied later
            logger.warning("WAL checkpoint after a deletion failed: %s", exc)

    def _transaction(self, what: str) -> _Transaction:
        if self._max_bytes is not None:
            pages = self._max_bytes // _page_size(self._db) if self._max_bytes else 2**32 - 2
            self._db.execute(f"PRAGMA max_page_count={max(pages, 1)}")
            self._max_bytes = None
        return _Transaction(self._db, self.path, what)


class _Transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``; a failure rolls back (if SQLite did not already)
    and storage faults become :class:`StorageError` with the real cause."""

    def __init__(self, db: sqlite3.Connection, path: Path, what: str) -> None:
        self._db, self._path, self._what = db, path, what

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise storage_error(exc, self._path, self._what) from exc

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error as commit_error:
                exc = commit_error
                self._rollback()
                raise storage_error(exc, self._path, self._what) from exc
        self._rollback()
        if isinstance(exc, (sqlite3.Error, OSError)):
            translated = storage_error(exc, self._path, self._what)
            if translated is not exc:
                raise translated from exc

    def _rollback(self) -> None:
        if self._db.in_transaction:  # SQLite rolls back by itself on SQLITE_FULL / IOERR
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("rollback after %s failed", self._what)


def storage_error(exc: BaseException, path: Path, what: str) -> BaseException:
    """:class:`StorageFullError` / :class:`StorageError` for a storage fault, else ``exc``."""
    code = getattr(exc, "sqlite_errorcode", None)
    if (
        isinstance(exc, OSError)
        and exc.errno == errno.ENOSPC
        or code is not None
        and (code & 0xFF == _SQLITE_FULL)
    ):
        return StorageFullError(f"{what} failed: disk full ({path}: {exc})")
    if isinstance(exc, OSError) or code is not None and code & 0xFF in _SQLITE_IO:
        return StorageError(f"{what} failed: I/O error ({path}: {exc})")
    return exc


def _page_size(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA page_size").fetchone()[0])


def _lock(state_dir: Path) -> IO[bytes]:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = (state_dir / "lock").open("ab")
    except OSError as exc:
        raise ConfigError("state_dir", f"cannot create {state_dir}: {exc}") from exc
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise ConfigError("state_dir", f"{state_dir} is used by another process") from exc
    return handle
