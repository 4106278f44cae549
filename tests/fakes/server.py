"""A small threaded HTTP server for stateful emulators, with faults injected on demand."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str  # raw, still percent-encoded
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """What to do to the next `times` requests matching `method` and `path` (a regex):
    answer `status` (with `retry_after`), wait `delay` seconds first, `reset` the connection
    without an answer, `lost`: do the work, then reset (the client never hears it), or
    `hold`: do the work, then wait that many seconds before answering. The first `skip`
    matching requests are served as usual."""

    method: str = ".*"
    path: str = ".*"
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    reset: bool = False
    lost: bool = False
    hold: float = 0.0
    times: int = 1
    skip: int = 0

    def matches(self, request: Request) -> bool:
        return bool(
            re.fullmatch(self.method, request.method) and re.fullmatch(self.path, request.path)
        )


Handler = Callable[[Request], Response]


class EmulatorServer:
    """Routes by (method, path regex with named groups); records every request."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.contract: Any = None  # tests.fakes.contract.Contract, when the specs are at hand
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.errors: list[str] = []  # handler crashes: bugs of the emulator, they fail stop()
        self.lock = threading.RLock()
        emulator = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                emulator._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern), handler))

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; fail if any traffic broke the API description."""
        self.httpd.shutdown()
        self.httpd.server_close()
        violations = self.contract.violations if self.contract is not None else []
        violations = [*self.errors, *violations]
        if violations:
            raise AssertionError(
                f"{len(violations)} call(s) outside the OpenAPI description:\n"
                + "\n".join(violations[:10])
            )

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and re.fullmatch(path, r.path))

    def _fault_for(self, request: Request) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(request):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    return fault
        return None

    def _serve(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        request = Request(
            method=http.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=http.rfile.read(length) if length else b"",
        )
        with self.lock:
            self.requests.append(request)
        fault = self._fault_for(request)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.reset:
                self._reset(http)
                return
            if fault.status is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(int(fault.retry_after))
                self._send(http, Response(fault.status, {"message": "injected fault"}, headers))
                return
        response = self._dispatch(request)
        if self.contract is not None:
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            try:
                self.contract.check(request, response, payload)
            except Exception as exc:
                self.errors.append(f"contract check of {request.method} {request.path}: {exc!r}")
        if fault is not None and fault.hold:
            time.sleep(fault.hold)
        if fault is not None and fault.lost:
            self._reset(http)
            return
        self._send(http, response)

    def _dispatch(self, request: Request) -> Response:
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                try:
                    with self.lock:
                        return handler(request)
                except Exception as exc:
                    self.errors.append(f"{request.method} {request.path}: {exc!r}")
                    return Response(500, {"message": f"emulator error: {exc!r}"})
        return Response(404, {"message": "Not Found"})

    @staticmethod
    def _send(http: BaseHTTPRequestHandler, response: Response) -> None:
        payload = b"" if response.body is None else json.dumps(response.body).encode()
        http.send_response(response.status)
        for name, value in response.headers.items():
            http.send_header(name, value)
        if payload:
            http.send_header("Content-Type", "application/json; charset=utf-8")
        http.send_header("Content-Length", str(len(payload)))
        http.end_headers()
        http.wfile.write(payload)

    @staticmethod
    def _reset(http: BaseHTTPRequestHandler) -> None:
        """Close with RST: the client sees a connection reset, not an answer."""
        http.close_connection = True
        sock = http.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
