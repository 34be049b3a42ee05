"""The report's charts as inline SVG: a score histogram, precision/recall curves, recall bars.

Hand-written so the report has no dependency and no script: the same numbers give the same
bytes. Every mark carries a class (``bar``, ``point``, ``threshold``) so a test can count what
was drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import numpy.typing as npt

__all__ = ["Curves", "histogram", "precision_recall", "recall_bars", "score_range"]

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 16, 40
NORMAL, ANOMALOUS, THRESHOLD = "#7a9cc6", "#d9534f", "#222"
PRECISION, RECALL = "#2b7bb9", "#e08a1e"
BINS = 40

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class _Frame:
    """Maps data coordinates into the plot area."""

    x_max: float
    y_max: float

    def x(self, value: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * min(value, self.x_max) / self.x_max

    def y(self, value: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * value / self.y_max


def _svg(label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}">'
        + "".join(body)
        + "</svg>"
    )


def _axes(frame: _Frame, x_label: str, y_label: str, y_ticks: Sequence[float]) -> list[str]:
    base, left = HEIGHT - BOTTOM, LEFT
    parts = [
        f'<line x1="{left}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#444"/>',
        f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{base}" stroke="#444"/>',
        f'<text x="{(WIDTH + LEFT) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" '
        f'font-size="12">{escape(x_label)}</text>',
        f'<text x="12" y="{(HEIGHT - BOTTOM + TOP) / 2:.0f}" text-anchor="middle" font-size="12" '
        f'transform="rotate(-90 12 {(HEIGHT - BOTTOM + TOP) / 2:.0f})">{escape(y_label)}</text>',
    ]
    for tick in y_ticks:
        y = frame.y(tick)
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{tick:g}</text>"
            f'<line x1="{left}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>'
        )
    for tick in _nice_ticks(frame.x_max):
        x = frame.x(tick)
        parts.append(
            f'<text x="{x:.1f}" y="{base + 15}" text-anchor="middle" font-size="11">{tick:g}</text>'
        )
    return parts


def _nice_ticks(top: float, count: int = 5) -> list[float]:
    raw = top / count
    magnitude = 10 ** np.floor(np.log10(raw)) if raw > 0 else 1.0
    step = float(min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), default=raw))
    return [round(i * step, 10) for i in range(int(top / step) + 1)]


def _threshold_line(frame: _Frame, threshold: float) -> str:
    x = frame.x(threshold)
    return (
        f'<line class="threshold" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" '
        f'stroke="{THRESHOLD}" stroke-width="1.5" stroke-dasharray="5 3"/>'
        f'<text x="{x + 4:.1f}" y="{TOP + 26}" font-size="11">threshold {threshold:.2f}</text>'
    )


def score_range(scores: FloatArray, threshold: float) -> float:
    """Upper end of the score axis: the bulk of the scores and the threshold, not the outliers."""
    top = float(np.quantile(scores, 0.995)) if scores.size else 0.0
    return max(top, threshold * 1.5, 1e-9)


def histogram(scores: FloatArray, labels: BoolArray, threshold: float) -> str:
    """Case counts per score bin, anomalous cases stacked on normal ones; scores above the
    axis fall into the last bin."""
    frame_x = score_range(scores, threshold)
    edges = np.linspace(0.0, frame_x, BINS + 1)
    bins = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, BINS - 1)
    normal = np.bincount(bins[~labels], minlength=BINS)
    anomalous = np.bincount(bins[labels], minlength=BINS)
    peak = max(int((normal + anomalous).max()) if scores.size else 1, 1)
    ticks = _nice_ticks(peak)
    if ticks[-1] < peak:
        ticks.append(ticks[-1] + (ticks[1] if len(ticks) > 1 else peak))
    frame = _Frame(frame_x, ticks[-1])
    body = _axes(frame, "case score", "cases", ticks)
    width = (WIDTH - LEFT - RIGHT) / BINS
    for i in range(BINS):
        x = LEFT + i * width
        stacked = 0
        for count, colour in ((int(normal[i]), NORMAL), (int(anomalous[i]), ANOMALOUS)):
            if count:
                top, bottom = frame.y(stacked + count), frame.y(stacked)
                body.append(
                    f'<rect class="bar" x="{x + 0.5:.1f}" y="{top:.1f}" width="{width - 1:.1f}" '
                    f'height="{bottom - top:.1f}" fill="{colour}"><title>{count} cases, '
                    f"score {edges[i]:.2f}-{edges[i + 1]:.2f}</title></rect>"
                )
                stacked += count
    body.append(_threshold_line(frame, threshold))
    body.extend(_legend([("normal", NORMAL), ("anomalous (label)", ANOMALOUS)], TOP + 8))
    return _svg("score distribution", body)


def _legend(entries: list[tuple[str, str]], top: float) -> list[str]:
    parts = []
    for i, (name, colour) in enumerate(entries):
        x = WIDTH - RIGHT - 130
        y = top + 16 * i
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 15}" y="{y}" font-size="11">{escape(name)}</text>'
        )
    return parts


@dataclass(frozen=True, slots=True)
class Curves:
    """Precision and recall when flagging scores above each threshold."""

    thresholds: FloatArray
    precision: FloatArray
    recall: FloatArray

    @staticmethod
    def of(scores: FloatArray, labels: BoolArray, x_max: float, points: int = 80) -> Curves:
        thresholds = np.linspace(0.0, x_max, points)
        above = scores[None, :] > thresholds[:, None]
        tp = (above & labels[None, :]).sum(axis=1)
        flagged = above.sum(axis=1)
        precision = np.where(flagged > 0, tp / np.maximum(flagged, 1), 1.0)
        recall = tp / max(int(labels.sum()), 1)
        return Curves(thresholds, precision.astype(np.float64), recall.astype(np.float64))


def precision_recall(curves: Curves, threshold: float, x_max: float) -> str:
    frame = _Frame(x_max, 1.0)
    body = _axes(frame, "threshold (flag scores above it)", "share", [0, 0.25, 0.5, 0.75, 1])
    for values, colour in ((curves.precision, PRECISION), (curves.recall, RECALL)):
        xy = [(frame.x(t), frame.y(v)) for t, v in zip(curves.thresholds, values, strict=True)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body.extend(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{colour}"/>'
            for x, y in xy
        )
    body.append(_threshold_line(frame, threshold))
    # Below the top edge, where precision usually runs, and right of where recall falls.
    body.extend(_legend([("precision", PRECISION), ("recall", RECALL)], TOP + 70))
    return _svg("precision and recall against threshold", body)


def recall_bars(recalls: dict[str, float], counts: dict[str, int]) -> str:
    """One horizontal bar per anomaly type, labelled with its recall and its number of cases."""
    row, label_width = 26, 150
    height = TOP + row * max(len(recalls), 1) + 24
    span = WIDTH - label_width - 140
    body = []
    for i, (kind, recall) in enumerate(recalls.items()):
        y = TOP + i * row
        body.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{escape(kind)}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{span}" height="16" fill="#eee"/>'
            f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{span * recall:.1f}" '
            f'height="16" fill="{ANOMALOUS}"/>'
            f'<text x="{label_width + span + 6}" y="{y + 15}" font-size="12">'
            f"{recall:.1%} of {counts.get(kind, 0)} cases</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="recall per anomaly type">'
        + "".join(body)
        + "</svg>"
    )
