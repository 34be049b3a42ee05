"""Prometheus metrics and health probes, served from one background HTTP thread.

Every metric lives in the ``Telemetry`` instance's own registry and is created, with its known
label children, in ``__init__``: the processing loop only calls ``inc``/``set``/``observe`` on
ready objects. ``/metrics`` is the exposition, ``/healthz`` is liveness (the loop iterated within
the liveness timeout) and ``/readyz`` readiness (partitions assigned, model loaded, not restoring).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder

from casewatch._errors import ConfigError

PREFIX: Final = "casewatch"
TRIGGERS: Final = ("close", "event", "timeout", "evicted", "request")
REBALANCE_KINDS: Final = ("assign", "revoke", "lost")
LATENCY_CLOCKS: Final = ("event_time", "ingest_time")

_BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Event-time latency spans sub-second streaming to replays of logs that are days old.
_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 86400)
_SCORE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)


class Health:
    """Liveness and readiness state, written by the loop and read by the probe thread.

    Each write is a single attribute assignment, atomic under the GIL, so no lock is needed.
    """

    def __init__(self, liveness_timeout_seconds: float = 30.0) -> None:
        if liveness_timeout_seconds <= 0:
            raise ConfigError("liveness_timeout_seconds must be greater than 0")
        self.liveness_timeout_seconds = liveness_timeout_seconds
        self._last_beat = time.monotonic()
        self._assigned = False
        self._model_loaded = False
        self._restoring = False

    def heartbeat(self) -> None:
        self._last_beat = time.monotonic()

    def set_assigned(self, assigned: bool) -> None:
        self._assigned = assigned

    def set_model_loaded(self, loaded: bool) -> None:
        self._model_loaded = loaded

    def set_restoring(self, restoring: bool) -> None:
        self._restoring = restoring

    def liveness(self) -> tuple[bool, str]:
        silent = time.monotonic() - self._last_beat
        if silent > self.liveness_timeout_seconds:
            return False, f"processing loop silent for {silent:.0f}s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        if not self._model_loaded:
            return False, "model not loaded"
        if not self._assigned:
            return False, "no partitions assigned"
        if self._restoring:
            return False, "restoring case state"
        return True, "ok"


class Telemetry:
    """The daemon's metrics, its health state and the HTTP server that exposes both."""

    def __init__(
        self,
        *,
        liveness_timeout_seconds: float = 30.0,
        invalid_reasons: Iterable[str] = (),
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.health = Health(liveness_timeout_seconds)
        self.heartbeat = self.health.heartbeat
        self.set_assigned = self.health.set_assigned
        self.set_model_loaded = self.health.set_model_loaded
        self.set_restoring = self.health.set_restoring
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._last_commit = time.time()
        r = self.registry

        self.up = Gauge(f"{PREFIX}_up", "1 while the daemon runs.", registry=r)
        self.up.set(1)
        self.events_consumed = Counter(
            f"{PREFIX}_events_consumed", "Input messages consumed.", registry=r
        )
        self.invalid_events = Counter(
            f"{PREFIX}_invalid_events",
            "Input messages that could not be decoded, by reason.",
            ["reason"],
            registry=r,
        )
        self.invalid_by_reason = {
            reason: self.invalid_events.labels(reason) for reason in invalid_reasons
        }
        self.evaluations = Counter(
            f"{PREFIX}_evaluations",
            "Evaluations published, by trigger and verdict.",
            ["trigger", "anomalous"],
            registry=r,
        )
        self.evaluations_by = {
            (trigger, anomalous): self.evaluations.labels(trigger, str(anomalous).lower())
            for trigger in TRIGGERS
            for anomalous in (False, True)
        }
        self.open_cases = Gauge(f"{PREFIX}_open_cases", "Cases held in memory.", registry=r)
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size",
            "Messages per consumed batch.",
            buckets=_BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            f"{PREFIX}_batch_duration_seconds",
            "Time to process one batch, consume to publish.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.scoring_duration = Histogram(
            f"{PREFIX}_scoring_duration_seconds",
            "Time of one scorer run over the due cases of a batch.",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.event_to_evaluation_latency = Histogram(
            f"{PREFIX}_event_to_evaluation_latency_seconds",
            "From a case's last event to its evaluation; event_time uses the event timestamp, "
            "ingest_time the moment the message was consumed.",
            ["clock"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.latency_event_time = self.event_to_evaluation_latency.labels("event_time")
        self.latency_ingest_time = self.event_to_evaluation_latency.labels("ingest_time")
        self.trace_score = Histogram(
            f"{PREFIX}_trace_score",
            "Trace scores of published evaluations.",
            buckets=_SCORE_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            f"{PREFIX}_consumer_lag",
            "Messages between the high watermark and the consumed position, by partition.",
            ["partition"],
            registry=r,
        )
        self.last_commit_timestamp = Gauge(
            f"{PREFIX}_last_commit_timestamp_seconds",
            "Unix time of the last successful checkpoint.",
            registry=r,
        )
        self.last_commit_timestamp.set(self._last_commit)
        self.seconds_since_last_commit = Gauge(
            f"{PREFIX}_seconds_since_last_commit",
            "Seconds since the last successful checkpoint (since start before the first one).",
            registry=r,
        )
        self.seconds_since_last_commit.set_function(lambda: time.time() - self._last_commit)
        self.model = Info(f"{PREFIX}_model", "The scorer in use.", registry=r)
        self.rebalances = Counter(
            f"{PREFIX}_rebalances", "Partition rebalance events, by kind.", ["kind"], registry=r
        )
        self.rebalances_by_kind = {kind: self.rebalances.labels(kind) for kind in REBALANCE_KINDS}
        self.assigned_partitions = Gauge(
            f"{PREFIX}_assigned_partitions", "Input partitions assigned.", registry=r
        )
        self.unknown_activities = Counter(
            f"{PREFIX}_unknown_activities",
            "Events whose activity the model does not know.",
            registry=r,
        )
        self.dlq_records = Counter(
            f"{PREFIX}_dlq_records", "Records sent to the dead-letter topic.", registry=r
        )
        self.delivery_errors = Counter(
            f"{PREFIX}_delivery_errors", "Output records the broker failed to take.", registry=r
        )
        self.commits = Counter(f"{PREFIX}_commits", "Successful offset commits.", registry=r)
        self.producer_queue_length = Gauge(
            f"{PREFIX}_producer_queue_length", "Output records awaiting delivery.", registry=r
        )
        self.paused = Gauge(
            f"{PREFIX}_paused", "1 while consumption is paused for back-pressure.", registry=r
        )

    def count_invalid(self, reason: str) -> None:
        child = self.invalid_by_reason.get(reason)
        if child is None:
            child = self.invalid_by_reason[reason] = self.invalid_events.labels(reason)
        child.inc()

    def count_evaluation(self, trigger: str, anomalous: bool) -> None:
        child = self.evaluations_by.get((trigger, anomalous))
        if child is None:
            child = self.evaluations.labels(trigger, str(anomalous).lower())
            self.evaluations_by[trigger, anomalous] = child
        child.inc()

    def set_consumer_lag(self, partition: int, lag: int) -> None:
        self.consumer_lag.labels(str(partition)).set(lag)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Drop the per-partition series of partitions this instance no longer owns."""
        for partition in partitions:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(str(partition))

    def mark_commit(self, at: float | None = None) -> None:
        """Record a successful checkpoint at Unix time ``at`` (now by default)."""
        self._last_commit = time.time() if at is None else at
        self.last_commit_timestamp.set(self._last_commit)
        self.commits.inc()

    def set_model(self, name: str, version: str, sha256: str) -> None:
        self.model.info({"name": name, "version": version, "sha256": sha256})

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP server thread; returns the bound address (port 0 picks a free port)."""
        if self._server is not None:
            raise RuntimeError("telemetry server already running")
        server_class = _IPv6Server if ":" in host else _IPv4Server
        try:
            server = server_class((host, port), _make_handler(self))
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


def _make_handler(telemetry: Telemetry) -> type[BaseHTTPRequestHandler]:
    registry, health = telemetry.registry, telemetry.health

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
