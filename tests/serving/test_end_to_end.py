"""End to end through the command line: datagen -> train -> bundle -> `coldbridge serve`.

Everything is a real process: the trainer runs torch in its own process, the server
process (which must never import torch) serves the exported bundle on a loopback port,
and a gRPC client checks every kind of user, Score, health and reflection.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge.v1 import recommender_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(
        str(ROOT / d) for d in ("bundle", "cli", "client", "plugins", "protos", "server", "trainer")
    ),
    "PYTHONUNBUFFERED": "1",
    "COLDBRIDGE_METRICS_PORT": "0",
    "COLDBRIDGE_DRAIN_SECONDS": "0",
}
CLI = [sys.executable, "-m", "coldbridge_cli"]


def _cli(*args: str) -> str:
    result = subprocess.run([*CLI, *args], env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"coldbridge {args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("e2e")
    _cli("datagen", "--out", str(work / "data"), "--seed", "11")
    out = _cli(
        "train",
        "--data",
        str(work / "data"),
        "--out",
        str(work / "bundles"),
        "--epochs",
        "8",
        "--bridge-epochs",
        "20",
        "--no-progress",
    )
    assert "popularity" in out.lower()
    (bundle,) = (work / "bundles").iterdir()
    return bundle, json.loads((bundle / "manifest.json").read_text())


@pytest.fixture(scope="module")
def server(trained: tuple[Path, dict]) -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    bundle, _ = trained
    proc = subprocess.Popen(
        [
            *CLI,
            "serve",
            "--bundle",
            str(bundle.parent),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--demo",
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    address = None
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"on (127\.0\.0\.1:\d+)", line)
        if found:
            address = found.group(1)
        if "brand-new" in line.lower() or len(lines) > 400:
            break
    assert address, "server did not report its address:\n" + "".join(lines)
    drain = threading.Thread(
        target=lambda: [lines.append(line) for line in proc.stdout or ()], daemon=True
    )  # keep draining so the server never blocks on stdout
    drain.start()
    try:
        yield address, proc, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        drain.join(timeout=10)
        proc.stdout.close()


def test_every_kind_of_user_is_served(
    trained: tuple[Path, dict], server: tuple[str, subprocess.Popen[str], list[str]]
) -> None:
    _, manifest = trained
    address, _, _ = server
    target_users = set(manifest["users"]["target"])
    warm = manifest["users"]["target"][0]
    source_only = next(u for u in manifest["users"]["source"] if u not in target_users)
    history = manifest["items"]["source"][:5]
    with grpc.insecure_channel(address) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        cases = [
            (pb.RecommendRequest(user_id=warm, k=10), pb.PROVENANCE_WARM_TARGET),
            (pb.RecommendRequest(user_id=source_only, k=10), pb.PROVENANCE_TRANSFERRED),
            (
                pb.RecommendRequest(user_id="newcomer", k=10, source_item_ids=history),
                pb.PROVENANCE_TRANSFERRED,
            ),
            (pb.RecommendRequest(user_id="stranger", k=10), pb.PROVENANCE_FALLBACK),
        ]
        for request, provenance in cases:
            answer = stub.Recommend(request, timeout=10)
            assert answer.provenance == provenance, request.user_id
            assert answer.model_version == manifest["bundle_version"]
            assert len(answer.items) == 10
            scores = [i.score for i in answer.items]
            assert scores == sorted(scores, reverse=True)
            assert {i.item_id for i in answer.items} <= set(manifest["items"]["target"])
        top = stub.Recommend(pb.RecommendRequest(user_id=source_only, k=3), timeout=10)
        scored = stub.Score(
            pb.ScoreRequest(user_id=source_only, item_ids=[i.item_id for i in top.items] + ["nope"])
        )
        assert [i.item_id for i in scored.items] == [i.item_id for i in top.items]
        for a, b in zip(scored.items, top.items, strict=True):
            assert a.score == pytest.approx(b.score, rel=1e-4, abs=1e-4)
        assert list(scored.unknown_item_ids) == ["nope"]
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "coldbridge.v1.Recommender" in services


def test_demo_output_and_graceful_shutdown(
    server: tuple[str, subprocess.Popen[str], list[str]],
) -> None:
    _, proc, lines = server
    text = "".join(lines).lower()
    assert "warm" in text and "transferred" in text and "fallback" in text, text
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
