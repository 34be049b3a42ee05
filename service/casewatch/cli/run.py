"""``casewatch run``: the daemon, configured by ``CASEWATCH_*`` environment variables.

Exit codes: 0 after SIGTERM/SIGINT and a clean shutdown; 1 on a fatal failure (model, Kafka,
a broker still unreachable after ``startup_timeout_seconds``, outputs still undelivered when the
shutdown timeout ends); 2 on invalid configuration (settings, ``CASEWATCH_KAFKA__*`` properties,
a changelog whose partitions differ from the input's). SIGHUP reloads the model (see
``casewatch.daemon.model_reload``). With ``CASEWATCH_WORKERS`` above 1 the process supervises
that many daemon processes behind one metrics endpoint (``casewatch.cli.workers``).
"""

from __future__ import annotations

import argparse
import os

from casewatch.cli._serve import serve
from casewatch.cli.config_doc import settings_reference_text
from casewatch.cli.workers import run_workers
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
2 on invalid configuration. SIGHUP reloads the model. CASEWATCH_WORKERS=N runs N daemon
processes, each a member of the consumer group, behind one metrics endpoint."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = _DESCRIPTION
    parser.epilog = settings_reference_text()


def run(args: argparse.Namespace) -> int:
    # Failures are log events like every other line, so the stream stays one format to the end.
    log = get_logger("casewatch.run")
    try:
        return _run()
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


def _run() -> int:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    check_client_properties(settings.client_options())
    warn_unknown_env(os.environ)
    if settings.workers > 1:
        return run_workers(settings)
    serve(settings)
    return 0
