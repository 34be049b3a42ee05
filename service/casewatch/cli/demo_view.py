"""What ``casewatch demo`` prints after the run: the figures, and a few flagged cases explained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from casewatch.events import StreamingEvaluation
from casewatch.offline.explain import CaseExplanation, explain, pick_flagged, reason, truth
from casewatch.offline.logs import Trace
from casewatch.offline.quality import case_quality
from casewatch.scoring.scorer import Scorer

__all__ = ["DemoRun", "print_summary"]

EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class DemoRun:
    """What the run produced. ``held_out`` holds the cases the model was not trained on, ``None``
    when that is not known (a model or log of the user's own); ``in_sample`` says that the model
    was trained on the whole replayed log."""

    traces: Sequence[Trace]
    closed: Mapping[str, StreamingEvaluation]
    produced: int
    evaluations: int
    elapsed: float
    consumed: float
    held_out: frozenset[str] | None
    in_sample: bool = False


def print_summary(console: Console, run: DemoRun, scorer: Scorer | None) -> None:
    traces, closed = run.traces, run.closed
    flagged = sum(1 for e in closed.values() if e.anomalous)
    console.print(f"events produced     {run.produced:,}")
    console.print(f"cases               {len(traces):,} ({len(closed):,} evaluated closed)")
    console.print(f"evaluations         {run.evaluations:,}")
    share = f" ({flagged / len(closed):.1%} of the cases)" if closed else ""
    console.print(f"anomalies flagged   {flagged:,}{share}")
    _print_quality(console, run)
    console.print(f"throughput          {run.produced / run.elapsed:,.0f} events/s end to end")
    console.print(f"daemon consumed     {run.consumed:,.0f} events (from its metrics)")
    if scorer is not None:
        _print_examples(console, run, scorer)


def _print_quality(console: Console, run: DemoRun) -> None:
    labelled = [t for t in run.traces if t.label is not None and t.case_id in run.closed]
    if run.held_out is not None:
        labelled = [t for t in labelled if t.case_id in run.held_out]
    if not labelled:
        return
    verdicts = [run.closed[t.case_id] for t in labelled]
    quality = case_quality(
        [bool(t.label) for t in labelled],
        [v.trace_score for v in verdicts],
        [v.anomalous for v in verdicts],
    )
    console.print(
        f"against labels      precision {quality.precision:.3f}  recall {quality.recall:.3f}"
        f"  F1 {quality.f1:.3f}  ({quality.n_anomalous:,} anomalous of {quality.n_cases:,} cases)"
    )
    if run.in_sample:
        where = "in-sample: the model was trained on these cases"
    elif run.held_out is not None:
        where = "held-out: the cases after the model's training half of the log"
    else:
        where = "on every case: held-out only if the model was not trained on this log"
    console.print(f"                    {where}")


def _print_examples(console: Console, run: DemoRun, scorer: Scorer) -> None:
    pool = [t for t in run.traces if run.held_out is None or t.case_id in run.held_out]
    picked = pick_flagged(pool, run.closed, EXAMPLES)
    if not picked:
        return
    cases = [explain(trace, run.closed[trace.case_id], scorer) for trace in picked]
    console.print()
    console.print(f"[bold]{len(picked)} flagged cases[/bold] (the blamed event is marked ►)")
    if all(case.blame is not None for case in cases):
        console.print("as the evaluation records explain them: the likeliest activity or value in")
        console.print("the blamed event's place, with the model's probability for it")
    else:
        console.print(
            "residual: how much less likely an event is than the likeliest one in its place"
        )
        console.print(
            "(log ratio; 0 = what the model expects); a case's score is its largest residual"
        )
    for case in cases:
        console.print()
        for line in case_lines(case):
            console.print(line)


def case_lines(case: CaseExplanation) -> list[str]:
    """One case as rich markup: a header line, then one line per event."""
    label = truth(case)
    lines = [
        f"[bold]case {escape(case.case_id)}[/bold]  score {case.score:.2f} against threshold "
        f"{case.threshold:.2f} ({case.ratio:.1f}x){escape('; ' + label if label else '')}"
    ]
    width = max(len(e.activity) for e in case.events)
    for i, event in enumerate(case.events):
        attributes = "  ".join(f"{k} {v}" for k, v in event.attributes.items())
        text = f"{i + 1:>3}  {event.activity:<{width}}  {attributes}".rstrip()
        if event.blamed:
            lines.append(f"[bold red] ► {escape(text)}[/bold red]  {escape(reason(case))}")
        else:
            lines.append(f"   {escape(text)}")
    return lines
