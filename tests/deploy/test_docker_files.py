"""deploy/docker: the Dockerfiles (hadolint; what they install, run, expose) and .dockerignore."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from deploylib import (
    DEFAULTS,
    DEPLOY,
    DOCKERFILES,
    ROOT,
    dockerfile_args,
    dockerfile_env,
    run,
    tool,
)


def test_dockerfiles_pass_hadolint() -> None:
    hadolint, config = tool("hadolint"), DEPLOY / "docker" / ".hadolint.yaml"
    assert [p.name for p in DOCKERFILES] == ["server.Dockerfile", "trainer.Dockerfile"]
    result = run(hadolint, "--config", config, *DOCKERFILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_config_fails_an_unpinned_install(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim-bookworm\nRUN pip install flask\n")
    result = run(tool("hadolint"), "--config", DEPLOY / "docker" / ".hadolint.yaml", bad)
    assert result.returncode != 0 and "DL3013" in result.stdout, result.stdout


def test_server_image_has_no_torch_runs_as_non_root_and_checks_health() -> None:
    server = DEPLOY / "docker" / "server.Dockerfile"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert not any(dep.startswith("torch") for dep in extras["server"])
    installs = [a for a in dockerfile_args(server, "RUN") if "pip install" in a]
    assert installs and all('".[server]"' in a and "torch" not in a for a in installs), installs
    assert all(a.startswith("python:3.11-slim") for a in dockerfile_args(server, "FROM"))
    user = dockerfile_args(server, "USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0
    exposed = {int(p) for a in dockerfile_args(server, "EXPOSE") for p in a.split()}
    assert exposed == {DEFAULTS.port, DEFAULTS.metrics_port}
    volumes = set(json.loads(dockerfile_args(server, "VOLUME")[-1]))
    env = dockerfile_env(server)
    assert {env["COLDBRIDGE_BUNDLE_PATH"], env["COLDBRIDGE_STATE_DIR"]} == volumes
    (healthcheck,) = dockerfile_args(server, "HEALTHCHECK")
    script = re.search(r'"(/\S+/healthcheck\.py)"', healthcheck)
    assert script, healthcheck
    copies = " ".join(dockerfile_args(server, "COPY"))
    assert f"deploy/docker/healthcheck.py {script.group(1)}" in copies
    assert dockerfile_args(server, "ENTRYPOINT") == ['["coldbridge", "serve"]']


def test_trainer_image_installs_the_pinned_cpu_torch() -> None:
    trainer = DEPLOY / "docker" / "trainer.Dockerfile"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (pin,) = [dep for dep in extras["trainer"] if dep.startswith("torch")]
    runs = dockerfile_args(trainer, "RUN")
    torch = [a for a in runs if "download.pytorch.org/whl/cpu" in a]
    assert torch and pin in torch[0].split(), (pin, torch)
    assert any('".[trainer]"' in a for a in runs)
    assert int(dockerfile_args(trainer, "USER")[-1].split(":")[0]) != 0
    assert dockerfile_args(trainer, "ENTRYPOINT") == ['["coldbridge", "train"]']


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
        for args in dockerfile_args(dockerfile, "COPY"):
            if args.startswith("--from"):
                continue
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not _ignored(source.rstrip("/"), patterns), f"{dockerfile.name}: {source}"
