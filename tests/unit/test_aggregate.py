"""One endpoint over several workers: counters and histograms add up, gauges stay per worker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from casewatch.telemetry.aggregate import WorkerEndpoints, merge


def exposition(consumed: int, open_cases: int, latencies: list[float]) -> str:
    registry = CollectorRegistry()
    Counter("casewatch_events_consumed", "c", registry=registry).inc(consumed)
    Gauge("casewatch_open_cases", "g", registry=registry).set(open_cases)
    histogram = Histogram("casewatch_latency_seconds", "h", buckets=(0.01, 0.1), registry=registry)
    for latency in latencies:
        histogram.observe(latency)
    return generate_latest(registry).decode()


def lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line and not line.startswith("#")}


def render(families: list[Metric]) -> str:
    registry = CollectorRegistry()

    class Fixed(Collector):
        def collect(self) -> list[Metric]:
            return families

    registry.register(Fixed())
    return generate_latest(registry).decode()


def test_counters_and_histograms_add_up_and_gauges_keep_a_worker_label() -> None:
    merged = render(merge([exposition(3, 10, [0.005]), exposition(4, 20, [0.05, 0.5])]))
    samples = lines(merged)
    assert "casewatch_events_consumed_total 7.0" in samples
    assert 'casewatch_open_cases{worker="0"} 10.0' in samples
    assert 'casewatch_open_cases{worker="1"} 20.0' in samples
    assert 'casewatch_latency_seconds_bucket{le="0.01"} 1.0' in samples
    assert 'casewatch_latency_seconds_bucket{le="0.1"} 2.0' in samples
    assert 'casewatch_latency_seconds_bucket{le="+Inf"} 3.0' in samples
    assert "casewatch_latency_seconds_count 3.0" in samples


def answers(table: dict[str, tuple[int, str]]) -> WorkerEndpoints:
    return WorkerEndpoints(["http://a", "http://b"], fetch=lambda url: table[url])


def test_a_worker_without_an_answer_contributes_its_last_one() -> None:
    table = {
        "http://a/metrics": (200, exposition(3, 1, [])),
        "http://b/metrics": (200, exposition(4, 1, [])),
    }
    endpoints = answers(table)
    list(endpoints.collect())
    table["http://b/metrics"] = (0, "")
    merged = render(list(endpoints.collect()))
    assert "casewatch_events_consumed_total 7.0" in lines(merged)
    assert "casewatch_workers_scraped 1.0" in lines(merged)
    endpoints.close()


def test_readiness_waits_for_every_worker_with_partitions() -> None:
    table = {"http://a/readyz": (200, "ok\n"), "http://b/readyz": (503, "restoring case state\n")}
    endpoints = answers(table)
    assert endpoints.readiness() == (False, "worker 1: restoring case state")
    table["http://b/readyz"] = (503, "no partitions assigned\n")
    assert endpoints.readiness() == (True, "ok")
    table["http://a/readyz"] = (0, "")
    assert endpoints.readiness() == (
        False,
        "worker 0: not answering; worker 1: no partitions assigned",
    )
    endpoints.close()


def test_liveness_names_the_silent_worker() -> None:
    table = {
        "http://a/healthz": (200, "ok\n"),
        "http://b/healthz": (503, "processing loop silent for 31s\n"),
    }
    endpoints = answers(table)
    assert endpoints.liveness() == (False, "worker 1: processing loop silent for 31s")
    endpoints.close()
