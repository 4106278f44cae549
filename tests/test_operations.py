"""Operations: `postmortem up` killed with SIGKILL leaves no dev server behind and starts
again at once, on TEMPORAL_ADDRESS's port; readiness says whether Temporal answers; the
worker has a health endpoint and stops gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from config import Settings
from tests.conftest import ROUTING
from tests.scenario import until
from tests.test_restart import free_port
from worker import api_server, build_worker, health_endpoint, port_in_use

REPO = Path(__file__).resolve().parents[1]


def up_process(tmp: Path, grpc: int, ui: int, api: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{grpc}",
        "PM_DATA_DIR": str(tmp / "data"),
        "PM_TEAMS_FILE": str(tmp / "teams.toml"),
        "PM_TEMPORAL_UI_PORT": str(ui),
        "PM_API_PORT": str(api),
        "PM_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-c", "import cli; cli.main()", "up"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def running(process: subprocess.Popen[str]) -> str:
    """The output up to "Worker running" (read off the pipe in a thread)."""
    assert process.stdout is not None
    seen: list[str] = []

    def read() -> str:
        for line in process.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if "Worker running" in line:
                return "".join(seen)
        return "".join(seen)

    output = await asyncio.wait_for(asyncio.to_thread(read), timeout=90)
    assert "Worker running" in output, output
    return output


@pytest.mark.realclock
async def test_up_killed_with_sigkill_starts_again_at_once_on_its_address_port(tmp_path: Path):
    (tmp_path / "teams.toml").write_text(ROUTING)
    grpc, ui, api = free_port(), free_port(), free_port()
    first = up_process(tmp_path, grpc, ui, api)
    try:
        output = await running(first)
        # TEMPORAL_ADDRESS's port, not 7233: the CLI and `up` talk to the same server.
        assert f"Temporal dev server: 127.0.0.1:{grpc}" in output
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        # Its dev server dies with it (parent-death signal): the port frees itself.
        await until(lambda: asyncio.to_thread(port_in_use, "127.0.0.1", grpc), lambda u: not u)
    finally:
        if first.poll() is None:
            first.kill()
    second = up_process(tmp_path, grpc, ui, api)
    try:
        await running(second)  # not "port already in use"
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=60)
    assert not port_in_use("127.0.0.1", grpc)


def test_up_refuses_a_remote_temporal_address():
    from worker import local_port

    assert local_port("127.0.0.1:7444") == 7444 and local_port("localhost:7233") == 7233
    with pytest.raises(Exception, match="runs its own dev server"):
        local_port("temporal.example.com:7233")


async def test_readiness_follows_temporal(dev_env: WorkflowEnvironment, dev_settings: Settings):
    settings = dev_settings.model_copy(update={"api_port": free_port()})
    server = api_server(settings, dev_env.client)
    serving = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{settings.api_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            await until(lambda: ready(http), lambda r: r is not None)
            ok = await http.get("/readyz")
            assert ok.status_code == 200 and ok.json() == {"status": "ready"}
    finally:
        server.should_exit = True
        await serving
    # Against an address where nothing listens, the same API is not ready, and says why.
    down = await connect_lazily(f"127.0.0.1:{free_port()}")
    settings = settings.model_copy(update={"api_port": free_port()})
    server = api_server(settings, down)
    serving = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{settings.api_port}", timeout=10
        ) as http:
            answer = await until(lambda: ready(http), lambda r: r is not None)
            assert answer is not None and answer.status_code == 503
            assert answer.json()["reason"].startswith("Temporal unavailable")
            assert (await http.get("/healthz")).status_code == 200  # alive, not ready
    finally:
        server.should_exit = True
        await serving


async def ready(http: httpx.AsyncClient) -> httpx.Response | None:
    try:
        return await http.get("/readyz")
    except httpx.TransportError:
        return None


async def connect_lazily(address: str) -> Client:
    return await Client.connect(address, lazy=True, data_converter=pydantic_data_converter)


async def test_the_worker_health_endpoint(dev_env: WorkflowEnvironment, dev_settings: Settings):
    port = free_port()
    worker = build_worker(dev_env.client, dev_settings)
    async with (
        worker,
        health_endpoint(f"127.0.0.1:{port}", dev_env.client, worker),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        answer = await http.get("/healthz")
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
        assert (await http.get("/other")).status_code == 404
    assert worker.is_shutdown
    down = await connect_lazily(f"127.0.0.1:{free_port()}")
    worker = build_worker(dev_env.client, dev_settings)
    async with (
        worker,
        health_endpoint(f"127.0.0.1:{port}", down, worker),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        answer = await http.get("/healthz")
        assert answer.status_code == 503
        assert answer.json()["reason"].startswith("Temporal unavailable")


async def test_the_health_endpoint_survives_hostile_probes(
    dev_env: WorkflowEnvironment, dev_settings: Settings
):
    """A request line far over 8 KiB, a probe that never sends, many at once: each is closed,
    and the next honest probe is answered."""
    port = free_port()
    worker = build_worker(dev_env.client, dev_settings)
    async with worker, health_endpoint(f"127.0.0.1:{port}", dev_env.client, worker):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /" + b"a" * 100_000 + b" HTTP/1.0\r\n\r\n")
        await writer.drain()
        writer.close()
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        for _, w in idle:
            w.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            answer = await until(lambda: probe(http), lambda r: r is not None)
            assert answer is not None and answer.status_code == 200


async def probe(http: httpx.AsyncClient) -> httpx.Response | None:
    try:
        return await http.get("/healthz")
    except httpx.TransportError:
        return None


def test_an_api_key_never_travels_in_plain_text(monkeypatch: pytest.MonkeyPatch):
    from pydantic import SecretStr

    from config import ConfigError
    from engine import connect_config

    monkeypatch.setenv("TEMPORAL_TLS", "false")
    settings = Settings(
        temporal_address="example.com:7233", temporal_api_key=SecretStr("sekrit-4711")
    )
    with pytest.raises(ConfigError, match="TLS off") as refused:
        connect_config(settings)
    assert "sekrit-4711" not in str(refused.value)
    monkeypatch.delenv("TEMPORAL_TLS")
    assert connect_config(settings)["tls"] is True
