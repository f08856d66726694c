"""Observability: metrics through a real Prometheus, promtool, request ids, JSON logs, docs."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from coldbridge.v1 import recommender_pb2 as pb
from coldbridge.v1 import recommender_pb2_grpc
from coldbridge_server import Settings, create_server
from coldbridge_server.app import ColdbridgeServer
from coldbridge_server.observability.logs import configure_logging
from coldbridge_server.observability.metrics import serve_metrics
from conftest import TinyBundle
from prometheus_client import CollectorRegistry, generate_latest

ROOT = Path(__file__).resolve().parents[2]
WARM, SOURCE_ONLY = "u0", "s1"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install the Debian package 'prometheus' (.ci/run does)")
    return path


@pytest.fixture()
def running(tiny_bundle: TinyBundle) -> Iterator[tuple[ColdbridgeServer, grpc.Channel]]:
    settings = Settings(
        bundle_path=str(tiny_bundle.path), host="127.0.0.1", port=0, access_log=True
    )
    server, port = create_server(settings)
    server.start()
    assert server.wait_until_ready(30)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, channel
    finally:
        channel.close()
        server.stop(None).wait()


def _traffic(channel: grpc.Channel, ok: int, invalid: int, scores: int) -> None:
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    for i in range(ok):
        stub.Recommend(pb.RecommendRequest(user_id=[WARM, SOURCE_ONLY, "nobody"][i % 3], k=3))
    for _ in range(invalid):
        with pytest.raises(grpc.RpcError) as err:
            stub.Recommend(pb.RecommendRequest(user_id=WARM, k=0))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    for _ in range(scores):
        stub.Score(pb.ScoreRequest(user_id=WARM, item_ids=["v1", "v2"]))


def _sample(server: ColdbridgeServer, name: str, **labels: str) -> float:
    value = server.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_handled_counts_equal_the_calls_made(
    running: tuple[ColdbridgeServer, grpc.Channel],
) -> None:
    server, channel = running
    _traffic(channel, ok=6, invalid=2, scores=3)
    base = {"grpc_service": "coldbridge.v1.Recommender", "grpc_type": "unary"}
    assert _sample(server, "grpc_server_started_total", grpc_method="Recommend", **base) == 8
    assert (
        _sample(
            server, "grpc_server_handled_total", grpc_method="Recommend", grpc_code="OK", **base
        )
        == 6
    )
    assert (
        _sample(
            server,
            "grpc_server_handled_total",
            grpc_method="Recommend",
            grpc_code="INVALID_ARGUMENT",
            **base,
        )
        == 2
    )
    assert _sample(server, "grpc_server_handling_seconds_count", grpc_method="Score", **base) == 3
    assert _sample(server, "coldbridge_fallbacks_total", reason="unknown_user") == 2
    assert _sample(server, "coldbridge_inference_seconds_count", model="target_topk") >= 4
    assert _sample(server, "coldbridge_ready") == 1
    assert _sample(server, "coldbridge_bundle_loads_total", result="ok") == 1


def test_two_servers_in_one_process_keep_separate_registries(tiny_bundle: TinyBundle) -> None:
    settings = Settings(bundle_path=str(tiny_bundle.path), host="127.0.0.1", port=0)
    first, _ = create_server(settings)
    second, _ = create_server(settings, registry=CollectorRegistry())
    assert first.metrics.registry is not second.metrics.registry


def test_request_id_is_echoed_and_logged_without_user_data(
    running: tuple[ColdbridgeServer, grpc.Channel],
) -> None:
    _, channel = running
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    stub = recommender_pb2_grpc.RecommenderStub(channel)
    _, call = stub.Recommend.with_call(
        pb.RecommendRequest(user_id="secret-user-42", k=2, source_item_ids=["g1", "g2"]),
        metadata=(("x-request-id", "req-abc-123"),),
    )
    assert ("x-request-id", "req-abc-123") in call.trailing_metadata()
    _, call = stub.Recommend.with_call(pb.RecommendRequest(user_id=WARM, k=2))
    generated = dict(call.trailing_metadata())["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", generated)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    access = [e for e in lines if e["logger"] == "coldbridge.access"]
    assert {e["request_id"] for e in access} >= {"req-abc-123", generated}
    assert all(e["grpc_code"] == "OK" and e["duration_ms"] >= 0 for e in access)
    assert "secret-user-42" not in out.getvalue() and "g1" not in out.getvalue()


def test_request_id_goes_back_only_when_used(tiny_bundle: TinyBundle) -> None:
    """Without the access log a successful call makes no id; a failed call returns one."""
    settings = Settings(bundle_path=str(tiny_bundle.path), host="127.0.0.1", port=0)
    server, port = create_server(settings)
    server.start()
    assert server.wait_until_ready(30)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = recommender_pb2_grpc.RecommenderStub(channel)
            _, call = stub.Recommend.with_call(pb.RecommendRequest(user_id=WARM, k=2))
            assert "x-request-id" not in dict(call.trailing_metadata() or ())
            with pytest.raises(grpc.RpcError) as err:
                stub.Recommend(
                    pb.RecommendRequest(user_id=WARM, k=0),
                    metadata=(("x-request-id", "req-failing-1"),),
                )
            assert ("x-request-id", "req-failing-1") in err.value.trailing_metadata()
            with pytest.raises(grpc.RpcError) as err:
                stub.Recommend(pb.RecommendRequest(user_id="", k=2))
            generated = dict(err.value.trailing_metadata())["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", generated)
    finally:
        server.stop(None).wait()


def test_promtool_accepts_the_exposition(running: tuple[ColdbridgeServer, grpc.Channel]) -> None:
    server, channel = running
    _traffic(channel, ok=3, invalid=1, scores=1)
    result = subprocess.run(
        [_tool("promtool"), "check", "metrics"],
        input=generate_latest(server.metrics.registry),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_deploy_rules_and_config_pass_promtool() -> None:
    promtool = _tool("promtool")
    for args in (
        ["check", "rules", "deploy/prometheus/alerts.yml"],
        ["check", "config", "deploy/prometheus/prometheus.yml"],
    ):
        result = subprocess.run(
            [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


def _registered_names(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        if family.name.startswith(("grpc_", "coldbridge_")):
            suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
            names.add(family.name + suffix)
    return names


def test_operations_doc_documents_every_registered_metric(tiny_bundle: TinyBundle) -> None:
    server, _ = create_server(Settings(bundle_path=str(tiny_bundle.path), host="127.0.0.1", port=0))
    operations = (ROOT / "docs" / "operations.md").read_text()
    section = operations.split("## Monitoring", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)`", section, flags=re.M))
    missing = _registered_names(server.metrics.registry) - documented
    assert not missing, f"metrics missing from docs/operations.md 'Monitoring': {sorted(missing)}"


def test_dashboard_and_alerts_use_only_registered_metrics(tiny_bundle: TinyBundle) -> None:
    server, _ = create_server(Settings(bundle_path=str(tiny_bundle.path), host="127.0.0.1", port=0))
    registered = _registered_names(server.metrics.registry)
    histograms = {n for n in registered if not n.endswith(("_total", "_info"))}
    known = registered | {f"{h}_{s}" for h in histograms for s in ("bucket", "sum", "count")}
    text = (ROOT / "deploy/grafana/coldbridge.json").read_text()
    text += (ROOT / "deploy/prometheus/alerts.yml").read_text()
    used = set(re.findall(r"\b((?:grpc_server|coldbridge)_[a-z_]+)\b", text))
    assert used, "no metric referenced"
    assert used <= known, f"unknown metrics referenced: {sorted(used - known)}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _value(base: str, promql: str) -> float | None:
    result = _query(base, promql)
    return float(result[0]["value"][1]) if result else None


def test_real_prometheus_scrapes_the_expected_series(
    running: tuple[ColdbridgeServer, grpc.Channel], tmp_path: Path
) -> None:
    server, channel = running
    http, metrics_port = serve_metrics(server.metrics, 0, "127.0.0.1")
    web = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: coldbridge\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    proc = subprocess.Popen(
        [
            _tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{web}"
    try:
        _traffic(channel, ok=7, invalid=3, scores=2)
        deadline = time.monotonic() + 90
        ok = 'grpc_server_handled_total{job="coldbridge",grpc_method="Recommend",grpc_code="OK"}'
        while time.monotonic() < deadline:
            try:
                if _value(base, ok) == 7:
                    break
            except OSError:
                pass  # Prometheus still starting
            time.sleep(0.5)
        assert _value(base, ok) == 7, "Prometheus never saw the 7 successful Recommend calls"
        assert (
            _value(
                base,
                'grpc_server_handled_total{grpc_method="Recommend",grpc_code="INVALID_ARGUMENT"}',
            )
            == 3
        )
        assert _value(base, 'sum(grpc_server_handled_total{grpc_method="Score"})') == 2
        assert _value(base, "sum(coldbridge_recommendations_total)") == 9
        assert _value(base, 'up{job="coldbridge"}') == 1
        info = _query(base, "coldbridge_bundle_info")
        assert info and info[0]["metric"]["version"] == server.engine.bundle.version
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        http.shutdown()
        http.server_close()
