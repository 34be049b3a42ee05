"""The entry point: parse the subcommand, run it, map errors to exit codes and one line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from casewatch.errors import CasewatchError, ConfigError

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
    "check-model": ("casewatch.cli.check_model", "print a model's contract, or why invalid"),
}


class _Command(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> _Command:
    return cast(_Command, importlib.import_module(COMMANDS[name][0]))


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="casewatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).configure(command_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    try:
        return _load(args.command).run(args)
    except ConfigError as exc:
        print(f"casewatch {args.command}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except CasewatchError as exc:
        print(f"casewatch {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
