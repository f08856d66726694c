"""Server settings: one definition, read from flags, ``COLDBRIDGE_*`` variables and a TOML file.

Each field of the frozen :class:`Settings` dataclass is one setting: its name, type
(annotation), default and help (``dataclasses.field(metadata={"help": ...})``), in the style
of datasette's ``Setting(name, default, help)``. :data:`SETTINGS` views them as
:class:`Setting` objects, from which every spelling is generated: the ``coldbridge serve``
flag (``state_dir`` -> ``--state-dir``), the environment variable (``COLDBRIDGE_STATE_DIR``)
and the key of the optional TOML file (``state_dir = "var/state"``).

:func:`load_settings` merges the sources, flags > environment > file > default, and records
where each value came from (``coldbridge serve --print-config``). It and
:meth:`Settings.from_env` are the only readers of ``os.environ`` in the server; everything
else receives a :class:`Settings` (or plain arguments).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coldbridge_server.errors import ConfigError

__all__ = ["ENV_PREFIX", "SETTINGS", "ResolvedSettings", "Setting", "Settings", "load_settings"]

ENV_PREFIX = "COLDBRIDGE_"


def _setting(default: Any, help: str, *, aliases: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "aliases": aliases})


@dataclass(frozen=True)
class Settings:
    """Configuration of the gRPC server.

    Each field can be set by the flag ``--<field-name>`` of ``coldbridge serve``, the
    environment variable ``COLDBRIDGE_<FIELD NAME IN CAPS>`` (e.g. ``COLDBRIDGE_PORT=50051``)
    or the key ``<field_name>`` of a TOML file (``serve --config FILE``); see
    :func:`load_settings` and docs/configuration.md.

    Raises
    ------
    ConfigError
        If a value is out of range (checked on construction).

    Examples
    --------
    >>> Settings(port=0).max_k
    1000
    """

    bundle_path: str = _setting(
        "",
        "Bundle directory (containing manifest.json), or a directory of bundle versions, "
        "in which case the newest version is served.",
        aliases=("--bundle",),
    )
    host: str = _setting("0.0.0.0", "Interface to listen on ('[::]' for all IPv6+IPv4).")
    port: int = _setting(50051, "TCP port to listen on; 0 picks a free port.")
    max_k: int = _setting(1000, "Largest k accepted by Recommend (larger k -> INVALID_ARGUMENT).")
    max_request_ids: int = _setting(
        1000,
        "Largest number of ids accepted in any repeated id field of one request "
        "(exclude_item_ids, item_ids, source_item_ids).",
    )
    max_workers: int = _setting(
        8,
        "gRPC handler threads kept for unary calls; the pool has max_workers + max_streams "
        "threads, so open streams never take these.",
    )
    grace_seconds: float = _setting(
        5.0,
        "On SIGTERM/SIGINT, after the drain delay (drain_seconds): how long in-flight RPCs "
        "may run before they are cancelled.",
    )
    intra_op_threads: int = _setting(
        1, "onnxruntime intra-op threads per model session (0 lets onnxruntime decide)."
    )
    topk_batch_size: int = _setting(
        32,
        "Most concurrent Recommend calls merged into one top-k model run (dynamic batching, "
        "no added wait: a lone request runs at once); 1 disables batching.",
    )
    metrics_port: int = _setting(
        9464, "HTTP port of the Prometheus /metrics endpoint; 0 picks a free port, -1 disables it."
    )
    metrics_host: str = _setting(
        "127.0.0.1",
        "Interface the /metrics endpoint listens on (unauthenticated: loopback by default; "
        "'0.0.0.0' exposes it to the network).",
    )
    log_format: str = _setting(
        "text", "Log line format: 'text' or 'json' (one JSON object per line)."
    )
    log_level: str = _setting("INFO", "Root log level (DEBUG, INFO, WARNING, ERROR).")
    access_log: bool = _setting(
        False,
        "Log one line per finished RPC (method, code, duration, request id); costs "
        "tens of microseconds per call, so off by default (metrics count every RPC anyway).",
    )
    # --- online learning (coldbridge.v1.Events) ---
    state_dir: str = _setting(
        "var/state",
        "Directory of the durable event log and user-state snapshots (SQLite in WAL mode); "
        "created if missing. A restart on the same directory restores every acknowledged event.",
    )
    state_sync: str = _setting(
        "FULL",
        "SQLite 'synchronous' mode of the event log: FULL (an ack survives power loss) or "
        "NORMAL (an ack survives a process crash, the last batches may be lost on power loss).",
    )
    snapshot_every_events: int = _setting(
        50_000,
        "Persist the changed user states after this many applied events; a restart loads "
        "the snapshot and replays the event-log tail after it.",
    )
    warm_threshold: int = _setting(
        10,
        "Target-domain events after which a user is WARM: the online vector is served "
        "without the pull towards the bridge prior.",
    )
    max_batch_events: int = _setting(
        1000, "Most events in one EventBatch; a larger batch ends the stream with INVALID_ARGUMENT."
    )
    max_message_bytes: int = _setting(
        4 * 1024 * 1024,
        "Largest request message the server accepts (larger -> RESOURCE_EXHAUSTED, counted in "
        "grpc_server_handled_total; the transport itself refuses, uncounted, messages over twice "
        "this: grpc.max_receive_message_length).",
    )
    ingest_queue_size: int = _setting(
        16, "Batches waiting to be applied; when full, streams stop reading (gRPC flow control)."
    )
    online_learning_rate: float = _setting(
        0.1, "SGD learning rate of the online user-embedding updates."
    )
    online_l2: float = _setting(
        0.05, "L2 pull of a WARMING user's online vector towards their bridge (prior) vector."
    )
    online_negatives: int = _setting(
        0,
        "Uniformly sampled negative items per implicit target event (logistic loss); "
        "0 = positives only (best on the CDRIB data, see docs/streaming.md).",
    )
    prequential_k: int = _setting(
        10,
        "K of the prequential hit rate: was a target event's item in the user's top-K "
        "before learning from it.",
    )
    strategy: str = _setting(
        "",
        "Default transfer strategy for cold users (a strategy trained into the bundle, or the "
        "bundle's own); empty = the bundle's 'strategy'. A request may name another.",
    )
    strategy_weights: str = _setting(
        "",
        "Sticky A/B split of cold users over strategies, e.g. 'itemmap=0.5,emcdr=0.5' (by "
        "sha256 of the user id); empty = everyone gets the default.",
    )
    history_blend: bool = _setting(
        True,
        "Blend each user's transferred scores with the bundle's item-to-item scores of their "
        "streamed target events, weighted by their number of events (docs/streaming.md); "
        "off, or with a bundle without a history model, the transferred list alone is served.",
    )
    history_prepare_ahead: bool = _setting(
        False,
        "Prepare a user's blended list in a background thread as soon as their events are "
        "applied, instead of on their next request: faster Recommend for users who ask "
        "right after streaming, at the cost of ingest throughput (it competes with the "
        "event writer for the interpreter).",
    )
    prequential_sample_rate: float = _setting(
        0.1,
        "Fraction of target events evaluated prequentially, chosen deterministically by "
        "crc32(event_id) (1.0 = every event, 0 = none); the check scores all target items.",
    )
    # --- input limits (hostile clients) ---
    max_id_bytes: int = _setting(
        256,
        "Longest string accepted in any request field, in UTF-8 bytes: user, item and event "
        "ids, strategy names (longer -> INVALID_ARGUMENT naming the field). Must cover the "
        "longest item id of the served bundle.",
    )
    min_rating: float = _setting(
        0.0,
        "Smallest EVENT_KIND_RATING value accepted (smaller -> the event is rejected with "
        "REJECTION_REASON_INVALID_VALUE). Ratings are refused altogether by a bundle trained "
        "on implicit feedback.",
    )
    max_rating: float = _setting(10.0, "Largest EVENT_KIND_RATING value accepted (see min_rating).")

    # --- concurrency, start-up and shutdown ---
    max_streams: int = _setting(
        256,
        "Most streaming calls (StreamEvents, Health.Watch, reflection) open at once on the "
        "server; one more gets RESOURCE_EXHAUSTED naming this setting. Each open stream "
        "holds a thread of its own, beside the max_workers threads of unary calls.",
    )
    max_streams_per_client: int = _setting(
        64,
        "Most streaming calls open at once from one client address (the peer IP; behind a "
        "proxy, the proxy's); one more gets RESOURCE_EXHAUSTED naming this setting.",
    )
    drain_seconds: float = _setting(
        5.0,
        "On SIGTERM/SIGINT, how long the server keeps serving after health turns NOT_SERVING "
        "(so load balancers stop sending) before it refuses new calls; a second signal "
        "skips the rest of it.",
    )
    keepalive_seconds: float = _setting(
        60.0,
        "Idle time after which the server pings a client connection (grpc.keepalive_time_ms).",
    )
    keepalive_timeout_seconds: float = _setting(
        20.0,
        "How long the server waits for a keepalive ping's answer before it closes the "
        "connection (grpc.keepalive_timeout_ms).",
    )
    max_connection_age_seconds: float = _setting(
        0.0,
        "Close every client connection after this age (GOAWAY, grpc.max_connection_age_ms), "
        "so clients reconnect and spread over new replicas; 0 = never.",
    )
    max_connection_age_grace_seconds: float = _setting(
        30.0,
        "After max_connection_age_seconds, how long the calls of a closing connection may "
        "still run before they are cancelled (grpc.max_connection_age_grace_ms).",
    )

    # --- storage faults, erasure and retention ---
    state_max_bytes: int = _setting(
        0,
        "Size limit of the event database file in bytes (SQLite max_page_count); 0 = none. "
        "Reaching it acts like a full disk: ingest answers RESOURCE_EXHAUSTED and the Events "
        "health is NOT_SERVING until space is freed (retention, DeleteUser) or the limit raised.",
    )
    storage_retry_seconds: float = _setting(
        1.0,
        "During a storage fault (disk full, I/O error), how often the ingest writer retries "
        "the failed snapshot or probes the disk, to turn Events health SERVING again by itself.",
    )
    event_retention_seconds: float = _setting(
        0.0,
        "Delete logged events older than this once a snapshot covers them (0 = keep "
        "forever). Event ids are recognised as duplicates only while their event is kept. "
        "Store redis: the age is Redis's clock when it logged the event (its stream id).",
    )
    event_retention_events: int = _setting(
        0,
        "Keep at most about this many newest events in the log; older ones are deleted once "
        "a snapshot covers them (0 = no limit). Same idempotency caveat as the seconds. "
        "Store redis: per partition (each stream keeps this many; the log up to "
        "redis_partitions times as many).",
    )

    # --- hot reload ---
    bundle_watch_seconds: float = _setting(
        0.0,
        "Poll bundle_path every this many seconds and hot-reload a newer bundle version "
        "(docs/operations.md, 'Hot reload'); 0 = no watch (Admin/ReloadBundle still works).",
    )
    reload_drain_seconds: float = _setting(
        30.0,
        "After a hot reload, the replaced bundle's top-k batcher stays open this long for the "
        "requests that started on it, then is closed.",
    )

    # --- scale-out (Redis) ---
    store: str = _setting(
        "sqlite",
        "Where the event log, event ids and user-state snapshots live: 'sqlite' (state_dir, "
        "one server process) or 'redis' (redis_url, shared by any number of replicas that "
        "all serve every user; docs/scaling.md).",
    )
    redis_url: str = _setting(
        "redis://127.0.0.1:6379/0",
        "Redis of store = 'redis': redis://host:port/db (rediss:// for TLS, unix:// for a "
        "socket), or redis+cluster://host:port for a Redis Cluster (any one node).",
    )
    redis_partitions: int = _setting(
        16,
        "Partitions (Redis Streams) users are hashed to; the same on every replica and fixed "
        "once the keyspace holds data (a server with another count refuses to start).",
    )
    redis_wait_replicas: int = _setting(
        0,
        "Before acknowledging a batch, WAIT until this many Redis replicas have it (0 = the "
        "primary's append-only file only).",
    )
    redis_wait_timeout_seconds: float = _setting(
        1.0,
        "Longest WAIT; with fewer replicas by then the batch gets UNAVAILABLE (it is logged: "
        "a resend comes back as DUPLICATE_EVENT).",
    )
    redis_timeout_seconds: float = _setting(
        5.0, "Socket timeout of every Redis command (a hung Redis fails a batch after it)."
    )
    redis_follow_ms: int = _setting(
        20,
        "Longest block of a replica's XREAD on the log (single-node Redis; it returns as soon "
        "as another replica appends); with a Redis Cluster, the pause between two polls.",
    )
    replica_heartbeat_seconds: float = _setting(
        5.0,
        "Every this many seconds a replica records its bundle version in Redis; replicas "
        "silent for three heartbeats drop out of coldbridge_fleet_bundle_versions "
        "(docs/scaling.md, 'Rolling out a bundle').",
    )

    # --- security (TLS, tokens, exposure) ---
    tls_cert_file: str = _setting(
        "",
        "PEM certificate chain of the gRPC port; with tls_key_file the port serves TLS only "
        "(docs/security.md). Empty = plaintext.",
    )
    tls_key_file: str = _setting("", "PEM private key (unencrypted) of tls_cert_file.")
    tls_client_ca_file: str = _setting(
        "",
        "PEM CA bundle of client certificates; when set, every client must present a "
        "certificate signed by it (mutual TLS). Needs tls_cert_file.",
    )
    auth_tokens_file: str = _setting(
        "",
        "Bearer-token file, one 'name roles token' per line (roles: reader, writer, admin; "
        "docs/security.md); every call but health checks then needs 'authorization: Bearer "
        "<token>'. Empty = no authentication.",
    )
    reflection: bool = _setting(
        True,
        "Serve gRPC server reflection (grpcurl, Postman); with auth_tokens_file it needs a "
        "valid token of any role.",
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", f"must be in 0..65535, got {self.port}")
        if not -1 <= self.metrics_port <= 65535:
            raise ConfigError("metrics_port", f"must be in -1..65535, got {self.metrics_port}")
        _at_least(self, 1, "max_k", "max_request_ids", "max_workers", "topk_batch_size")
        if self.grace_seconds < 0:
            raise ConfigError("grace_seconds", f"must be >= 0, got {self.grace_seconds}")
        if self.intra_op_threads < 0:
            raise ConfigError("intra_op_threads", f"must be >= 0, got {self.intra_op_threads}")
        if not self.host:
            raise ConfigError("host", "must be non-empty")
        if self.log_format not in ("text", "json"):
            raise ConfigError("log_format", f"must be 'text' or 'json', got {self.log_format!r}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("log_level", f"unknown level {self.log_level!r}")
        _check_online(self)
        _check_reload(self)
        _check_security(self)
        _check_lifecycle(self)
        _check_storage(self)
        _check_input(self)
        _check_scaleout(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``COLDBRIDGE_*`` variables; unset ones keep their default.

        Parameters
        ----------
        environ
            Mapping to read instead of ``os.environ`` (for tests).

        Raises
        ------
        ConfigError
            If a variable cannot be parsed or its value is out of range.
        """
        return load_settings(environ=environ).settings

    @classmethod
    def describe(cls) -> Iterator[tuple[str, str, Any, str]]:
        """Yield ``(field, environment variable, default, help)`` for every setting."""
        for s in SETTINGS:
            yield s.name, s.env, s.default, s.help


def _at_least(s: Settings, low: int, *names: str) -> None:
    """Raise :class:`ConfigError` for the first of ``names`` whose value is not ``>= low``.

    NaN is not, so a float setting is refused as NaN too.
    """
    for name in names:
        value = getattr(s, name)
        if not value >= low:
            raise ConfigError(name, f"must be >= {low}, got {value}")


def _positive(s: Settings, *names: str) -> None:
    """Raise :class:`ConfigError` for the first of ``names`` whose value is not ``> 0``."""
    for name in names:
        value = getattr(s, name)
        if not value > 0:
            raise ConfigError(name, f"must be > 0, got {value}")


def _check_online(s: Settings) -> None:
    """Range checks of the online-learning settings."""
    if not s.state_dir:
        raise ConfigError("state_dir", "must be non-empty")
    if s.state_sync not in ("FULL", "NORMAL"):
        raise ConfigError("state_sync", f"must be 'FULL' or 'NORMAL', got {s.state_sync!r}")
    _at_least(
        s,
        1,
        "snapshot_every_events",
        "warm_threshold",
        "max_batch_events",
        "max_message_bytes",
        "ingest_queue_size",
        "prequential_k",
    )
    if not s.online_learning_rate > 0:
        raise ConfigError("online_learning_rate", f"must be > 0, got {s.online_learning_rate}")
    if s.online_l2 < 0 or s.online_negatives < 0:
        raise ConfigError("online_l2/online_negatives", "must be >= 0")
    if not 0 <= s.prequential_sample_rate <= 1:
        raise ConfigError(
            "prequential_sample_rate", f"must be in 0..1, got {s.prequential_sample_rate}"
        )


def _check_reload(s: Settings) -> None:
    """Range checks of the hot-reload settings."""
    _at_least(s, 0, "bundle_watch_seconds", "reload_drain_seconds")


def _check_security(s: Settings) -> None:
    """Consistency of the TLS settings (the files themselves are read by create_server)."""
    if bool(s.tls_cert_file) != bool(s.tls_key_file):
        raise ConfigError("tls_cert_file/tls_key_file", "set both or neither")
    if s.tls_client_ca_file and not s.tls_cert_file:
        raise ConfigError(
            "tls_client_ca_file", "mutual TLS needs TLS: set tls_cert_file and tls_key_file"
        )


def _check_lifecycle(s: Settings) -> None:
    """Range checks of the concurrency, start-up and shutdown settings."""
    _at_least(s, 1, "max_streams", "max_streams_per_client")
    _at_least(
        s, 0, "drain_seconds", "max_connection_age_seconds", "max_connection_age_grace_seconds"
    )
    _positive(s, "keepalive_seconds", "keepalive_timeout_seconds")


def _check_storage(s: Settings) -> None:
    """Range checks of the storage-fault, erasure and retention settings."""
    _at_least(s, 0, "state_max_bytes", "event_retention_events")
    _positive(s, "storage_retry_seconds")
    if not 0 <= s.event_retention_seconds < float("inf"):
        raise ConfigError(
            "event_retention_seconds", f"must be >= 0 and finite, got {s.event_retention_seconds}"
        )


def _check_input(s: Settings) -> None:
    """Range checks of the input limits."""
    _at_least(s, 1, "max_id_bytes")
    for name in ("min_rating", "max_rating"):
        if not math.isfinite(getattr(s, name)):
            raise ConfigError(name, f"must be finite, got {getattr(s, name)}")
    if s.min_rating > s.max_rating:
        raise ConfigError("min_rating", f"{s.min_rating} exceeds max_rating={s.max_rating}")


def _check_scaleout(s: Settings) -> None:
    """Range checks of the Redis store settings."""
    if s.store not in ("sqlite", "redis"):
        raise ConfigError("store", f"must be 'sqlite' or 'redis', got {s.store!r}")
    if not 1 <= s.redis_partitions <= 16384:
        raise ConfigError("redis_partitions", f"must be in 1..16384, got {s.redis_partitions}")
    _at_least(s, 0, "redis_wait_replicas")
    _at_least(s, 1, "redis_follow_ms")
    for name in (
        "redis_wait_timeout_seconds",
        "redis_timeout_seconds",
        "replica_heartbeat_seconds",
    ):
        if not 0 < getattr(s, name) < float("inf"):
            raise ConfigError(name, f"must be > 0, got {getattr(s, name)}")
    if s.store != "redis":
        return
    schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
    if not s.redis_url.startswith(schemes):
        raise ConfigError("redis_url", f"must start with one of {', '.join(schemes)}")


_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class Setting:
    """One server setting and its three spellings (flag, environment variable, TOML key).

    Parameters
    ----------
    name
        The :class:`Settings` field (and TOML key), e.g. ``"state_dir"``.
    type
        ``int``, ``float``, ``str`` or ``bool``.
    default
        Value when no source sets it.
    help
        One-paragraph description.
    aliases
        Extra flags (``--bundle`` for ``bundle_path``).
    """

    name: str
    type: type
    default: Any
    help: str
    aliases: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        """Environment variable, e.g. ``COLDBRIDGE_STATE_DIR``."""
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """Command-line flag, e.g. ``--state-dir``."""
        return "--" + self.name.replace("_", "-")

    def from_text(self, raw: str, source: str) -> Any:
        """Parse an environment variable's text; ``source`` names it in the error."""
        try:
            if self.type is bool:
                return _bool(raw)
            return self.type(raw.strip()) if self.type is not str else raw
        except ValueError:
            raise ConfigError(source, f"expected {self.type.__name__}, got {raw!r}") from None

    def from_toml(self, value: object, source: str) -> Any:
        """Check a TOML value's type (an int is accepted for a float setting)."""
        ok = isinstance(value, self.type) and (self.type is bool or not isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise ConfigError(source, f"expected {self.type.__name__}, got {value!r}")
        return value


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, _TYPES[str(f.type)], f.default, f.metadata["help"], f.metadata["aliases"])
    for f in dataclasses.fields(Settings)
)
"""Every server setting, in :class:`Settings` field order."""


@dataclass(frozen=True)
class ResolvedSettings:
    """The effective :class:`Settings` and, per setting, where its value came from.

    ``origins[name]`` is ``"flag --port"``, ``"env COLDBRIDGE_PORT"``, ``"file PATH"`` or
    ``"default"``.
    """

    settings: Settings
    origins: Mapping[str, str]

    def render(self) -> str:
        """The effective values as TOML (a valid ``--config`` file), each origin as a comment."""
        lines = []
        for s in SETTINGS:
            value = _toml_value(getattr(self.settings, s.name))
            lines.append(f"{s.name} = {value}  # {self.origins[s.name]}")
        return "\n".join(lines)


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | str | None = None,
) -> ResolvedSettings:
    """Merge flags > environment > TOML file > defaults into :class:`Settings`.

    Parameters
    ----------
    flags
        ``{setting name: value}`` given on the command line (already typed).
    environ
        Mapping to read instead of ``os.environ`` (for tests).
    config_file
        TOML file whose top-level keys are setting names; ``None`` reads none.

    Raises
    ------
    ConfigError
        On an unreadable or invalid file, an unknown key, a value of the wrong type or
        out of range (the error names the file, key or variable).
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins = {s.name: "default" for s in SETTINGS}
    if config_file is not None:
        for name, value in _read_toml(Path(config_file)).items():
            values[name], origins[name] = value, f"file {config_file}"
    for s in SETTINGS:
        if s.env in env:
            values[s.name], origins[s.name] = s.from_text(env[s.env], s.env), f"env {s.env}"
    by_name = {s.name: s for s in SETTINGS}
    for name, value in (flags or {}).items():
        values[name], origins[name] = value, f"flag {by_name[name].flag}"
    return ResolvedSettings(Settings(**values), origins)


def _read_toml(path: Path) -> dict[str, Any]:
    """Typed values of a settings file; unknown keys and wrong types raise :class:`ConfigError`."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"invalid TOML ({exc})") from None
    by_name = {s.name: s for s in SETTINGS}
    for key in data:
        if key not in by_name:
            close = difflib.get_close_matches(key, by_name, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see coldbridge serve --help"
            raise ConfigError(f"{path}: {key}", f"unknown setting{hint}")
    return {k: by_name[k].from_toml(v, f"{path}: {k}") for k, v in data.items()}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
