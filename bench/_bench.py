"""One contender run of the end-to-end benchmark: topics, the contender, feeder and collector.

``Bench.run`` starts them against one broker, waits for the contender to finish (casewatch: and
to commit every input offset), and reads its figures: events/s, latencies, peak RSS, CPU, and
where the machine's cores went meanwhile.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from _contenders import ceiling, naive, pipe
from _feed import (
    FETCH,
    Shared,
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
from _report import Result
from _synthetic import REFERENCE_MODEL, ROOT, Stream, encode
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
