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
import os
import tempfile
from pathlib import Path

from _bench import Bench
from _feed import broker
from _replayed import anomalous_share, replayed
from _report import Result, memory_line, report
from _synthetic import Stream, first_cases, generate


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
