"""Temporal over TLS and mTLS, for real: the dev server behind Debian's nginx as a
TLS-terminating gRPC proxy, certificates made here. The worker, the API's client and the CLI
connect through `temporalio.envconfig` (TEMPORAL_TLS_* variables) with the right client
certificate, and are refused without it or with one from another authority. nginx is
installed by `make test` (as root with apt); without it these tests are skipped with the
reason, except in CI, where they fail."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.testing import WorkflowEnvironment

import engine
from config import Settings
from domain.messages import PostmortemInput
from tests import scenario
from tests.conftest import ROUTING
from tests.scenario import until
from tests.test_restart import free_port
from worker import build_worker, port_in_use
from workflows.postmortem import PostmortemWorkflow

REPO = Path(__file__).resolve().parents[1]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# The dev server runs on the machine's clock.
pytestmark = pytest.mark.realclock


def authority(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issued(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], name: str, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage(
                [
                    x509.ExtendedKeyUsageOID.SERVER_AUTH
                    if server
                    else x509.ExtendedKeyUsageOID.CLIENT_AUTH
                ]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def write(
    folder: Path, name: str, pair: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> None:
    key, cert = pair
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass(frozen=True)
class Proxy:
    mtls: str  # host:port requiring a client certificate
    tls: str  # host:port with server TLS only
    certs: Path


@pytest.fixture(scope="module")
def proxy(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    if not os.path.exists(NGINX):
        if os.environ.get("CI"):
            pytest.fail(
                "nginx is missing in CI: `make test` should have installed it", pytrace=False
            )
        pytest.skip("nginx is not installed (as root: apt-get install -y nginx); TLS tests skipped")
    folder = tmp_path_factory.mktemp("tls")
    ca = authority("postmortem test CA")
    write(folder, "ca", ca)
    write(folder, "server", issued(ca, "localhost", server=True))
    write(folder, "client", issued(ca, "postmortem-worker", server=False))
    write(folder, "stranger", issued(authority("another CA"), "intruder", server=False))
    upstream = dev_env.client.service_client.config.target_host
    mtls, tls = free_port(), free_port()
    (folder / "nginx.conf").write_text(
        f"""
user root;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    server {{
        listen 127.0.0.1:{mtls} ssl http2;
        ssl_certificate {folder}/server.pem;
        ssl_certificate_key {folder}/server.key;
        ssl_client_certificate {folder}/ca.pem;
        ssl_verify_client on;
        location / {{ grpc_pass grpc://{upstream}; }}
    }}
    server {{
        listen 127.0.0.1:{tls} ssl http2;
        ssl_certificate {folder}/server.pem;
        ssl_certificate_key {folder}/server.key;
        location / {{ grpc_pass grpc://{upstream}; }}
    }}
}}
"""
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not (port_in_use("127.0.0.1", mtls) and port_in_use("127.0.0.1", tls)):
        if process.poll() is not None or time.monotonic() > deadline:
            stderr = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"nginx did not start: {stderr}")
        time.sleep(0.05)
    yield Proxy(f"127.0.0.1:{mtls}", f"127.0.0.1:{tls}", folder)
    process.terminate()
    process.wait(timeout=10)


def tls_env(proxy: Proxy, address: str, client: str | None) -> dict[str, str]:
    env = {
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(proxy.certs / "ca.pem"),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
    }
    if client:
        env["TEMPORAL_TLS_CLIENT_CERT_PATH"] = str(proxy.certs / f"{client}.pem")
        env["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(proxy.certs / f"{client}.key")
    return env


def settings_for(tmp_path: Path) -> Settings:
    teams = tmp_path / "teams.toml"
    teams.write_text(ROUTING)
    # Nothing about Temporal is given here: it all comes from the TEMPORAL_* environment.
    return Settings(
        data_dir=tmp_path / "data", teams_file=teams, task_queue=f"tls-{time.time_ns()}"
    )


def cli(env: dict[str, str], settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    return subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", *args],
        cwd=REPO,
        env={
            **clean,
            **env,
            "PM_TEAMS_FILE": str(settings.teams_file),
            "PM_DATA_DIR": str(settings.data_dir),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_worker_and_the_cli_work_through_mtls(
    proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env = tls_env(proxy, proxy.mtls, "client")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = settings_for(tmp_path)
    client = await engine.connect(settings, worker=True)
    async with build_worker(client, settings):
        incident = scenario.incident(dt.datetime.now(dt.UTC))
        started = await engine.start_postmortem(
            client, settings.task_queue, PostmortemInput(incident=incident)
        )
        handle = started.handle
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
        # In a thread: the worker in this event loop answers the CLI's query meanwhile.
        shown = await asyncio.to_thread(cli, env, settings, "status", handle.id)
    assert shown.returncode == 0, shown.stderr
    assert incident.title in shown.stdout


async def test_without_the_right_client_certificate_nothing_connects(
    proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = settings_for(tmp_path)
    for client_cert in (None, "stranger"):
        env = tls_env(proxy, proxy.mtls, client_cert)
        for name in ("TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(RuntimeError):
            await engine.connect(settings)
        refused = cli(env, settings, "list")
        assert refused.returncode != 0
        assert "PRIVATE KEY" not in refused.stderr + refused.stdout


async def test_a_tls_cluster_without_client_certificates(
    proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A self-hosted cluster with server TLS only: the CA and the server name suffice; plain
    text is refused."""
    for name, value in tls_env(proxy, proxy.tls, None).items():
        monkeypatch.setenv(name, value)
    settings = settings_for(tmp_path)
    client = await engine.connect(settings)
    assert await engine.temporal_answers(client) is None
    monkeypatch.setenv("TEMPORAL_TLS", "false")
    for name in ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_NAME"):
        monkeypatch.delenv(name)
    with pytest.raises(RuntimeError):
        await engine.connect(settings)
