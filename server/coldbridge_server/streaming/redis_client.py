"""The Redis client of the Redis store and its helpers: :func:`connect` (single node or
cluster, no retries) and :func:`translated` (Redis errors -> the server's storage errors).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from coldbridge_server.errors import StorageError, StorageFullError

__all__ = ["connect", "translated"]


def connect(url: str, timeout: float) -> redis.Redis | RedisCluster:
    """A client of ``url``; ``redis+cluster://`` (or ``rediss+cluster://``) is a Redis Cluster.

    Commands are not retried (a retried append could report its own events as
    duplicates): a failure is reported at once and the writer or follower tries again.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    for scheme in ("redis+cluster://", "rediss+cluster://"):
        if url.startswith(scheme):
            return RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
    return redis.Redis.from_url(url, **options)


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Redis errors -> :class:`StorageError` / :class:`StorageFullError` with the cause."""
    try:
        yield
    except redis.exceptions.ResponseError as exc:
        if str(exc).startswith("OOM"):
            raise StorageFullError(f"{what} failed: Redis out of memory ({exc})") from exc
        if str(exc).startswith(("LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN")):
            raise StorageError(f"{what} failed: Redis unavailable ({exc})") from exc
        raise
    except (redis.exceptions.RedisError, OSError) as exc:
        raise StorageError(f"{what} failed: Redis unavailable ({exc})") from exc
