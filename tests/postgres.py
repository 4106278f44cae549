"""A real PostgreSQL for the record's tests: Debian's server (installed by `make postgres`),
run in a temporary directory on a free port, as the `postgres` user when the tests run as
root (the server refuses root). Nothing of the machine's own clusters is touched."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PostgresServer:
    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="pm-postgres-"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://pm@127.0.0.1:{self.port}/postgres"

    def database(self, password: str = "") -> str:
        """A new, empty database; its URL (with `password`, which trust auth ignores: for
        checking that no error shows it)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        user = f"pm:{password}" if password else "pm"
        return f"postgresql://{user}@127.0.0.1:{self.port}/{name}"

    def start(self) -> PostgresServer:
        initdb, postgres = binary("initdb"), binary("postgres")
        if initdb is None or postgres is None:
            raise FileNotFoundError("PostgreSQL is not installed: run `make postgres`")
        data = self.directory / "data"
        if self._user:
            shutil.chown(self.directory, self._user)
        if not data.exists():
            subprocess.run(
                [initdb, "-D", str(data), "-U", "pm", "--auth=trust", "-E", "UTF8", "--no-sync"],
                check=True,
                capture_output=True,
                user=self._user,
            )
        self.process = subprocess.Popen(
            [
                postgres,
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.directory),
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self._user,
        )
        deadline = time.monotonic() + 30
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.05)  # polling a port: the server says nothing else when it is up
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are cut off
            self.process.wait(timeout=30)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _answers(port: int) -> bool:
    import psycopg

    try:
        psycopg.connect(f"postgresql://pm@127.0.0.1:{port}/postgres", connect_timeout=1).close()
    except psycopg.OperationalError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
