"""The HTTP thread serving /metrics, /healthz and /readyz from a registry and a Health.

It is the only thread besides the processing loop; it only reads: the registry's values and the
health state, each read atomic under the GIL. With several worker processes the parent serves
the same paths from ``casewatch.telemetry.aggregate``, which answers the same two probes.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from casewatch.errors import ConfigError


class Probes(Protocol):
    """What /healthz and /readyz answer: (ok, one-line reason)."""

    def liveness(self) -> tuple[bool, str]: ...
    def readiness(self) -> tuple[bool, str]: ...


class ProbeServer:
    """One background HTTP server thread exposing a registry and its probes."""

    def __init__(self, registry: CollectorRegistry, health: Probes) -> None:
        self._registry = registry
        self._health = health
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP server thread; returns the bound address (port 0 picks a free port)."""
        if self._server is not None:
            raise RuntimeError("telemetry server already running")
        server_class = _IPv6Server if ":" in host else _IPv4Server
        try:
            server = server_class((host, port), _make_handler(self._registry, self._health))
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="casewatch-telemetry", daemon=True
        )
        self._thread.start()
        bound_host, bound_port = server.server_address[:2]
        return str(bound_host), int(bound_port)

    def close(self) -> None:
        """Stop the HTTP server; safe to call more than once."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


class _IPv4Server(ThreadingHTTPServer):
    daemon_threads = True


class _IPv6Server(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6


def _make_handler(registry: CollectorRegistry, health: Probes) -> type[BaseHTTPRequestHandler]:

    class Handler(BaseHTTPRequestHandler):
        server_version = "casewatch"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._reply(200, encoder(registry), content_type)
            elif path == "/healthz":
                self._probe(*health.liveness())
            elif path == "/readyz":
                self._probe(*health.readiness())
            else:
                self._reply(404, b"not found\n", "text/plain; charset=utf-8")

        def _probe(self, ok: bool, reason: str) -> None:
            body = f"{reason}\n".encode()
            self._reply(200 if ok else 503, body, "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            # Probes arrive every few seconds; access lines would drown the daemon's own log.
            return

    return Handler
