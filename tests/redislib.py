"""Helpers of the Redis store tests: real redis-server processes on loopback ports, server
processes with ``COLDBRIDGE_STORE=redis``, and a serial replay of the Redis log.

``redis-server`` and ``redis-cli`` (Redis 7, Debian package ``redis-server``) must be on the
PATH; ``.ci/run`` installs them. A test that needs them fails (never skips) without them.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis
from coldbridge_plugins import get_plugin_manager, load_strategies
from coldbridge_server import Settings, load_bundle
from coldbridge_server.app import build_engine
from coldbridge_server.core import UserStates
from coldbridge_server.streaming.online import ColdStartEmbeddings
from coldbridge_server.streaming.redis_codec import decode_entry, keys
from coldbridge_server.streaming.update import OnlineUpdater
from coldbridge_server.streaming.validate import Event, validate
from river import optim

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free loopback port below 40000 whose +10000 (a cluster node's bus port) is free."""
    while True:
        port = random.randrange(20000, 40000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not found: apt-get install redis-server (see .ci/run)")
    return path


@dataclass
class RedisServer:
    """One redis-server process on ``127.0.0.1:port`` with its files in ``dir``."""

    dir: Path
    port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10)

    def start(self) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.dir), "--save", "", "--appendonly", "yes"]
        command += ["--appendfsync", "always", *self.args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client().ping():
                    return self
            except redis.exceptions.BusyLoadingError:
                pass
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    raise AssertionError(f"redis-server exited with {code}") from None
            if time.monotonic() > deadline:
                raise AssertionError("redis-server did not answer within 30 s")
            time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: nothing is flushed beyond what appendfsync already did."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@contextmanager
def redis_server(tmp: Path, *args: str) -> Iterator[RedisServer]:
    server = RedisServer(tmp / "redis", args=args).start()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def redis_cluster(tmp: Path, masters: int = 3) -> Iterator[list[RedisServer]]:
    """A Redis Cluster of ``masters`` primaries (no replicas) on loopback ports."""
    nodes = [
        RedisServer(
            tmp / f"cluster{n}",
            args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
        )
        for n in range(masters)
    ]
    try:
        for node in nodes:
            node.start()
        create = [_binary("redis-cli"), "--cluster", "create"]
        create += [f"127.0.0.1:{node.port}" for node in nodes]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while not all(_cluster_ok(node) for node in nodes):
            if time.monotonic() > deadline:
                raise AssertionError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        yield nodes
    finally:
        for node in nodes:
            node.kill()


def _cluster_ok(node: RedisServer) -> bool:
    info = node.client().execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
    return bool(info.get("cluster_state") == "ok")


@dataclass
class ServerProcess:
    """A ``python -m coldbridge_server`` process and a channel to it."""

    process: subprocess.Popen[str]
    channel: grpc.Channel
    address: str

    def kill(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def server_processes(
    bundle: Path, tmp: Path, count: int, **settings: str
) -> Iterator[list[ServerProcess]]:
    """``count`` server processes on free ports, each with its own state dir."""
    started: list[ServerProcess] = []
    try:
        for n in range(count):
            started.append(start_server(bundle, tmp / f"state{n}", **settings))
        yield started
    finally:
        for server in started:
            server.kill()


def start_server(bundle: Path, state_dir: Path, **settings: str) -> ServerProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDBRIDGE_")}
    env.update(
        PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("server", "plugins", "protos")),
        COLDBRIDGE_BUNDLE_PATH=str(bundle),
        COLDBRIDGE_STATE_DIR=str(state_dir),
        COLDBRIDGE_HOST="127.0.0.1",
        COLDBRIDGE_PORT="0",
        COLDBRIDGE_METRICS_PORT="-1",
        COLDBRIDGE_GRACE_SECONDS="1",
        COLDBRIDGE_DRAIN_SECONDS="0",
    )
    env.update({f"COLDBRIDGE_{k.upper()}": v for k, v in settings.items()})  # may override
    process = subprocess.Popen(
        [sys.executable, "-m", "coldbridge_server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "serving on" in line:
            address = line.rsplit(" ", 1)[1].strip()
            return ServerProcess(process, grpc.insecure_channel(address), address)
    raise AssertionError(f"server exited with {process.wait()}")


def log_events(client: Any, partitions: int) -> list[list[Event | str]]:
    """Every partition's stream, in stream order (events, or erased user ids)."""
    streams = []
    for p in range(partitions):
        rows = client.xrange(keys(p)[0], "-", "+")
        streams.append([decode_entry(fields) for _, fields in rows])
    return streams


def serial_replay(
    bundle_path: Path, streams: list[list[Event | str]], **settings: Any
) -> UserStates:
    """The states an in-process OnlineUpdater reaches applying the streams one event at a
    time, partition after partition (a user's state depends only on their own order)."""
    config = Settings(bundle_path=str(bundle_path), **settings)
    bundle = load_bundle(bundle_path)
    states = UserStates()
    engine = build_engine(config, bundle, load_strategies(get_plugin_manager()), None, states)
    learner = ColdStartEmbeddings(
        bundle.target_item_embeddings,
        bundle.target_item_bias,
        optimizer=optim.SGD(config.online_learning_rate),
        l2=config.online_l2,
        n_negatives=config.online_negatives,
        release_after=config.warm_threshold,
        seed=0,
    )
    updater = OnlineUpdater(
        bundle, engine.resolver, states, learner, warm_threshold=config.warm_threshold
    )
    for stream in streams:
        for entry in stream:
            if isinstance(entry, str):
                updater.forget(entry)
            elif validate(entry, bundle) is None:
                updater.apply(entry, entry.timestamp, evaluate=False)
    return states


def vector(state: Any) -> np.ndarray:
    """The served vector of a GetUserState reply (empty when it has none)."""
    return np.array(state.vector, dtype=np.float32)
