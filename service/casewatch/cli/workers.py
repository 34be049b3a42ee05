"""``CASEWATCH_WORKERS=N``: N daemon loops in one container, each its own consumer-group member.

One Python loop uses one core, so more cores take more processes (as Kafka Streams'
``num.stream.threads`` takes more threads). The parent does no Kafka work: it spawns the
workers, serves one /metrics, /healthz and /readyz for all of them
(``casewatch.telemetry.aggregate``), forwards SIGTERM, SIGINT and SIGHUP, and waits.

Each worker is ``casewatch run`` with one loop, its metrics on a private loopback port, and under
exactly-once a transactional id of its own (``<id>-<worker>``, stable across restarts so a
restarted worker fences its predecessor).

A worker that exits while the container is not stopping brings the container down: the parent
stops the others and exits 1 naming the worker. The orchestrator restarts the container, and
sees a crash loop as one, where a worker restarted in place would hide it.

On SIGTERM every worker gets SIGTERM and ``shutdown_timeout_seconds`` (plus the time to leave
the group) to finish; one still running then is killed. The exit code is 0 only when every
worker stopped cleanly.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import structlog

from casewatch.cli._serve import serve
from casewatch.errors import CasewatchError, ConfigError
from casewatch.settings import Settings, load_settings
from casewatch.telemetry.aggregate import WorkerEndpoints
from casewatch.telemetry.logging import configure_logging, get_logger
from casewatch.telemetry.server import ProbeServer

log = get_logger("casewatch.workers")

# Loading the model and serving metrics comes before any broker contact, so it is quick.
_STARTUP_SECONDS = 120.0
# Beyond the shutdown timeout: closing the consumer and leaving the group.
_LEAVE_SECONDS = 15.0
_POLL_SECONDS = 0.5


class WorkerFailure(CasewatchError):
    """A worker process failed, so the container stops."""


def run_workers(settings: Settings) -> int:
    """Supervise ``settings.workers`` daemon processes until a stop is requested or one fails."""
    return Workers(settings).run()


def worker_overrides(settings: Settings, index: int) -> dict[str, Any]:
    """The settings a worker differs from the container's in."""
    overrides: dict[str, Any] = {"workers": 1, "metrics_host": "127.0.0.1", "metrics_port": 0}
    if settings.processing_guarantee == "exactly_once":
        base = settings.transactional_id or f"casewatch-{settings.group_id}-{socket.gethostname()}"
        overrides["transactional_id"] = f"{base}-{index}"
    return overrides


class Workers:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._stopping = False
        self._terminated: set[int] = set()  # pids already sent SIGTERM

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        signal.signal(signal.SIGHUP, self._forward)
        try:
            failure = self._run()
        finally:
            codes = self._stop_all()
        failed = {index: code for index, code in enumerate(codes) if code != 0}
        if failure is None and failed:
            index, code = next(iter(failed.items()))
            failure = f"worker {index} {_ended(code)} while stopping"
        if failure is not None:
            log.error("workers_failed", reason=failure)
            if any(code == 2 for code in failed.values()):
                raise ConfigError(failure)
            raise WorkerFailure(failure)
        log.info("workers_stopped", workers=len(codes))
        return 0

    def _run(self) -> str | None:
        """Start, serve and supervise; the reason the container must stop, None on request."""
        connections = [self._spawn(index) for index in range(self._settings.workers)]
        ports = self._wait_for_ports(connections)
        if isinstance(ports, str) or self._stopping:
            return ports if isinstance(ports, str) else None
        endpoints = WorkerEndpoints([f"http://127.0.0.1:{port}" for port in ports])
        server = ProbeServer(endpoints.registry(), endpoints)
        try:
            host, port = server.serve(self._settings.metrics_host, self._settings.metrics_port)
            log.info(
                "starting",
                workers=len(ports),
                metrics=f"http://{host}:{port}/metrics",
                settings=self._settings.redacted(),
            )
            return self._supervise()
        finally:
            server.close()
            endpoints.close()

    def _spawn(self, index: int) -> Connection:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker,
            args=(index, worker_overrides(self._settings, index), send),
            name=f"casewatch-worker-{index}",
        )
        process.start()
        send.close()
        log.info("worker_started", worker=index, pid=process.pid)
        self._processes.append(process)
        return receive

    def _wait_for_ports(self, connections: list[Connection]) -> list[int] | str:
        ports: dict[int, int] = {}
        deadline = time.monotonic() + _STARTUP_SECONDS
        while len(ports) < len(connections) and not self._stopping:
            for index, connection in enumerate(connections):
                if index not in ports and connection.poll():
                    # EOF: the worker exited; its sentinel says how.
                    with contextlib.suppress(EOFError):
                        ports[index] = int(connection.recv())
            if (exited := self._exited()) is not None:
                return exited
            if time.monotonic() > deadline:
                return f"workers did not start within {_STARTUP_SECONDS:g} s"
            waiting = [c for i, c in enumerate(connections) if i not in ports]
            wait([*waiting, *(p.sentinel for p in self._processes)], timeout=_POLL_SECONDS)
        for connection in connections:
            connection.close()
        return [ports[index] for index in range(len(connections))]

    def _supervise(self) -> str | None:
        sentinels = [process.sentinel for process in self._processes]
        while not self._stopping:
            wait(sentinels, timeout=_POLL_SECONDS)
            if not self._stopping and (exited := self._exited()) is not None:
                return exited
        return None

    def _exited(self) -> str | None:
        for index, process in enumerate(self._processes):
            if process.exitcode is not None:
                return (
                    f"worker {index} {_ended(process.exitcode)}; stopping the other workers "
                    "so the container is restarted"
                )
        return None

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        self._terminate_all()

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        for pid in self._running():
            _kill(pid, signum)

    def _terminate_all(self) -> None:
        # Once each: a worker that has stopped its loop is exiting, and a second SIGTERM would
        # only interrupt that.
        for pid in self._running():
            if pid not in self._terminated:
                self._terminated.add(pid)
                _kill(pid, signal.SIGTERM)

    def _running(self) -> list[int]:
        return [p.pid for p in self._processes if p.exitcode is None and p.pid is not None]

    def _stop_all(self) -> list[int]:
        """Stop every worker within the bound; their exit codes (-9 for one killed)."""
        self._stopping = True
        self._terminate_all()
        bound = self._settings.shutdown_timeout_seconds + _LEAVE_SECONDS
        deadline = time.monotonic() + bound
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for index, process in enumerate(self._processes):
            if process.exitcode is None:
                log.error("worker_killed", worker=index, after_seconds=bound)
                process.kill()
                process.join(5)
        return [p.exitcode if p.exitcode is not None else -9 for p in self._processes]


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited since it was seen running
        os.kill(pid, signum)


def _ended(code: int) -> str:
    if code < 0:
        return f"was ended by signal {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _worker(index: int, overrides: dict[str, Any], connection: Connection) -> None:
    """A worker process: one daemon loop, reporting its metrics port to the parent first."""
    try:
        settings = load_settings(**overrides)
        configure_logging(settings.log_level, settings.log_format)
        structlog.contextvars.bind_contextvars(worker=index)
        serve(
            settings,
            announce="worker_starting",
            on_serving=lambda host, port: connection.send(port),
        )
        # The loop has stopped; what is left is the interpreter's exit, which a late signal
        # (its handlers are reset while it finalises) would only turn into a failure.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
    except ConfigError as exc:
        log.error("invalid_configuration", error=str(exc), worker=index, exit_code=2)
        sys.exit(2)
    except CasewatchError as exc:
        log.error("daemon_failed", error=str(exc), worker=index, exit_code=1)
        sys.exit(1)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        error = f"{where}{exc.strerror or exc}"
        log.error("daemon_failed", error=error, worker=index, exit_code=1)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        connection.close()
