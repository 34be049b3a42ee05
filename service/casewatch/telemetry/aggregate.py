"""One metrics endpoint for several worker processes: their series merged, their probes combined.

Each worker serves its own registry on a private loopback port; the parent scrapes them when it
is scraped. Counters and histograms add up across workers (a histogram's buckets, count and sum
are each a sum, so quantiles over the container stay right); gauges and info series are
per-process facts (open cases, queue length, RSS, the last commit), so each keeps its value
under a ``worker`` label and PromQL's ``sum``/``max`` aggregates them as the question needs.

A worker that does not answer one scrape contributes its last answer, so the container's
counters never go backwards for a slow scrape. /healthz is live while every worker is live;
/readyz is ready while every worker is ready, except that a worker with no partitions (more
workers than input partitions) does not hold the others back.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

_SUMMED = frozenset({"counter", "histogram", "summary"})
_NO_PARTITIONS = "no partitions assigned"
_SCRAPE_TIMEOUT_SECONDS = 2.0

# (status, body) of one GET; status 0 when the worker did not answer.
Fetch = Callable[[str], tuple[int, str]]


def http_fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=_SCRAPE_TIMEOUT_SECONDS) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()
    except OSError:
        return 0, ""


def merge(texts: Sequence[str | None]) -> list[Metric]:
    """Families of every worker's exposition (index = worker), merged as the docstring says."""
    families: dict[str, Metric] = {}
    summed: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for worker, text in enumerate(texts):
        if text is None:
            continue
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            if family.type in _SUMMED:
                totals = summed.setdefault(family.name, {})
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    totals[key] = totals.get(key, 0.0) + sample.value
            else:
                for sample in family.samples:
                    labels = {**sample.labels, "worker": str(worker)}
                    merged.samples.append(Sample(sample.name, labels, sample.value))
    for name, totals in summed.items():
        families[name].samples.extend(
            Sample(sample_name, dict(labels), value)
            for (sample_name, labels), value in totals.items()
        )
    return list(families.values())


class WorkerEndpoints(Collector):
    """The workers' private endpoints, read on each scrape of the parent's."""

    def __init__(self, bases: Sequence[str], fetch: Fetch = http_fetch) -> None:
        self._bases = list(bases)
        self._fetch = fetch
        self._last: list[str | None] = [None] * len(bases)
        # Workers answer concurrently, so a scrape takes as long as the slowest, not the sum.
        self._pool = ThreadPoolExecutor(max(1, len(bases)), thread_name_prefix="casewatch-scrape")

    def _get_all(self, path: str) -> list[tuple[int, str]]:
        return list(self._pool.map(lambda base: self._fetch(base + path), self._bases))

    def collect(self) -> Iterable[Metric]:
        answered = 0
        for worker, (status, body) in enumerate(self._get_all("/metrics")):
            if status == 200:
                self._last[worker] = body
                answered += 1
        yield from merge(self._last)
        configured = Metric("casewatch_workers", "Worker processes in this container.", "gauge")
        configured.add_sample("casewatch_workers", {}, len(self._bases))
        yield configured
        scraped = Metric("casewatch_workers_scraped", "Workers that answered this scrape.", "gauge")
        scraped.add_sample("casewatch_workers_scraped", {}, answered)
        yield scraped

    def liveness(self) -> tuple[bool, str]:
        failing = [
            f"worker {worker}: {_reason(status, body)}"
            for worker, (status, body) in enumerate(self._get_all("/healthz"))
            if status != 200
        ]
        return (False, "; ".join(failing)) if failing else (True, "ok")

    def readiness(self) -> tuple[bool, str]:
        answers = self._get_all("/readyz")
        ready = sum(1 for status, _ in answers if status == 200)
        failing = [
            (worker, _reason(status, body))
            for worker, (status, body) in enumerate(answers)
            if status != 200
        ]
        if ready and all(reason == _NO_PARTITIONS for _, reason in failing):
            return True, "ok"
        return False, "; ".join(f"worker {worker}: {reason}" for worker, reason in failing)

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _reason(status: int, body: str) -> str:
    return (body.strip() or "not answering") if status else "not answering"
