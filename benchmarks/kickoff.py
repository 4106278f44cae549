"""Kickoff throughput: signed incident webhooks through the API, against direct starts.

    .venv/bin/python benchmarks/kickoff.py [--count 2000] [--clients 50]

One dev server (SQLite file, WAL) and the API as its own process (`postmortem api`). No worker
runs: both sides measure starting post-mortems, not working on them.
- webhooks: N signed `POST /webhooks/generic` from C concurrent keep-alive connections
  (requests built and signed before the clock starts; a light raw HTTP/1.1 client, since
  httpx cost most of a core and competed with what it measured); then exactly N
  post-mortems must exist; then a second pass of the same deliveries must start none;
- baseline: N `start_workflow` calls (the same start the API makes) from C concurrent tasks.
Prints requests/s, p50 and p99 of both, and the ratios (goal: >= 0.8 of the throughput, p99 no
more than 20 ms above the baseline's). PM_BENCH_HISTOGRAM=1 also prints the slowest requests.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

import engine
from benchmarks.devserver import start_dev_server
from domain.messages import PostmortemInput
from domain.models import Incident, Severity

SECRET = "bench-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def timed(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def client() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies


async def raw_pass(port: int, requests: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Pre-built requests over `clients` keep-alive connections, parsed minimally: the load
    generator must cost little next to what it measures (httpx used most of a core)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                request = queue.get_nowait()
                started = time.perf_counter()
                writer.write(request)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if status.split()[1] not in (b"200", b"201"):
                    raise RuntimeError(f"unexpected answer: {status!r}")
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(clients)))
    return time.perf_counter() - began, latencies


def describe(name: str, count: int, seconds: float, latencies: list[float]) -> tuple[float, float]:
    rate = count / seconds
    cuts = statistics.quantiles(latencies, n=100)
    p50, p99 = cuts[49] * 1000, cuts[98] * 1000
    print(
        f"{name:9}: {rate:7.1f} req/s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   ({seconds:.1f} s)"
    )
    if os.environ.get("PM_BENCH_HISTOGRAM"):
        slow = sorted(latencies)[-15:]
        print("           slowest (ms):", " ".join(f"{x * 1000:.0f}" for x in slow))
    return rate, p99


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="pm-kickoff-"))
    tag = uuid.uuid4().hex[:6]
    team, base_team = f"hooks-{tag}", f"base-{tag}"
    (folder / "teams.toml").write_text(
        f'[teams.{team}]\nmanager = "m@example.com"\n'
        f'[teams.{base_team}]\nmanager = "m@example.com"\n'
    )
    env = await start_dev_server(folder / "temporal.sqlite3")
    client = env.client
    port = free_port()
    api = subprocess.Popen(
        [str(Path(sys.executable).parent / "postmortem"), "api"],
        env={
            **os.environ,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "PM_TEAMS_FILE": str(folder / "teams.toml"),
            "PM_DATA_DIR": str(folder / "data"),
            "PM_API_PORT": str(port),
            "PM_WEBHOOK_SECRET_GENERIC": SECRET,
            "PM_LOG_LEVEL": "WARNING",
        },
    )
    url = f"http://127.0.0.1:{port}/webhooks/generic"
    resolved = datetime.now(UTC).isoformat()
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=args.clients)) as http:
            for _ in range(300):
                try:
                    await http.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)

            def body(i: int) -> bytes:
                return json.dumps(
                    {
                        "incident_id": f"K{tag}-{i}",
                        "title": "Bench",
                        "severity": "SEV2",
                        "team": team,
                        "resolved_at": resolved,
                    }
                ).encode()

            def raw_request(i: int) -> bytes:
                data = body(i)
                signature = hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
                head = (
                    f"POST /webhooks/generic HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    "Content-Type: application/json\r\n"
                    f"X-Signature-256: sha256={signature}\r\nX-Delivery-Id: d{tag}-{i}\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                )
                return head.encode() + data

            async def post(i: int) -> None:
                raw = body(i)
                signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
                response = await http.post(
                    url,
                    content=raw,
                    headers={
                        "content-type": "application/json",
                        "x-signature-256": f"sha256={signature}",
                        "x-delivery-id": f"d{tag}-{i}",
                    },
                )
                if response.status_code not in (200, 201):
                    raise RuntimeError(f"{response.status_code}: {response.text}")

            async def start(i: int) -> None:
                incident = Incident(
                    source="generic",
                    id=f"B{tag}-{i}",
                    title="Bench",
                    severity=Severity.SEV2,
                    team=base_team,
                    resolved_at=datetime.fromisoformat(resolved),
                )
                await engine.start_postmortem(
                    client, "postmortem", PostmortemInput(incident=incident)
                )

            # Warm-up: every client's connection, the API's first-use costs.
            await timed(args.clients, args.clients, lambda i: post(args.count + i))
            requests = [raw_request(i) for i in range(args.count)]  # signed before the clock
            hook_s, hook_lat = await raw_pass(port, requests, args.clients)
            base_s, base_lat = await timed(args.count, args.clients, start)

            async def count(of_team: str) -> int:
                query = f"WorkflowType = 'PostmortemWorkflow' AND PostmortemTeam = '{of_team}'"
                return (await client.count_workflows(query)).count

            await asyncio.sleep(1.5)  # visibility settles
            created = await count(team)
            dup_s, _ = await raw_pass(port, requests, args.clients)  # the same deliveries again
            await asyncio.sleep(1.5)
            after = await count(team)
        print(
            f"dev server: SQLite file, WAL; {args.count} starts, {args.clients} concurrent clients"
        )
        hook_rate, hook_p99 = describe("webhooks", args.count, hook_s, hook_lat)
        base_rate, base_p99 = describe("baseline", args.count, base_s, base_lat)
        print(
            f"throughput ratio {hook_rate / base_rate:.2f} (goal >= 0.80); "
            f"p99 difference {hook_p99 - base_p99:+.1f} ms (goal <= +20 ms)"
        )
        print(
            f"post-mortems started by webhooks: {created - args.clients} of {args.count} "
            f"(+{args.clients} warm-up); "
            f"after a duplicate pass ({dup_s:.1f} s): {after - args.clients}"
        )
    finally:
        api.terminate()
        api.wait(10)
        await env.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)
