"""The COLDBRIDGE_* settings every deploy file sets, and deploy/compose.yaml."""

from __future__ import annotations

import re

from coldbridge_server.config import SETTINGS, Settings
from deploylib import DEFAULTS, DEPLOY, ROOT, compose_file, dockerfile_env, k8s, option, settings_of

# --- COLDBRIDGE_* settings -----------------------------------------------------------------


def test_every_coldbridge_variable_in_deploy_is_a_real_setting() -> None:
    known = {s.env for s in SETTINGS}
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        used = set(re.findall(r"\bCOLDBRIDGE_[A-Z0-9_]+", path.read_text()))
        assert used <= known, f"{path.relative_to(ROOT)}: unknown settings {sorted(used - known)}"


def _check_container_settings(settings: Settings) -> None:
    assert (settings.port, settings.metrics_port) == (DEFAULTS.port, DEFAULTS.metrics_port)
    assert settings.metrics_host == "0.0.0.0", "Prometheus scrapes from another container"
    assert settings.host == "0.0.0.0"


def test_container_settings_parse_and_open_the_real_ports() -> None:
    image_env = dockerfile_env(DEPLOY / "docker" / "server.Dockerfile")
    compose_env = compose_file()["services"]["server"]["environment"]
    configmap = k8s("ConfigMap", "coldbridge-settings")["data"]
    for environ in (image_env, compose_env, configmap):
        _check_container_settings(settings_of(environ))


# --- compose -------------------------------------------------------------------------------


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_compose_runs_replicas_redis_prometheus_and_grafana() -> None:
    services = compose_file()["services"]
    assert {"server", "redis", "prometheus", "grafana", "trainer"} <= set(services)
    server = services["server"]
    assert server["deploy"]["replicas"] >= 2
    assert (ROOT / server["build"]["dockerfile"]).exists()
    assert (DEPLOY / server["build"]["context"]).resolve() == ROOT
    assert (ROOT / services["trainer"]["build"]["dockerfile"]).exists()
    assert "train" in services["trainer"]["profiles"]
    ports = server["ports"]
    assert [p.rsplit(":", 1)[1] for p in ports] == [str(DEFAULTS.port)]
    assert server["expose"] == [str(DEFAULTS.metrics_port)]
    assert "bundles:/bundles:ro" in server["volumes"]
    settings = settings_of(server["environment"])
    assert settings.bundle_path == "/bundles"
    assert _seconds(server["stop_grace_period"]) > settings.drain_seconds + settings.grace_seconds
    command = services["redis"]["command"]
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--appendfsync") == "always"


def test_compose_bind_mounts_exist() -> None:
    for name, service in compose_file()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
