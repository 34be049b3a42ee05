"""``casewatch run``: the daemon, configured by ``CASEWATCH_*`` environment variables.

Exit codes: 0 after SIGTERM/SIGINT and a clean shutdown; 1 on a fatal failure (model, Kafka,
a broker still unreachable after ``startup_timeout_seconds``, outputs still undelivered when the
shutdown timeout ends); 2 on invalid configuration (settings, ``CASEWATCH_KAFKA__*`` properties,
a changelog whose partitions differ from the input's). SIGHUP reloads the model (see
``casewatch.daemon.model_reload``).
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
from types import FrameType

from structlog.typing import FilteringBoundLogger

from casewatch.cli.config_doc import settings_reference_text
from casewatch.daemon.build import build_daemon, load_evaluator, start_telemetry
from casewatch.daemon.startup import warn_unknown_env
from casewatch.errors import CasewatchError, ConfigError
from casewatch.kafka.config import check_client_properties
from casewatch.settings import load_settings
from casewatch.telemetry.logging import configure_logging, get_logger

_DESCRIPTION = """\
Run the daemon: consume events from CASEWATCH_INPUT_TOPIC, score each case with the model,
publish evaluations to CASEWATCH_OUTPUT_TOPIC and serve /metrics, /healthz and /readyz.
Every setting comes from a CASEWATCH_* environment variable (listed below); an unknown
CASEWATCH_* variable is warned about with the closest known name.

exit codes: 0 after SIGTERM/SIGINT and a clean shutdown, 1 on a fatal failure,
2 on invalid configuration. SIGHUP reloads the model."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = _DESCRIPTION
    parser.epilog = settings_reference_text()


def run(args: argparse.Namespace) -> int:
    # Failures are log events like every other line, so the stream stays one format to the end.
    log = get_logger("casewatch.run")
    try:
        return _run(log)
    except ConfigError as exc:
        log.error("invalid_configuration", error=str(exc), exit_code=2)
        return 2
    except CasewatchError as exc:
        log.error("daemon_failed", error=str(exc), exit_code=1)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        log.error("daemon_failed", error=f"{where}{exc.strerror or exc}", exit_code=1)
        return 1


def _run(log: FilteringBoundLogger) -> int:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    check_client_properties(settings.client_options())
    warn_unknown_env(os.environ)
    evaluator = load_evaluator(settings)
    telemetry, host, port = start_telemetry(settings, evaluator)
    identity = evaluator.identity
    try:
        daemon = build_daemon(settings, evaluator, telemetry)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            daemon.request_stop()

        def request_reload(signum: int, frame: FrameType | None) -> None:
            daemon.request_model_reload()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGHUP, request_reload)
        log.info(
            "starting",
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
    return 0
