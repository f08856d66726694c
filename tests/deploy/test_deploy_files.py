"""deploy/: the Dockerfiles, compose file, Kubernetes manifests and monitoring configs.

No image can be built or pulled here, so these check what can be checked offline: hadolint
on the Dockerfiles, kubernetes-validate (bundled schemas, strict) on the manifests, promtool
on the Prometheus configs, and that every file names the server's REAL ports, health
services, ``COLDBRIDGE_*`` settings (parsed by the real :func:`load_settings`), metric
names and /metrics path.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from coldbridge_server.config import SETTINGS, Settings, load_settings
from coldbridge_server.observability.metrics import Metrics
from coldbridge_server.server import HEALTH_SERVICES, LIVENESS_SERVICE
from grpc_health.v1 import health
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
K8S = DEPLOY / "k8s"
DEFAULTS = Settings()
K8S_VERSIONS = ("1.30.0", "1.37.0")  # oldest and newest schemas we promise


def _tool(name: str) -> str:
    """A tool of the dev extra (next to this interpreter) or of the system (promtool)."""
    local = Path(sys.executable).parent / name
    path = str(local) if local.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: `pip install -e '.[dev]'` (or apt-get install prometheus)")
    return path


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s(kind: str, name: str) -> dict[str, Any]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _yaml_docs(path):
            if doc.get("kind") == kind and doc["metadata"].get("name") == name:
                return doc
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _args(dockerfile: Path, instruction: str) -> list[str]:
    return [a for i, a in _instructions(dockerfile) if i == instruction]


# --- Dockerfiles ---------------------------------------------------------------------------


def test_dockerfiles_pass_hadolint() -> None:
    hadolint, config = _tool("hadolint"), DEPLOY / "docker" / ".hadolint.yaml"
    assert [p.name for p in DOCKERFILES] == ["server.Dockerfile", "trainer.Dockerfile"]
    result = _run(hadolint, "--config", config, *DOCKERFILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_config_fails_an_unpinned_install(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim-bookworm\nRUN pip install flask\n")
    result = _run(_tool("hadolint"), "--config", DEPLOY / "docker" / ".hadolint.yaml", bad)
    assert result.returncode != 0 and "DL3013" in result.stdout, result.stdout


def test_server_image_has_no_torch_runs_as_non_root_and_checks_health() -> None:
    server = DEPLOY / "docker" / "server.Dockerfile"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert not any(dep.startswith("torch") for dep in extras["server"])
    installs = [a for a in _args(server, "RUN") if "pip install" in a]
    assert installs and all('".[server]"' in a and "torch" not in a for a in installs), installs
    assert all(a.startswith("python:3.11-slim") for a in _args(server, "FROM"))
    user = _args(server, "USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0
    exposed = {int(p) for a in _args(server, "EXPOSE") for p in a.split()}
    assert exposed == {DEFAULTS.port, DEFAULTS.metrics_port}
    volumes = set(json.loads(_args(server, "VOLUME")[-1]))
    env = _dockerfile_env(server)
    assert {env["COLDBRIDGE_BUNDLE_PATH"], env["COLDBRIDGE_STATE_DIR"]} == volumes
    (healthcheck,) = _args(server, "HEALTHCHECK")
    script = re.search(r'"(/\S+/healthcheck\.py)"', healthcheck)
    assert script, healthcheck
    copies = " ".join(_args(server, "COPY"))
    assert f"deploy/docker/healthcheck.py {script.group(1)}" in copies
    assert _args(server, "ENTRYPOINT") == ['["coldbridge", "serve"]']


def test_trainer_image_installs_the_pinned_cpu_torch() -> None:
    trainer = DEPLOY / "docker" / "trainer.Dockerfile"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (pin,) = [dep for dep in extras["trainer"] if dep.startswith("torch")]
    runs = _args(trainer, "RUN")
    torch = [a for a in runs if "download.pytorch.org/whl/cpu" in a]
    assert torch and pin in torch[0].split(), (pin, torch)
    assert any('".[trainer]"' in a for a in runs)
    assert int(_args(trainer, "USER")[-1].split(":")[0]) != 0
    assert _args(trainer, "ENTRYPOINT") == ['["coldbridge", "train"]']


def _dockerfile_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _args(dockerfile, "ENV"):
        env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, for the plain patterns .dockerignore uses: the last match wins."""
    ignored = False
    for pattern in patterns:
        negate, pattern = pattern.startswith("!"), pattern.lstrip("!")
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(f"{regex}(?:/.*)?", path):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_images_copy() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert _ignored(".git/config", patterns) and _ignored("tests/conftest.py", patterns)
    for dockerfile in DOCKERFILES:
        for args in _args(dockerfile, "COPY"):
            if args.startswith("--from"):
                continue
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not _ignored(source.rstrip("/"), patterns), f"{dockerfile.name}: {source}"


# --- COLDBRIDGE_* settings -----------------------------------------------------------------


def test_every_coldbridge_variable_in_deploy_is_a_real_setting() -> None:
    known = {s.env for s in SETTINGS}
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        used = set(re.findall(r"\bCOLDBRIDGE_[A-Z0-9_]+", path.read_text()))
        assert used <= known, f"{path.relative_to(ROOT)}: unknown settings {sorted(used - known)}"


def _settings_of(environ: dict[str, Any]) -> Settings:
    """The real parser over a deploy file's variables (types and ranges checked)."""
    return load_settings(environ={k: str(v) for k, v in environ.items()}).settings


def _check_container_settings(settings: Settings) -> None:
    assert (settings.port, settings.metrics_port) == (DEFAULTS.port, DEFAULTS.metrics_port)
    assert settings.metrics_host == "0.0.0.0", "Prometheus scrapes from another container"
    assert settings.host == "0.0.0.0"


def test_container_settings_parse_and_open_the_real_ports() -> None:
    dockerfile_env = _dockerfile_env(DEPLOY / "docker" / "server.Dockerfile")
    compose_env = _compose()["services"]["server"]["environment"]
    configmap = _k8s("ConfigMap", "coldbridge-settings")["data"]
    for environ in (dockerfile_env, compose_env, configmap):
        _check_container_settings(_settings_of(environ))


# --- compose -------------------------------------------------------------------------------


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_compose_runs_replicas_redis_prometheus_and_grafana() -> None:
    services = _compose()["services"]
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
    settings = _settings_of(server["environment"])
    assert settings.bundle_path == "/bundles"
    assert _seconds(server["stop_grace_period"]) > settings.drain_seconds + settings.grace_seconds
    command = services["redis"]["command"]
    assert _option(command, "--appendonly") == "yes"
    assert _option(command, "--appendfsync") == "always"


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"


# --- Kubernetes ----------------------------------------------------------------------------


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(version: str) -> None:
    result = _run(_tool("kubernetes-validate"), "--strict", "-k", version, *_manifests())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path) -> None:
    bad = tmp_path / "deployment.yaml"
    bad.write_text((K8S / "deployment.yaml").read_text().replace("periodSeconds:", "period:", 1))
    result = _run(_tool("kubernetes-validate"), "--strict", "-k", K8S_VERSIONS[0], bad)
    assert result.returncode != 0 and "period" in result.stdout + result.stderr


def test_kustomization_applies_every_manifest_but_the_trainer_job() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    expected = {p.name for p in _manifests()} - {"trainer-job.yaml"}
    assert sorted(kustomization["resources"]) == sorted(expected)


def _container(kind: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = _k8s(kind, name)["spec"]["template"]
    return pod, pod["spec"]["containers"][0]


def test_probes_ask_the_real_health_services_on_the_real_port() -> None:
    _, server = _container("Deployment", "coldbridge")
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
    pod, server = _container("Deployment", "coldbridge")
    settings = _settings_of(_k8s("ConfigMap", "coldbridge-settings")["data"])
    assert (
        pod["spec"]["terminationGracePeriodSeconds"]
        > settings.drain_seconds + settings.grace_seconds
    )
    ready = server["readinessProbe"]
    assert settings.drain_seconds >= ready["periodSeconds"] * ready["failureThreshold"]
    assert "lifecycle" not in server, "the drain replaces a preStop hook (deployment.yaml)"


def test_volumes_match_the_settings_and_run_as_non_root() -> None:
    pod, server = _container("Deployment", "coldbridge")
    settings = _settings_of(_k8s("ConfigMap", "coldbridge-settings")["data"])
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert mounts[settings.bundle_path].get("readOnly") is True
    assert settings.state_dir in mounts
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"requests", "limits"} <= set(server["resources"])


def test_services_select_the_pods_and_name_the_real_ports() -> None:
    pod, _ = _container("Deployment", "coldbridge")
    labels = pod["metadata"]["labels"]
    for name in ("coldbridge", "coldbridge-headless"):
        spec = _k8s("Service", name)["spec"]
        assert spec["selector"].items() <= labels.items()
        assert {"name": "grpc", "port": DEFAULTS.port}.items() <= spec["ports"][0].items()
    metrics = _k8s("Service", "coldbridge")["spec"]["ports"][1]
    assert (metrics["name"], metrics["port"]) == ("metrics", DEFAULTS.metrics_port)
    budget = _k8s("PodDisruptionBudget", "coldbridge")["spec"]["selector"]["matchLabels"]
    assert budget.items() <= labels.items()
    target = _k8s("HorizontalPodAutoscaler", "coldbridge")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "coldbridge")


def test_redis_statefulset_keeps_an_fsynced_append_only_file() -> None:
    _, redis = _container("StatefulSet", "redis")
    assert _option(redis["args"], "--appendonly") == "yes"
    assert _option(redis["args"], "--appendfsync") == "always"
    assert _k8s("StatefulSet", "redis")["spec"]["volumeClaimTemplates"]


# --- Prometheus and Grafana ----------------------------------------------------------------


def _k8s_prometheus_config(tmp_path: Path) -> Path:
    path = tmp_path / "prometheus.yml"
    path.write_text(_k8s("ConfigMap", "coldbridge-prometheus")["data"]["prometheus.yml"])
    return path


def test_prometheus_configs_pass_promtool(tmp_path: Path) -> None:
    promtool = _tool("promtool")
    for config in (DEPLOY / "prometheus" / "compose.yml", _k8s_prometheus_config(tmp_path)):
        result = _run(promtool, "check", "config", config)
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_metrics_port_of_every_replica(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "prometheus" / "compose.yml").read_text())
    (job,) = compose["scrape_configs"]
    assert job["job_name"] == "coldbridge"  # the dashboard and the alerts select job="coldbridge"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert sd["port"] == DEFAULTS.metrics_port and sd["names"] == ["server"]
    assert "server" in _compose()["services"]
    (job,) = yaml.safe_load(_k8s_prometheus_config(tmp_path).read_text())["scrape_configs"]
    assert job["job_name"] == "coldbridge"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    (name,) = sd["names"]
    service = _k8s("Service", name.split(".")[0])["spec"]
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
    assert (
        name.split(".")[1] == yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    )
    assert sd["port"] == service["ports"][0]["port"] == DEFAULTS.metrics_port
    pod, server = _container("Deployment", "coldbridge")
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
    grafana = _compose()["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert Path(mounts["./grafana/coldbridge.json"]).parent == Path(provider["options"]["path"])
    assert "9090" in _compose()["services"]["prometheus"]["ports"][0]
