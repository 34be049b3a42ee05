"""Structured logging: JSON lines for log collectors, a coloured console layout for humans.

``auto`` (the default) picks the console layout when stderr is a terminal and JSON otherwise, so
a person at a shell reads lines and a container's collector parses them.

structlog and the standard library share one handler on stderr, so records from libraries that
log through ``logging`` come out in the same format, with the same timestamp and level keys.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Literal, cast

import structlog
from structlog.typing import FilteringBoundLogger, Processor

from casewatch.errors import ConfigError

LogFormat = Literal["json", "console", "auto"]
_FORMATS: tuple[LogFormat, ...] = ("json", "console", "auto")
_LEVEL_ENV = "CASEWATCH_LOG_LEVEL"
_FORMAT_ENV = "CASEWATCH_LOG_FORMAT"

_LEVELS = logging.getLevelNamesMapping()
# Marks the handler this module installs, so reconfiguring replaces it instead of stacking another.
_HANDLER_NAME = "casewatch"


def _level_number(level: str) -> int:
    number = _LEVELS.get(level.strip().upper())
    if number is None or number == logging.NOTSET:
        raise ConfigError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    return number


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def resolve_format(fmt: str, *, tty: bool | None = None) -> Literal["json", "console"]:
    """``fmt`` with ``auto`` decided by whether stderr (or ``tty``) is a terminal."""
    if fmt == "auto":
        return "console" if (sys.stderr.isatty() if tty is None else tty) else "json"
    if fmt in ("json", "console"):
        return cast(Literal["json", "console"], fmt)
    raise ConfigError(f"unknown log format {fmt!r}; use json, console or auto")


def _renderer(fmt: str) -> list[Processor]:
    fmt = resolve_format(fmt)
    if fmt == "json":
        # Tracebacks become one string field, so each record stays a single JSON line.
        return [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    if fmt == "console":
        return [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    raise ConfigError(f"unknown log format {fmt!r}; use json, console or auto")


def configure_logging(level: str = "INFO", fmt: LogFormat = "auto") -> None:
    """Route structlog and stdlib logging to stderr at ``level`` in format ``fmt``."""
    number = _level_number(level)
    renderer = _renderer(fmt)
    shared = _shared_processors()

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(number),
        # Loggers are looked up on each use so that a later configure_logging call takes effect
        # for module-level loggers too; nothing logs on the per-event path.
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(number)


def configure_logging_from_env(environ: Mapping[str, str], *, level: str = "WARNING") -> None:
    """The commands other than ``run``: ``CASEWATCH_LOG_LEVEL`` and ``CASEWATCH_LOG_FORMAT``
    apply as they do to the daemon, without the daemon's required settings.

    ``level`` is the default: these commands print their own results, so only what goes wrong
    is logged unless asked for.
    """
    fmt = environ.get(_FORMAT_ENV, "auto").strip().lower()
    if fmt not in _FORMATS:
        raise ConfigError(f"{_FORMAT_ENV}: unknown log format {fmt!r}; use json, console or auto")
    configure_logging(environ.get(_LEVEL_ENV, level), fmt)


def get_logger(name: str | None = None, **initial_values: Any) -> FilteringBoundLogger:
    """A structured logger named ``name`` (conventionally the module's ``__name__``)."""
    return cast(FilteringBoundLogger, structlog.get_logger(name, **initial_values))
