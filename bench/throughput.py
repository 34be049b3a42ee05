"""End to end against one broker and one stream: ceiling, naive, casewatch.

    .venv/bin/python bench/throughput.py [--events 200000] [--stream log|walks]
        [--anomaly-rate 0.05] [--case-length 5] [--open-cases 1000]
        [--policy close|every-event|both] [--naive-fraction 0.1] [--backlog 20000]

The stream (``--stream log``, the default) replays the held-out half of the bundled log with
``--anomaly-rate`` of its cases anomalous, like a user's process; ``--stream walks`` uses random
walks of exactly ``--case-length`` events, which are nearly all anomalous. Long cases are always
walks (200 events against 5, so case length is the only difference).

Broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else ``casewatch broker`` in a subprocess. Each
contender gets fresh topics. A feeder process produces the stream, stamping each event with its
send time and staying at most ``--backlog`` events ahead of the contender; a collector process
reads the evaluations. Per contender: events/s from the first produce to the last evaluation
delivered (casewatch: and its offsets committed for every partition), then a second, paced run
at half that rate for p50/p99 event-to-evaluation latency (casewatch: also the pipe ceiling paced
at the same rate, the latency floor of this broker and machine), and peak RSS (VmHWM) of the
contender's process. The naive evaluator is measured on the stream's first ``--naive-fraction``
of cases (same generator, whole cases), because it is too slow for the full stream.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from _contenders import ceiling, naive, pipe
from _feed import (
    FETCH,
    Shared,
    broker,
    collector,
    committed,
    cpu_seconds,
    end_offsets,
    events_consumed,
    feeder,
    machine_cpu,
    peak_rss,
    thread_cpu,
    tree_cpu,
    wait_balanced,
    wait_ready,
    write_stream,
)
from _replayed import anomalous_share, replayed
from _report import Result, memory_line, report
from _synthetic import REFERENCE_MODEL, ROOT, Stream, encode, first_cases, generate
from casewatch.kafka.broker import ensure_topics

CTX = mp.get_context("spawn")
_SCRAPE_SECONDS = 0.1  # scrapes run on the daemon's HTTP thread: keep them rare


class Bench:
    def __init__(
        self, bootstrap: str, args: argparse.Namespace, workdir: Path, broker_pid: int | None
    ) -> None:
        self.bootstrap = bootstrap
        self.broker_pid = broker_pid
        self.args = args
        self.workdir = workdir

    def shared(self) -> Shared:
        return Shared(
            CTX.Value("q", 0), CTX.Value("d", 0.0), CTX.Value("d", 0.0), CTX.Event(),
            CTX.Value("q", 0), CTX.Value("d", 0.0),
        )  # fmt: skip

    def topics(self, name: str) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:8]
        topics = {k: f"bench-{name}-{k}-{suffix}" for k in ("input", "output", "dlq")}
        counts = ensure_topics(self.bootstrap, topics.values())
        self.partitions = counts[topics["input"]]
        return topics

    def run(
        self, name: str, stream: Stream, every_event: bool, rate: float, workers: int = 1
    ) -> Result:
        """One pass of ``stream`` through one contender; ``rate`` > 0 paces the feeder."""
        path = self.workdir / f"{name}.stream"
        write_stream(path, *encode(stream))
        topics = self.topics(name.split(maxsplit=1)[0])
        total = len(stream)
        expected = total if every_event else sum(stream.closes)
        shared, collected = self.shared(), self.shared()
        receive, send = CTX.Pipe(duplex=False)
        processes: list[Any] = []
        daemon: subprocess.Popen[bytes] | None = None
        group = f"bench-{uuid.uuid4().hex[:8]}"
        wait = self.args.batch_wait_ms / 1000
        try:
            if name.startswith("ceiling pipe"):
                contender = CTX.Process(
                    target=pipe,
                    args=(self.bootstrap, topics["input"], topics["output"], self.partitions,
                          total, wait, shared),
                )  # fmt: skip
            elif name.startswith("ceiling"):
                contender = CTX.Process(
                    target=ceiling,
                    args=(self.bootstrap, topics["input"], self.partitions, total, wait, shared),
                )
            elif name.startswith("naive"):
                contender = CTX.Process(
                    target=naive,
                    args=(self.bootstrap, topics["input"], topics["output"], self.partitions,
                          total, every_event, str(REFERENCE_MODEL), wait, shared),
                )  # fmt: skip
            else:
                contender = None
                daemon = self.start_daemon(topics, group, every_event, workers)
            if contender is not None:
                contender.start()
                processes.append(contender)
                shared.ready.wait(60)
                pid = contender.pid
            else:
                assert daemon is not None
                pid = daemon.pid
                daemon_cpu = tree_cpu(pid)
                threads_before = thread_cpu(pid)
            # Paced runs measure latency, so the pipe ceiling gets a collector then too.
            collects = not name.startswith("ceiling") or rate > 0
            if collects:
                # The collector paces the feeder for the daemon; the naive one reports itself.
                collected.progress = shared.progress
                watcher = CTX.Process(
                    target=collector,
                    args=(self.bootstrap, topics["output"], self.partitions, expected,
                          collected, send),
                )  # fmt: skip
                watcher.start()
                processes.append(watcher)
                collected.ready.wait(60)
            feed = CTX.Process(
                target=feeder,
                args=(self.bootstrap, topics["input"], str(path), self.args.backlog, rate, shared),
            )
            feed.start()
            processes.append(feed)
            result = Result(name, total)
            done = collected if collects else shared
            latencies: list[float] = []
            deadline = time.time() + self.args.timeout
            scraped = 0.0
            load = None
            while done.done_at.value == 0 and time.time() < deadline:
                time.sleep(0.01 if load is None else 0.05)
                if load is None and shared.first_sent.value:
                    load = self.load_meter()  # from the first produce, as the rate
                if daemon is not None and time.time() - scraped > _SCRAPE_SECONDS:
                    # The daemon's own count paces the feeder: evaluations cannot, since a
                    # long case yields none until it closes, and commits wait for closes too.
                    scraped = time.time()
                    consumed = events_consumed(self.metrics)
                    with shared.progress.get_lock():
                        shared.progress.value = max(shared.progress.value, consumed)
                if daemon is not None and daemon.poll() is not None:
                    raise RuntimeError(f"daemon exited with {daemon.returncode}")
            if done.done_at.value == 0:
                raise RuntimeError(f"{name}: not finished after {self.args.timeout} s")
            end = done.done_at.value
            if collects:
                latencies = receive.recv()[0]
            if daemon is not None:
                evaluated = end
                end = max(end, self.wait_committed(topics["input"], group, deadline))
                result.notes.append(f"committed {end - evaluated:.2f} s after the last evaluation")
            if daemon is not None:
                result.rss = peak_rss(pid)
                result.cpu = tree_cpu(pid) - daemon_cpu
                threads = thread_cpu(pid)
                spent = {k: v - threads_before.get(k, 0.0) for k, v in threads.items()}
                busiest = sorted(spent.items(), key=lambda item: -item[1])[:3]
                result.notes.append(
                    "CPU s by thread: " + ", ".join(f"{k} {v:.1f}" for k, v in busiest)
                )
            else:
                contender.join(30)
                result.rss = shared.rss.value
                result.cpu = shared.cpu.value
            result.rate = total / (end - shared.first_sent.value)
            if load is not None:
                note, result.own_cores, result.other_cores = load(result.cpu)
                result.notes.append(note)
            if latencies:
                ms = np.percentile(np.asarray(latencies) * 1000, [50, 99])
                result.p50_ms, result.p99_ms = float(ms[0]), float(ms[1])
            return result
        finally:
            if daemon is not None:
                daemon.terminate()
                daemon.wait(30)
            for process in processes:
                process.join(5)
                if process.is_alive():
                    process.terminate()

    def load_meter(self) -> Any:
        """Call it once the run is done, with the contender's CPU seconds: where the machine's
        cores went meanwhile (a note; the contender's cores; everything else's)."""
        started, (busy, stolen) = time.time(), machine_cpu()
        broker = cpu_seconds(self.broker_pid) if self.broker_pid else 0.0

        def line(contender_cpu: float) -> tuple[str, float, float]:
            wall = time.time() - started
            now_busy, now_stolen = machine_cpu()
            used = (now_busy - busy) / wall
            brokered = (cpu_seconds(self.broker_pid) - broker) / wall if self.broker_pid else 0
            own = contender_cpu / wall
            rest = max(0.0, used - own - brokered)
            note = (
                f"cores busy {used:.2f} of {os.cpu_count()} (contender {own:.2f}, broker "
                f"{brokered:.2f}, feeder+collector+other {rest:.2f}; "
                f"stolen {(now_stolen - stolen) / wall:.2f})"
            )
            return note, own, brokered + rest

        return line

    def start_daemon(
        self, topics: dict[str, str], group: str, every_event: bool, workers: int
    ) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEWATCH_")}
        settings = {
            "BOOTSTRAP_SERVERS": self.bootstrap, "INPUT_TOPIC": topics["input"],
            "OUTPUT_TOPIC": topics["output"], "DLQ_TOPIC": topics["dlq"], "GROUP_ID": group,
            "MODEL_PATH": str(REFERENCE_MODEL), "METRICS_HOST": "127.0.0.1",
            "METRICS_PORT": "0", "SCORE_POLICY": "every-event" if every_event else "close",
            "COMMIT_INTERVAL_SECONDS": str(self.args.commit_interval), "LOG_FORMAT": "json",
            "KAFKA__FETCH_WAIT_MAX_MS": str(FETCH["fetch.wait.max.ms"]),
            "MAX_BATCH_WAIT_MS": str(self.args.batch_wait_ms), "WORKERS": str(workers),
        }  # fmt: skip
        env.update({f"CASEWATCH_{k}": v for k, v in settings.items()})
        env.update({k.removeprefix("BENCH_"): v for k, v in os.environ.items()
                    if k.startswith("BENCH_CASEWATCH_")})  # fmt: skip
        log = (self.workdir / f"daemon-{group}.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "casewatch", "run"], env=env, stdout=log,
            stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        self.metrics = wait_ready(self.workdir / f"daemon-{group}.log", daemon)
        if workers > 1:
            wait_balanced(self.metrics, workers, self.partitions)
        return daemon

    def wait_committed(self, topic: str, group: str, deadline: float) -> float:
        ends = end_offsets(self.bootstrap, topic, self.partitions)
        while time.time() < deadline:
            if committed(self.bootstrap, group, topic, self.partitions) == ends:
                return time.time()
            time.sleep(0.05)
        raise RuntimeError("daemon did not commit every input offset in time")


def measure(
    bench: Bench,
    name: str,
    stream: Stream,
    every_event: bool,
    *,
    latency: bool = True,
    workers: int = 1,
) -> Result:
    """Max rate first, then a paced run at half of it for latency (peak RSS of the max run)."""
    args = bench.args
    result = bench.run(name, stream, every_event, rate=0, workers=workers)
    if workers > 1:
        result.notes.insert(0, "RSS of the supervising process only")
    if name.startswith("ceiling") or args.latency_seconds <= 0 or not latency:
        # Latency at the maximum rate is queueing in the backlog, not a figure of the daemon.
        result.p50_ms = result.p99_ms = None
        return result
    paced_rate = result.rate / 2
    paced = make_stream(args, max(100, int(paced_rate * args.latency_seconds)), seed=11)
    measured = bench.run(name + " paced", paced, every_event, rate=paced_rate)
    result.p50_ms, result.p99_ms = measured.p50_ms, measured.p99_ms
    note = f"latency at {paced_rate:,.0f}/s"
    if measured.own_cores is not None and measured.other_cores is not None:
        note += f", {measured.own_cores:.2f} cores busy (the rest {measured.other_cores:.2f})"
    if name.startswith("casewatch"):
        # The same stream at the same rate through the pipe ceiling: the latency floor.
        floor = bench.run("ceiling pipe paced", paced, True, rate=paced_rate)
        result.floor_p99_ms = floor.p99_ms
        note += f" (pipe ceiling: {_percentiles(floor)})"
    result.notes.append(note)
    return result


def _percentiles(result: Result) -> str:
    if result.p50_ms is None or result.p99_ms is None:
        return "no latencies"
    return f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"


def make_stream(args: argparse.Namespace, events: int, *, seed: int = 7) -> Stream:
    if args.stream == "log":
        return replayed(events, args.anomaly_rate, args.open_cases, seed=seed)
    cases = max(1, events // args.case_length)
    return generate(cases, args.case_length, args.open_cases, seed=seed)


def describe(args: argparse.Namespace, stream: Stream) -> str:
    cases = sum(stream.closes)
    if args.stream == "log":
        share = anomalous_share(args.anomaly_rate)
        return (
            f"{len(stream):,} events in {cases:,} held-out cases of the bundled log "
            f"(mean {len(stream) / cases:.1f} events, {share:.1%} anomalous)"
        )
    return f"{len(stream):,} events, {cases:,} walks of {args.case_length}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--stream", choices=["log", "walks"], default="log")
    parser.add_argument(
        "--anomaly-rate", type=float, default=0.05,
        help="share of anomalous cases in the replayed log (its native rate is about 0.3)",
    )  # fmt: skip
    parser.add_argument("--case-length", type=int, default=5, help="walks: events per case")
    parser.add_argument("--open-cases", type=int, default=1000)
    parser.add_argument(
        "--policy", choices=["close", "every-event", "both"], default="both",
        type=lambda value: "every-event" if value == "every_event" else value,
    )  # fmt: skip
    parser.add_argument("--naive-fraction", type=float, default=0.1)
    parser.add_argument("--contenders", default="ceiling,naive,casewatch")
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=6.0)
    parser.add_argument("--commit-interval", type=float, default=0.25)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--long-case-length", type=int, default=200, help="0 skips the run")
    parser.add_argument("--workers", type=int, default=2, help="1 skips the workers run")
    parser.add_argument(
        "--memory-cases", type=int, default=100_000, help="open cases for bytes/case; 0 skips"
    )
    parser.add_argument(
        "--batch-wait-ms", type=int, default=100,
        help="longest wait for a consume batch to fill, for every contender "
        "(CASEWATCH_MAX_BATCH_WAIT_MS, default as in the daemon)",
    )  # fmt: skip
    args = parser.parse_args()
    policies = ["close", "every-event"] if args.policy == "both" else [args.policy]
    stream = make_stream(args, args.events)
    small = first_cases(stream, args.naive_fraction)
    bootstrap, broker_process = broker()
    print(
        f"{describe(args, stream)}, {args.open_cases} open; naive on {len(small):,} events; "
        f"broker {'external' if broker_process is None else 'embedded'}; "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="casewatch-bench-") as workdir:
            pid = broker_process.pid if broker_process is not None else None
            bench = Bench(bootstrap, args, Path(workdir), pid)
            wanted = args.contenders.split(",")
            if "ceiling" in wanted:
                results.append(measure(bench, "ceiling read", stream, False))
                results.append(measure(bench, "ceiling pipe", stream, False))
            for policy in policies:
                every = policy == "every-event"
                if "naive" in wanted:
                    results.append(measure(bench, f"naive {policy}", small, every))
                if "casewatch" in wanted:
                    results.append(measure(bench, f"casewatch {policy}", stream, every))
            if "casewatch" in wanted and "close" in policies:
                results.extend(scaling(bench, args, stream))
    finally:
        if broker_process is not None:
            broker_process.terminate()
            broker_process.wait(10)
    report(results)
    if "casewatch" in wanted and args.memory_cases > 0:
        print(memory_line(args.memory_cases))


def scaling(bench: Bench, args: argparse.Namespace, stream: Stream) -> list[Result]:
    """Close policy with long cases against short ones, and with two workers: max rate only."""
    results = []
    if args.long_case_length > 0:
        short_length = args.case_length
        if args.stream == "log":
            # Long cases are walks: the short ones they are read against must be walks too.
            short = generate(max(1, args.events // short_length), short_length, args.open_cases)
            name = f"casewatch close walks {short_length}-event"
            results.append(measure(bench, name, short, False, latency=False))
        long_stream = generate(
            max(1, args.events // args.long_case_length), args.long_case_length, args.open_cases
        )
        name = f"casewatch close walks {args.long_case_length}-event"
        results.append(measure(bench, name, long_stream, False, latency=False))
    if args.workers > 1:
        name = f"casewatch close workers={args.workers}"
        results.append(measure(bench, name, stream, False, latency=False, workers=args.workers))
    return results


if __name__ == "__main__":
    main()
