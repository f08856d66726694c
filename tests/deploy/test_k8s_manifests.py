"""deploy/k8s: the manifests against the Kubernetes schemas, and what they name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from coldbridge_server.server import HEALTH_SERVICES, LIVENESS_SERVICE
from deploylib import DEFAULTS, K8S, container, k8s, option, run, settings_of, tool
from grpc_health.v1 import health

K8S_VERSIONS = ("1.30.0", "1.37.0")  # oldest and newest schemas we promise


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    result = run(tool("kubernetes-validate"), "--strict", "-k", version, *_manifests())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path) -> None:
    bad = tmp_path / "deployment.yaml"
    bad.write_text((K8S / "deployment.yaml").read_text().replace("periodSeconds:", "period:", 1))
    result = run(tool("kubernetes-validate"), "--strict", "-k", K8S_VERSIONS[0], bad)
    assert result.returncode != 0 and "period" in result.stdout + result.stderr


def test_kustomization_applies_every_manifest_but_the_trainer_job() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    expected = {p.name for p in _manifests()} - {"trainer-job.yaml"}
    assert sorted(kustomization["resources"]) == sorted(expected)


def test_probes_ask_the_real_health_services_on_the_real_port() -> None:
    _, server = container("Deployment", "coldbridge")
    startup, live, ready = (
        server[p]["grpc"] for p in ("startupProbe", "livenessProbe", "readinessProbe")
    )
    assert {startup["port"], live["port"], ready["port"]} == {DEFAULTS.port}
    assert startup["service"] == live["service"] == LIVENESS_SERVICE
    assert ready.get("service", "") == health.OVERALL_HEALTH
    assert ready.get("service", "") in HEALTH_SERVICES
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"grpc": DEFAULTS.port, "metrics": DEFAULTS.metrics_port}
    assert server["envFrom"] == [{"configMapRef": {"name": "coldbridge-settings"}}]


def test_termination_outlasts_the_drain_and_the_drain_outlasts_readiness() -> None:
    pod, server = container("Deployment", "coldbridge")
    settings = settings_of(k8s("ConfigMap", "coldbridge-settings")["data"])
    assert (
        pod["spec"]["terminationGracePeriodSeconds"]
        > settings.drain_seconds + settings.grace_seconds
    )
    ready = server["readinessProbe"]
    assert settings.drain_seconds >= ready["periodSeconds"] * ready["failureThreshold"]
    assert "lifecycle" not in server, "the drain replaces a preStop hook (deployment.yaml)"


def test_volumes_match_the_settings_and_run_as_non_root() -> None:
    pod, server = container("Deployment", "coldbridge")
    settings = settings_of(k8s("ConfigMap", "coldbridge-settings")["data"])
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts[settings.bundle_path].get("readOnly") is True
    assert settings.state_dir in mounts
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"requests", "limits"} <= set(server["resources"])


def test_services_select_the_pods_and_name_the_real_ports() -> None:
    pod, _ = container("Deployment", "coldbridge")
    labels = pod["metadata"]["labels"]
    for name in ("coldbridge", "coldbridge-headless"):
        spec = k8s("Service", name)["spec"]
        assert spec["selector"].items() <= labels.items()
        assert {"name": "grpc", "port": DEFAULTS.port}.items() <= spec["ports"][0].items()
    metrics = k8s("Service", "coldbridge")["spec"]["ports"][1]
    assert (metrics["name"], metrics["port"]) == ("metrics", DEFAULTS.metrics_port)
    budget = k8s("PodDisruptionBudget", "coldbridge")["spec"]["selector"]["matchLabels"]
    assert budget.items() <= labels.items()
    target = k8s("HorizontalPodAutoscaler", "coldbridge")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "coldbridge")


def test_redis_statefulset_keeps_an_fsynced_append_only_file() -> None:
    _, redis = container("StatefulSet", "redis")
    assert option(redis["args"], "--appendonly") == "yes"
    assert option(redis["args"], "--appendfsync") == "always"
    assert k8s("StatefulSet", "redis")["spec"]["volumeClaimTemplates"]
