"""One daemon loop in this process, until SIGTERM/SIGINT: what ``casewatch run`` and each worker
of ``CASEWATCH_WORKERS`` run."""

from __future__ import annotations

import gc
import signal
from collections.abc import Callable
from types import FrameType

from casewatch.daemon.build import build_daemon, load_evaluator, start_telemetry
from casewatch.settings import Settings
from casewatch.telemetry.logging import get_logger


def serve(
    settings: Settings,
    *,
    announce: str = "starting",
    on_serving: Callable[[str, int], None] | None = None,
) -> None:
    """One daemon loop until SIGTERM/SIGINT; ``on_serving`` learns the metrics address first."""
    log = get_logger("casewatch.run")
    evaluator = load_evaluator(settings)
    telemetry, host, port = start_telemetry(settings, evaluator)
    identity = evaluator.identity
    try:
        if on_serving is not None:
            on_serving(host, port)
        daemon = build_daemon(settings, evaluator, telemetry)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            daemon.request_stop()

        def request_reload(signum: int, frame: FrameType | None) -> None:
            daemon.request_model_reload()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGHUP, request_reload)
        log.info(
            announce,
            model=identity.name,
            model_version=identity.version,
            metrics=f"http://{host}:{port}/metrics",
            settings=settings.redacted(),
        )
        # Everything built so far (model, settings, clients) lives as long as the process: moving
        # it out of the collector's reach keeps full collections from scanning it mid-batch.
        gc.freeze()
        daemon.run()
    finally:
        telemetry.close()
