"""Helpers of the tests/streaming/test_events_*.py suites: servers, events, log replay."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from coldbridge.v1 import events_pb2 as epb
from coldbridge.v1 import events_pb2_grpc, recommender_pb2_grpc
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge_server import Settings, create_server, load_bundle
from coldbridge_server.app import ColdbridgeServer
from prometheus_client import CollectorRegistry

SOURCE, TARGET = epb.DOMAIN_SOURCE, epb.DOMAIN_TARGET
IMPLICIT, RATING = epb.EVENT_KIND_IMPLICIT, epb.EVENT_KIND_RATING
ROOT = Path(__file__).resolve().parents[1]
StartProcess = Callable[..., tuple[subprocess.Popen[str], grpc.Channel]]


@dataclass
class Client:
    server: ColdbridgeServer
    channel: grpc.Channel
    events: events_pb2_grpc.EventsStub
    rec: recommender_pb2_grpc.RecommenderStub
    registry: CollectorRegistry

    def state(self, user: str) -> epb.UserState:
        return self.events.GetUserState(epb.GetUserStateRequest(user_id=user))

    def recommend(self, user: str, k: int = 10, **kw: Any) -> pb.RecommendResponse:
        return self.rec.Recommend(pb.RecommendRequest(user_id=user, k=k, **kw))

    def scores(self, user: str, n_items: int = 50) -> np.ndarray:
        items = [f"v{i}" for i in range(n_items)]
        reply = self.rec.Score(pb.ScoreRequest(user_id=user, item_ids=items))
        return np.array([i.score for i in reply.items])

    def stream(self, batches: Iterable[epb.EventBatch]) -> list[epb.EventAck]:
        return list(self.events.StreamEvents(iter(batches)))

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


@contextlib.contextmanager
def started(
    bundle_path: Path, state_dir: Path, **settings: Any
) -> Iterator[tuple[ColdbridgeServer, int, CollectorRegistry]]:
    """A real, warmed-up server on 127.0.0.1:0; yields (server, port, registry)."""
    registry = CollectorRegistry()
    config = Settings(
        host="127.0.0.1",
        port=0,
        state_dir=str(state_dir),
        metrics_port=-1,
        state_sync="NORMAL",
        **settings,
    )
    server, port = create_server(config, bundle=load_bundle(bundle_path), registry=registry)
    server.start()
    try:
        assert server.wait_until_ready(timeout=60)
        yield server, port, registry
    finally:
        server.stop(None).wait()


@contextlib.contextmanager
def serving(bundle_path: Path, state_dir: Path, **settings: Any) -> Iterator[Client]:
    """A real server on 127.0.0.1:0 with its state in ``state_dir``, and a client of it."""
    with (
        started(bundle_path, state_dir, **settings) as (server, port, registry),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        yield Client(
            server,
            channel,
            events_pb2_grpc.EventsStub(channel),
            recommender_pb2_grpc.RecommenderStub(channel),
            registry,
        )


@contextlib.contextmanager
def server_processes(bundle_path: Path, **defaults: str) -> Iterator[StartProcess]:
    """``start(state_dir, **settings)``: the real server (``python -m coldbridge_server``)
    as a subprocess on 127.0.0.1:0, and a channel to it once it serves.

    ``defaults`` and ``settings`` are ``COLDBRIDGE_<NAME>`` values (``snapshot_every_events="97"``);
    every process still running at the end is killed.
    """
    processes: list[subprocess.Popen[str]] = []

    def start(state_dir: Path, **settings: str) -> tuple[subprocess.Popen[str], grpc.Channel]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COLDBRIDGE_")}
        env.update(
            PYTHONPATH=os.pathsep.join(
                str(ROOT / p) for p in ("bundle", "server", "plugins", "protos")
            ),
            COLDBRIDGE_BUNDLE_PATH=str(bundle_path),
            COLDBRIDGE_STATE_DIR=str(state_dir),
            COLDBRIDGE_HOST="127.0.0.1",
            COLDBRIDGE_PORT="0",
            COLDBRIDGE_METRICS_PORT="-1",
            **{f"COLDBRIDGE_{k.upper()}": v for k, v in {**defaults, **settings}.items()},
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "coldbridge_server"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        for line in process.stdout:
            if "serving on" in line:
                return process, grpc.insecure_channel(line.rsplit(" ", 1)[1].strip())
        raise AssertionError(f"server exited with {process.wait()}")

    try:
        yield start
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


def event(
    eid: Any, user: str, item: str, domain: int = TARGET, kind: int = IMPLICIT, value: float = 0.0
) -> epb.Event:
    return epb.Event(
        event_id=str(eid), user_id=user, item_id=item, domain=domain, kind=kind, value=value
    )


def batch(sequence: int, *events: epb.Event) -> epb.EventBatch:
    return epb.EventBatch(sequence=sequence, events=events)


def replayed_vectors(
    bundle_path: Path, state_dir: Path, tmp: Path, **settings: Any
) -> dict[str, np.ndarray | None]:
    """Serial replay of the whole event log of ``state_dir`` (a copy without its snapshot).

    Returns the served vector of every user in the log.
    """
    copy = tmp / "replay-state"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    shutil.copy(state_dir / "coldbridge.sqlite3", copy / "coldbridge.sqlite3")
    for suffix in ("-wal", "-shm"):
        wal = state_dir / f"coldbridge.sqlite3{suffix}"
        if wal.exists():
            shutil.copy(wal, copy / wal.name)
    import sqlite3

    with contextlib.closing(sqlite3.connect(copy / "coldbridge.sqlite3")) as db:
        db.execute("DELETE FROM meta")
        db.execute("DELETE FROM user_state")
        db.commit()
    registry = CollectorRegistry()
    config = Settings(port=0, state_dir=str(copy), metrics_port=-1, **settings)
    server, _ = create_server(config, bundle=load_bundle(bundle_path), registry=registry)
    ingestor = server.ingestor
    assert ingestor is not None
    ingestor.recover()
    vectors = {s.user_id: s.vector for s in ingestor.updater.states}
    server.stop(None).wait()
    return vectors
