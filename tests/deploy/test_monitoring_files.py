"""deploy/prometheus, deploy/grafana, the k8s Prometheus config: promtool, scrapes, dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from coldbridge_server.observability.metrics import Metrics
from deploylib import DEFAULTS, DEPLOY, K8S, compose_file, container, k8s, run, tool
from prometheus_client import CollectorRegistry


def _k8s_prometheus_config(tmp_path: Path) -> Path:
    path = tmp_path / "prometheus.yml"
    path.write_text(k8s("ConfigMap", "coldbridge-prometheus")["data"]["prometheus.yml"])
    return path


def test_prometheus_configs_pass_promtool(tmp_path: Path) -> None:
    promtool = tool("promtool")
    for config in (DEPLOY / "prometheus" / "compose.yml", _k8s_prometheus_config(tmp_path)):
        result = run(promtool, "check", "config", config)
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_metrics_port_of_every_replica(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "prometheus" / "compose.yml").read_text())
    (job,) = compose["scrape_configs"]
    assert job["job_name"] == "coldbridge"  # the dashboard and the alerts select job="coldbridge"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["port"] == DEFAULTS.metrics_port and sd["names"] == ["server"]
    assert "server" in compose_file()["services"]
    (job,) = yaml.safe_load(_k8s_prometheus_config(tmp_path).read_text())["scrape_configs"]
    assert job["job_name"] == "coldbridge"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    (name,) = sd["names"]
    service = k8s("Service", name.split(".")[0])["spec"]
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
    assert (
        name.split(".")[1] == yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    )
    assert sd["port"] == service["ports"][0]["port"] == DEFAULTS.metrics_port
    pod, server = container("Deployment", "coldbridge")
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports[service["ports"][0]["targetPort"]] == DEFAULTS.metrics_port
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(DEFAULTS.metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"


def _series_names() -> set[str]:
    """Every series name the server exposes: a fresh registry, process collectors included."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def _promql_metrics(expr: str) -> set[str]:
    """The metric names of a PromQL expression (not its functions, labels or keywords)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\(?))", text)
    return {m.group(0) for m in found if not m.group(1) and m.group(0) not in _PROMQL_WORDS}


def test_promql_metric_extraction() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x", b=~"y|z"}[5m]))) / b'
    assert _promql_metrics(expr) == {"a_bucket", "b"}
    assert _promql_metrics('count(up{job="coldbridge"} == 1)') == {"up"}


def test_dashboard_queries_name_only_series_the_server_exposes() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "coldbridge.json").read_text())
    known = _series_names() | {"up"}  # `up`: Prometheus' own series per target
    assert "grpc_server_handled_total" in known and "coldbridge_bundle_info" in known
    used: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = _promql_metrics(target["expr"])
            assert names, f"panel {panel['title']!r}: no metric in {target['expr']!r}"
            assert names <= known, f"panel {panel['title']!r}: unknown {sorted(names - known)}"
            assert 'job="coldbridge"' in target["expr"], target["expr"]
            used |= names
    for wanted in ("grpc_server_handled_total", "coldbridge_ready", "coldbridge_bundle_info"):
        assert wanted in used


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "coldbridge.yaml").read_text())[
        "providers"
    ]
    grafana = compose_file()["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert Path(mounts["./grafana/coldbridge.json"]).parent == Path(provider["options"]["path"])
    assert "9090" in compose_file()["services"]["prometheus"]["ports"][0]
