"""The entry point: parse the subcommand, run it, map errors to exit codes and one line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from casewatch.cli._help import HelpFormatter, package_version
from casewatch.errors import CasewatchError, ConfigError
from casewatch.telemetry.logging import configure_logging_from_env

# name -> (module, one-line help). Modules are imported only when their command runs, so
# `casewatch score` never pays for confluent-kafka and `casewatch run` never for the trainer.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("casewatch.cli.run", "run the daemon: Kafka in -> scorer -> Kafka out"),
    "demo": ("casewatch.cli.demo", "embedded broker + daemon + replayed log, with a summary"),
    "broker": ("casewatch.cli.broker", "start the embedded Kafka-protocol broker"),
    "produce": ("casewatch.cli.produce", "replay an event log onto a topic"),
    "train": ("casewatch.cli.train", "fit a scorer on an event log and export it to ONNX"),
    "score": ("casewatch.cli.score", "replay an event log through the evaluator offline"),
    "evaluate": ("casewatch.cli.evaluate", "detection quality per anomaly type on a log"),
    "check-model": ("casewatch.cli.check_model", "summarise a model and say if it works"),
}

DESCRIPTION = """\
casewatch watches business processes as they run. It reads process events (a purchase order
created, an invoice approved, ...) from a Kafka topic, follows each case from its first event,
scores the case with an ONNX model of how the process normally goes, and publishes an
evaluation: how unusual the case is, whether it crosses the model's threshold, and which step
looks wrong. Offline, the same scorer trains on an event log, replays one, or measures how well
it would catch anomalies on your process."""

EPILOG = """\
examples:
  casewatch demo                                     see it work: broker, daemon and a log
  CASEWATCH_BOOTSTRAP_SERVERS=kafka:9092 casewatch run
                                                     the daemon (run --help lists its settings)
  casewatch produce log.csv.gz --topic casewatch-events --bootstrap localhost:9092
  casewatch train log.csv.gz --out models/p2p.onnx --train-fraction 0.5
  casewatch score log.csv.gz --model models/p2p.onnx --skip-fraction 0.5
  casewatch evaluate log.csv.gz --inject-rate 0.05   expected quality on any log
  casewatch check-model models/p2p.onnx              is this model usable?

Run casewatch COMMAND --help for a command's options."""


class _Command(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> _Command:
    return cast(_Command, importlib.import_module(COMMANDS[name][0]))


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="casewatch", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=f"casewatch {package_version()}",
        help="print the version and exit",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        if name == chosen:
            _load(name).configure(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        # Every command logs in the daemon's format; ``run`` refines it from its settings.
        configure_logging_from_env(os.environ)
        return _load(args.command).run(args)
    except ConfigError as exc:
        print(f"casewatch {args.command}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except CasewatchError as exc:
        print(f"casewatch {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # A log, an output file or a model that cannot be opened: the reason, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"casewatch {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
