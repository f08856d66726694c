"""Helpers of the deploy/ tests: paths, the container defaults, and parsers of the files.

No image can be built or pulled here, so tests/deploy checks what can be checked offline:
hadolint on the Dockerfiles (test_docker_files.py), the compose file and the settings every
file sets (test_compose_and_settings.py), kubernetes-validate (bundled schemas, strict) on
the manifests (test_k8s_manifests.py), promtool on the Prometheus configs and the dashboard's
series (test_monitoring_files.py); every file must name the server's REAL ports, health
services, ``COLDBRIDGE_*`` settings (parsed by the real :func:`load_settings`), metric names
and /metrics path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from coldbridge_server.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
K8S = DEPLOY / "k8s"
DEFAULTS = Settings()


def tool(name: str) -> str:
    """A tool of the dev extra (next to this interpreter) or of the system (promtool)."""
    local = Path(sys.executable).parent / name
    path = str(local) if local.exists() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: `pip install -e '.[dev]'` (or apt-get install prometheus)")
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s(kind: str, name: str) -> dict[str, Any]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_docs(path):
            if doc.get("kind") == kind and doc["metadata"].get("name") == name:
                return doc
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


def compose_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def dockerfile_args(dockerfile: Path, instruction: str) -> list[str]:
    return [a for i, a in instructions(dockerfile) if i == instruction]


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in dockerfile_args(dockerfile, "ENV"):
        env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def settings_of(environ: dict[str, Any]) -> Settings:
    """The real parser over a deploy file's variables (types and ranges checked)."""
    return load_settings(environ={k: str(v) for k, v in environ.items()}).settings


def container(kind: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = k8s(kind, name)["spec"]["template"]
    return pod, pod["spec"]["containers"][0]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]
