"""``casewatch demo``: embedded broker + daemon + a replayed labelled log, then a summary.

Nothing to install or configure: the broker is librdkafka's mock cluster inside this process, the
daemon is ``casewatch run`` in a child process (as in production), and the evaluations are read
back from the output topic and compared with the log's labels.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import confluent_kafka
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from casewatch.cli._replay_args import add_policy_argument
from casewatch.cli.demo_view import DemoRun, print_summary
from casewatch.errors import CasewatchError
from casewatch.events import StreamingEvaluation
from casewatch.kafka import clients
from casewatch.kafka.broker import embedded_broker, ensure_topics
from casewatch.kafka.feed import replay
from casewatch.offline.logs import Trace, interleave, read_log
from casewatch.offline.train import TrainOptions, split, train
from casewatch.scoring.scorer import Scorer
from casewatch.settings import bundled_model_path

TOPICS = {
    "input": "demo-events",
    "output": "demo-evaluations",
    "dlq": "demo-dlq",
    "changelog": "casewatch-demo--demo-events--changelog",
}
_STARTUP_SECONDS = 60.0
BUNDLED_TRAIN_FRACTION = 0.5


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", type=Path, default=None, help="event log (default: bundled)")
    add_policy_argument(parser)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = unthrottled")
    parser.add_argument("--model", type=Path, default=None, help="ONNX scorer (default: bundled)")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the evaluations"
    )


def run(args: argparse.Namespace) -> int:
    console = Console(soft_wrap=True)
    log_path = args.log or Path(str(importlib.resources.files("casewatch") / "data"))
    if args.log is None:
        log_path = log_path / "p2p-0.3-1.csv.gz"
    traces = [t for t in read_log(log_path) if t.events]
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="casewatch-demo-")))
        model, model_note = _model(args.model, traces, workdir, console)
        bootstrap = stack.enter_context(embedded_broker())
        ensure_topics(bootstrap, TOPICS.values())
        console.print(f"broker {bootstrap}; model {model_note}")
        daemon = stack.enter_context(_daemon(bootstrap, model, args.policy, workdir / "daemon.log"))
        metrics_url = _wait_ready(daemon, workdir / "daemon.log")
        # The endpoint goes away with the daemon at the end of the run, so its URL is not shown.
        console.print("daemon ready")
        reader = stack.enter_context(_output_reader(bootstrap))
        started = time.monotonic()
        n_events = sum(len(t.events) for t in traces)
        produced = _replay_with_progress(bootstrap, traces, args.rate, n_events, reader, console)
        finished = reader.wait_for(len(traces), args.timeout)
        elapsed = time.monotonic() - started
        metrics_text = _fetch(metrics_url)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=30)
        scorer = Scorer(model)
    demo_run = DemoRun(
        traces=traces,
        closed=reader.closed,
        produced=produced,
        evaluations=reader.evaluations,
        elapsed=elapsed,
        consumed=_metric(metrics_text, "casewatch_events_consumed_total"),
        held_out=_held_out(args, traces),
        in_sample=args.model is None and model != bundled_model_path(),
    )
    print_summary(console, demo_run, scorer)
    if not finished:
        raise CasewatchError(
            f"only {len(reader.closed)} of {len(traces)} cases were evaluated "
            f"within {args.timeout:g} s"
        )
    if code != 0:
        raise CasewatchError(f"the daemon exited with code {code}")
    return 0


def _model(
    chosen: Path | None, traces: list[Trace], workdir: Path, console: Console
) -> tuple[Path, str]:
    model = chosen or bundled_model_path()
    if chosen is not None or model.exists():
        return model, str(model)
    console.print("no bundled model found: training one on the replayed log")
    out = workdir / "demo.onnx"
    train(traces, out, TrainOptions(name="demo", version="0"), source="demo log")
    return out, "trained on the replayed log (in-sample figures)"


def _held_out(args: argparse.Namespace, traces: list[Trace]) -> frozenset[str] | None:
    """The cases the bundled model was not trained on, when it scores the bundled log."""
    if args.model is not None or args.log is not None or not bundled_model_path().exists():
        return None
    # The bundled model is trained on the first half of the bundled log (`make reference-model`).
    return frozenset(t.case_id for t in split(traces, BUNDLED_TRAIN_FRACTION)[1])


@contextmanager
def _daemon(bootstrap: str, model: Path, policy: str, log_path: Path) -> Iterator[Any]:
    package_root = str(Path(__file__).resolve().parents[2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    env.update(
        CASEWATCH_BOOTSTRAP_SERVERS=bootstrap,
        CASEWATCH_INPUT_TOPIC=TOPICS["input"],
        CASEWATCH_OUTPUT_TOPIC=TOPICS["output"],
        CASEWATCH_DLQ_TOPIC=TOPICS["dlq"],
        CASEWATCH_GROUP_ID="casewatch-demo",
        CASEWATCH_MODEL_PATH=str(model),
        CASEWATCH_SCORE_POLICY=policy,
        CASEWATCH_METRICS_HOST="127.0.0.1",
        CASEWATCH_METRICS_PORT="0",
        CASEWATCH_LOG_FORMAT="json",
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "casewatch", "run"], env=env, stdout=log, stderr=log
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_ready(process: Any, log_path: Path) -> str:
    deadline = time.monotonic() + _STARTUP_SECONDS
    metrics_url = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CasewatchError(f"the daemon exited at start-up: {_last_line(log_path)}")
        if not metrics_url:
            metrics_url = _metrics_url(log_path)
        elif _fetch(metrics_url.removesuffix("/metrics") + "/readyz") == "ok\n":
            return metrics_url
        time.sleep(0.1)
    raise CasewatchError(f"the daemon was not ready within {_STARTUP_SECONDS:g} s")


def _metrics_url(log_path: Path) -> str:
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "starting":
                return str(record["metrics"])
    return ""


def _last_line(log_path: Path) -> str:
    lines = log_path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


class _OutputReader:
    """Reads evaluations from the output topic without joining a group."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer: Any = clients.consumer(
            {"bootstrap.servers": bootstrap, "group.id": "casewatch-demo-reader", "log_level": 3}
        )
        topic = TOPICS["output"]
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign(
            [
                confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                for p in partitions
            ]
        )
        self._decoder = msgspec.json.Decoder(StreamingEvaluation)
        self.evaluations = 0
        self.closed: dict[str, StreamingEvaluation] = {}

    def poll(self, timeout: float = 0.0) -> None:
        for message in self._consumer.consume(5000, timeout):
            if message.error() is None:
                evaluation = self._decoder.decode(message.value())
                self.evaluations += 1
                if evaluation.closed:
                    self.closed[evaluation.case_id] = evaluation

    def wait_for(self, cases: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.closed) < cases and time.monotonic() < deadline:
            self.poll(0.2)
        return len(self.closed) >= cases

    def close(self) -> None:
        self._consumer.close()


@contextmanager
def _output_reader(bootstrap: str) -> Iterator[_OutputReader]:
    reader = _OutputReader(bootstrap)
    try:
        yield reader
    finally:
        reader.close()


def _replay_with_progress(
    bootstrap: str,
    traces: list[Trace],
    rate: float,
    n_events: int,
    reader: _OutputReader,
    console: Console,
) -> int:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        produced_task = progress.add_task("events produced", total=n_events)
        closed_task = progress.add_task("cases evaluated", total=len(traces))

        def advance(produced: int) -> None:
            # Reading the output between produce calls keeps the mock broker's bounded
            # partition logs drained and the bar honest about what the daemon has done.
            reader.poll()
            progress.update(produced_task, completed=produced)
            progress.update(closed_task, completed=len(reader.closed))

        stats = replay(
            interleave(traces),
            bootstrap_servers=bootstrap,
            topic=TOPICS["input"],
            rate=rate,
            progress=advance,
        )
        deadline = time.monotonic() + 120
        while len(reader.closed) < len(traces) and time.monotonic() < deadline:
            reader.poll(0.2)
            progress.update(closed_task, completed=len(reader.closed))
    return stats.events


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
