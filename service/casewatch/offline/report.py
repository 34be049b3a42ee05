"""The evaluation as one self-contained HTML page: charts, figures and a few flagged cases.

Everything is inline (styles and SVG; no script, no network), so the file can be mailed,
attached to an incident report or opened offline, and looks the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import numpy.typing as npt

from casewatch.events import StreamingEvaluation
from casewatch.offline.explain import CaseExplanation, explain, pick_flagged, reason, truth
from casewatch.offline.logs import Trace
from casewatch.offline.quality import CaseQuality, case_quality, recall_by_type
from casewatch.offline.replay import Policy, replay
from casewatch.offline.svg import Curves, histogram, precision_recall, recall_bars, score_range
from casewatch.scoring.scorer import Scorer

__all__ = ["ReportData", "collect", "render"]

EXAMPLES = 6

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 24px auto; max-width: 1140px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin: 22px 0 6px; }
.notes { color: #555; margin: 0 0 12px; } .grid { display: flex; flex-wrap: wrap; gap: 18px; }
.tiles { display: flex; gap: 10px; flex-wrap: wrap; margin: 10px 0; }
.tile { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.tile b { display: block; font-size: 20px; } .tile span { color: #555; font-size: 12px; }
.case { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
.case h3 { font-size: 14px; margin: 0 0 6px; } .events { display: flex; flex-wrap: wrap; gap: 4px; }
.event { background: #eef2f7; border-radius: 4px; padding: 2px 7px; font-size: 12px; }
.event small { color: #666; } .event.blamed { background: #d9534f; color: #fff; font-weight: 600; }
.event.blamed small { color: #fde; } .why { margin-top: 6px; color: #444; font-size: 13px; }
"""


@dataclass(frozen=True, slots=True)
class ReportData:
    """The final evaluation of every case and the explained examples."""

    title: str
    notes: list[str]
    threshold: float
    scores: npt.NDArray[np.float64]
    labels: npt.NDArray[np.bool_]
    flagged: npt.NDArray[np.bool_]
    types: list[str | None]
    expected_flagged_share: float | None
    cases: list[CaseExplanation]

    @property
    def quality(self) -> CaseQuality:
        return case_quality(self.labels.tolist(), self.scores.tolist(), self.flagged.tolist())


def collect(
    traces: Sequence[Trace], scorer: Scorer, *, policy: Policy, title: str, notes: list[str]
) -> ReportData:
    """Replay the labelled ``traces`` as the daemon scores them and explain a few flagged ones."""
    if not traces or any(t.label is None for t in traces):
        raise ValueError("every case needs a label for the report")
    finals: dict[str, StreamingEvaluation] = {}

    def keep(evaluation: StreamingEvaluation) -> None:
        if evaluation.closed:
            finals[evaluation.case_id] = evaluation

    result = replay(traces, scorer, policy=policy, sink=keep)
    examples = pick_flagged(traces, finals, EXAMPLES)
    return ReportData(
        title=title,
        notes=notes,
        threshold=scorer.threshold,
        scores=result.scores,
        labels=np.array([bool(t.label) for t in traces], dtype=np.bool_),
        flagged=result.flagged,
        types=[t.anomaly_type if t.label else None for t in traces],
        expected_flagged_share=scorer.contract.expected_flagged_share,
        cases=[explain(t, finals[t.case_id], scorer) for t in examples],
    )


def render(data: ReportData) -> str:
    q = data.quality
    x_max = score_range(data.scores, data.threshold)
    counts: dict[str, int] = {}
    for kind in data.types:
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + 1
    recalls = recall_by_type(data.types, data.flagged.tolist())
    sections = [
        f"<h1>{escape(data.title)}</h1>",
        *(f'<p class="notes">{escape(note)}</p>' for note in data.notes),
        _tiles(data, q),
        '<div class="grid"><div><h2>Score distribution</h2>',
        histogram(data.scores, data.labels, data.threshold),
        "</div><div><h2>Precision and recall against the threshold</h2>",
        precision_recall(Curves.of(data.scores, data.labels, x_max), data.threshold, x_max)
        if q.n_anomalous
        else "<p>No anomalous cases: precision and recall are undefined.</p>",
        "</div></div>",
        "<h2>Recall per anomaly type</h2>",
        recall_bars(recalls, counts) if recalls else "<p>No anomalous cases.</p>",
        f"<h2>Flagged cases ({len(data.cases)} of {q.n_flagged})</h2>",
        '<p class="notes">The blamed event is highlighted. Residual: how much less likely an event '
        "is than the likeliest one in its place (log ratio, 0 = what the model expects); a case's "
        "score is its largest residual.</p>",
        *(_case(case) for case in data.cases),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(data.title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )


def _tiles(data: ReportData, q: CaseQuality) -> str:
    def share(part: int) -> str:
        return f"{part / q.n_cases:.1%}" if q.n_cases else "n/a"

    tiles = [
        (f"{q.n_cases:,}", "cases"),
        (share(q.n_flagged), f"flagged ({q.n_flagged:,})"),
        (share(q.n_anomalous), f"anomalous by label ({q.n_anomalous:,})"),
        (f"{q.precision:.3f}", "precision"),
        (f"{q.recall:.3f}", "recall"),
        (f"{q.f1:.3f}", "F1"),
        (f"{q.pr_auc:.3f}", "PR-AUC"),
        (f"{data.threshold:.2f}", "threshold"),
    ]
    if data.expected_flagged_share is not None:
        tiles.append((f"{data.expected_flagged_share:.1%}", "flagged in training"))
    cells = "".join(f'<div class="tile"><b>{v}</b><span>{escape(k)}</span></div>' for v, k in tiles)
    return f'<div class="tiles">{cells}</div>'


def _case(case: CaseExplanation) -> str:
    label = escape(", " + truth(case)) if case.label is not None else ""
    chips = []
    for i, event in enumerate(case.events):
        attributes = " ".join(escape(v) for v in event.attributes.values())
        detail = f" <small>{attributes}</small>" if attributes else ""
        css = "event blamed" if event.blamed else "event"
        chips.append(f'<span class="{css}">{i + 1}. {escape(event.activity)}{detail}</span>')
    return (
        f'<div class="case"><h3>case {escape(case.case_id)}: score {case.score:.2f} against '
        f"threshold {case.threshold:.2f} ({case.ratio:.1f}x){label}</h3>"
        f'<div class="events">{"".join(chips)}</div>'
        f'<div class="why">{escape(_why(case))}</div></div>'
    )


def _why(case: CaseExplanation) -> str:
    if case.blamed_position is None:
        return "No single event is blamed."
    return f"Event {case.blamed_position + 1} ({case.blamed_activity}): {reason(case)}."
