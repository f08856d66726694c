"""Which bundle version each live replica serves: a heartbeat registry in Redis.

Every replica of a keyspace (``store = "redis"``) writes ``<redis time> <bundle version>``
under its own id in the hash ``cb:replicas`` every ``replica_heartbeat_seconds`` (and at once
when its served version changed, e.g. after a hot reload). The same Lua script drops the
entries older than three heartbeats (replicas that died without unregistering) and returns
how many live replicas serve each version. A replica that stops cleanly removes its entry.

Each replica exports that fleet view (``coldbridge_fleet_bundle_versions``,
``coldbridge_fleet_replicas{version}``), so a bundle roll-out's mixed-version window is visible
from any replica, whether or not Prometheus scrapes all of them (docs/scaling.md, "Rolling
out a bundle"). Times come from Redis' clock, so the replicas' clocks need not agree.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["BEAT", "FLEET_KEY", "FleetBeacon"]

logger = logging.getLogger(__name__)

FLEET_KEY = "cb:replicas"
"""Hash: replica id -> ``"<seconds> <bundle version>"`` of its last heartbeat (Redis time)."""

BEAT = """
-- KEYS: the fleet hash; ARGV: replica id, bundle version ('' = unregister), seconds a
-- heartbeat stays live. Returns {version, live replicas, ...} over the live entries.
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], string.format('%.3f', t) .. ' ' .. ARGV[2])
end
local counts, order = {}, {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local seen, version = string.match(all[i + 1], '^(%S+) (.*)$')
  if seen == nil or tonumber(seen) < t - tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    if counts[version] == nil then
      counts[version] = 0
      order[#order + 1] = version
    end
    counts[version] = counts[version] + 1
  end
end
local out = {}
for _, version in ipairs(order) do
  out[#out + 1] = version
  out[#out + 1] = counts[version]
end
return out
"""

_LIVE_BEATS = 3
"""A replica counts as live while its last heartbeat is younger than this many intervals."""
_TICK = 0.25
"""Longest pause between two checks of the served version (a change is announced then)."""


class FleetBeacon:
    """Announces this replica's bundle version in Redis and reads the fleet's.

    Parameters
    ----------
    connect
        Opens a redis-py client (single node or cluster) of the keyspace (at :meth:`start`).
    version
        Returns the bundle version this replica serves now.
    interval
        Seconds between two heartbeats.
    on_view
        Called with ``{version: live replicas}`` after every successful heartbeat.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        version: Callable[[], str],
        interval: float,
        on_view: Callable[[dict[str, int]], None],
    ) -> None:
        self._connect = connect
        self.client: Any = None
        self._beat: Any = None
        self.version = version
        self.interval = interval
        self.on_view = on_view
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, version: str | None = None) -> dict[str, int]:
        """Record a heartbeat (``version`` default: the served one); return the fleet view."""
        if self._beat is None:
            self.client = self._connect()
            self._beat = self.client.register_script(BEAT)
        served = self.version() if version is None else version
        ttl = _LIVE_BEATS * self.interval
        reply = self._beat(keys=[FLEET_KEY], args=[self.replica_id, served, ttl])
        view = {_text(v): int(n) for v, n in zip(reply[::2], reply[1::2], strict=True)}
        self.on_view(view)
        return view

    def start(self) -> None:
        """Beat in a daemon thread until :meth:`close` (errors are logged)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="coldbridge-fleet", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop beating and unregister (best effort: otherwise the entry expires)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.client is None:  # never connected: nothing registered
            return
        try:
            self._beat(keys=[FLEET_KEY], args=[self.replica_id, "", 1])
        except Exception as exc:  # Redis down at shutdown: the entry expires by itself
            logger.debug("fleet: unregistering failed: %s", exc)
        self.client.close()

    def _run(self) -> None:
        announced, last = "", 0.0
        while True:
            served = self.version()
            if served != announced or time.monotonic() - last >= self.interval:
                try:
                    self.beat(served)
                except Exception as exc:  # Redis down: the view goes stale, beats go on
                    logger.debug("fleet: heartbeat failed: %s", exc)
                else:
                    announced, last = served, time.monotonic()
            if self._stop.wait(min(self.interval, _TICK)):
                return


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
