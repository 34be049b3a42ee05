"""Choosing the anomaly threshold from unlabelled training scores.

Scores of the reference scorer are log-likelihood ratios: normal cases pile up near 0, and a
case containing an event the process (almost) never produces scores far to the right. How many
such cases the training log holds is unknown: 30% in the benchmark logs, 1-10% in a real process,
none in a clean one. The methods:

- ``mode`` (the default): Otsu's split when the cases above it form an anomalous mode (their
  median is a likelihood ratio of at least 20 and at least 8 times the ratio of the median case
  below the split, and they are at most 40% of the cases), else SPOT at the false-alarm rate. A
  split inside normal variation leaves above it cases that are only mildly unusual, a split below
  a genuine anomalous mode leaves cases the process (almost) never produces: the median of the
  upper class tells the two apart. In a real log of long cases every case holds some rare event
  and the whole distribution sits high, so the upper class must also stand out from the lower;
  and a "mode" of more than 40% of the cases is how the process runs. Without an anomalous mode
  the share of cases flagged is about the false-alarm rate.
- ``evt``: SPOT (``casewatch.offline.evt``): the score the chosen share of cases exceeds, from a
  generalized Pareto fit of the tail. It flags about that share whatever the log holds, so it
  loses recall when more cases than that are anomalous.
- ``plateau``: DAPNN's lowest plateau (Lahann, Pfeiffer, Fettke 2023): the middle of the flat
  run of the anomaly-ratio curve (share of cases above each threshold) with the lowest ratio.
- ``otsu``: the split of the score histogram with the largest between-class variance. It
  assumes two modes and splits normal variation when the anomalous one is small or absent.
- ``mixture``: two Gaussians on log(1 + score) by EM, cut where the upper one becomes likelier.

Measured on the twelve shared logs, at their native anomalous share and subsampled to 5%
(``bench/threshold_methods.py``, held-out F1; the figures are in the README). ``mode`` matches
Otsu on the synthetic logs at 30% and 5% and, unlike Otsu and the mixture, keeps the flagged share
near the false-alarm rate on logs with 0-1% anomalous cases; ``evt`` is the best at 1% and the
worst at 30%; the plateau sits inside the anomalous mode on most logs.

In-sample scores flatter a process that keeps changing: every case was part of the fit, so a log
whose later cases bring activities and transitions the earlier ones never had looks calm in
training and alarming in production. ``casewatch.offline.train`` therefore also replays the
recipe on time (fit on the earlier half of the training cases, threshold from those, score the
later half). When that flags more than ``MAX_MODE_SHARE`` of the later cases, the threshold
fitted in-sample does not describe unseen cases, and ``unseen_guard`` raises it to SPOT on the
later half's scores (a share ``false_alarm_rate`` of unseen cases above it). On a process that
stays the same the replay flags about what the in-sample threshold does and nothing changes.

Whatever the method, the threshold never goes below a likelihood ratio of 10 (``FLOOR``): on a
log with no anomalies at all, a split would otherwise land inside normal variation, such as a
choice between two branches taken 1:3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

from casewatch.offline.evt import spot

ThresholdMethod = Literal["mode", "evt", "plateau", "otsu", "mixture"]
Scores = npt.NDArray[np.float64]

_BINS = 256
_PLATEAU_POINTS = 200
FLOOR = math.log(10.0)
# Median score of the cases above a split for them to count as a mode of their own.
MODE_LEVEL = math.log(20.0)
# ... and their median at least this far above the median of the cases below it.
MODE_SEPARATION = math.log(8.0)
# A "mode" holding more of the cases than this is how the process runs, not anomalies.
MAX_MODE_SHARE = 0.4
DEFAULT_FALSE_ALARM_RATE = 0.005


def otsu(scores: Scores) -> float:
    low, high = float(scores.min()), float(scores.max())
    if math.isclose(low, high):
        return high
    counts, edges = np.histogram(scores, bins=_BINS, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_below = np.cumsum(counts)
    mass_below = np.cumsum(counts * centres)
    total_weight, total_mass = weight_below[-1], mass_below[-1]
    weight_above = total_weight - weight_below
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = mass_below / weight_below
        mean_above = (total_mass - mass_below) / weight_above
        between = weight_below * weight_above * (mean_below - mean_above) ** 2
    between = np.nan_to_num(between, nan=-1.0)
    # Every split inside an empty gap between the modes scores the same; take the gap's middle
    # rather than its left edge, which hugs the normal cases.
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float((edges[best[0] + 1] + edges[best[-1] + 1]) / 2)


def mixture(scores: Scores, iterations: int = 200) -> float:
    """Where a two-component Gaussian mixture on log(1 + score) changes its mind.

    The log compresses the anomalous mode's long right tail, so both modes look Gaussian enough;
    EM starts from the Otsu split so it converges to the normal/anomalous modes rather than to two
    halves of the normal one.
    """
    x = np.log1p(np.maximum(scores, 0.0))
    split = math.log1p(otsu(scores))
    low, high = x[x <= split], x[x > split]
    if low.size < 2 or high.size < 2:
        return otsu(scores)
    weight = np.array([low.size, high.size], dtype=np.float64) / x.size
    mean = np.array([low.mean(), high.mean()])
    var = np.maximum(np.array([low.var(), high.var()]), 1e-4)
    for _ in range(iterations):
        density = weight * np.exp(-((x[:, None] - mean) ** 2) / (2 * var)) / np.sqrt(var)
        responsibility = density / np.maximum(density.sum(axis=1, keepdims=True), 1e-300)
        total = responsibility.sum(axis=0) + 1e-12
        weight = total / x.size
        mean = (responsibility * x[:, None]).sum(axis=0) / total
        var = np.maximum((responsibility * (x[:, None] - mean) ** 2).sum(axis=0) / total, 1e-4)
    upper = int(np.argmax(mean))
    grid = np.linspace(mean.min(), mean.max(), 512)
    density = weight * np.exp(-((grid[:, None] - mean) ** 2) / (2 * var)) / np.sqrt(var)
    above = np.flatnonzero(density[:, upper] >= density[:, 1 - upper])
    if above.size == 0:
        return otsu(scores)
    return float(math.expm1(grid[above[0]]))


def lowest_plateau(scores: Scores) -> float:
    """Middle of the flattest-and-lowest run of the anomaly-ratio curve, as DAPNN chooses it.

    The curve is the share of cases above each of a grid of thresholds over the score range; a
    plateau is a run of at least two grid steps where it falls by less than a tenth of an even
    decline; the lowest plateau is the one with the smallest non-zero share.
    """
    grid = np.linspace(float(scores.min()), float(scores.max()), _PLATEAU_POINTS)
    ratio = (scores[None, :] > grid[:, None]).mean(axis=1)
    flat = np.abs(np.diff(ratio)) <= 0.1 / _PLATEAU_POINTS
    runs: list[tuple[float, int, int]] = []
    start = None
    for i, is_flat in enumerate([*flat.tolist(), False]):
        if is_flat and start is None:
            start = i
        elif not is_flat and start is not None:
            if i - start >= 2 and ratio[start] > 0:
                runs.append((float(ratio[start]), start, i))
            start = None
    if not runs:
        return otsu(scores)
    _, first, last = min(runs)
    return float((grid[first] + grid[last]) / 2)


def mode_or_tail(scores: Scores, false_alarm_rate: float) -> float:
    """Otsu's split when the cases above it form an anomalous mode, else SPOT."""
    split = otsu(scores)
    upper, lower = scores[scores > split], scores[scores <= split]
    if not 0 < upper.size <= MAX_MODE_SHARE * scores.size:
        return spot(scores, false_alarm_rate)
    high = float(np.median(upper))
    if high >= MODE_LEVEL and high - float(np.median(lower)) >= MODE_SEPARATION:
        return split
    return spot(scores, false_alarm_rate)


def unseen_guard(
    threshold: float, unseen: Scores, unseen_flagged_share: float, false_alarm_rate: float
) -> float:
    """The threshold, raised to SPOT on ``unseen`` scores when the replay on time flagged more than
    ``MAX_MODE_SHARE`` of them: an alarm on most new cases says the in-sample scores missed how
    the process changes, not that most cases are anomalous."""
    finite = unseen[np.isfinite(unseen)]
    if unseen_flagged_share <= MAX_MODE_SHARE or finite.size == 0:
        return threshold
    return max(threshold, spot(finite, false_alarm_rate))


METHODS: dict[str, Callable[[Scores, float], float]] = {
    "mode": mode_or_tail,
    "evt": spot,
    "plateau": lambda scores, _: lowest_plateau(scores),
    "otsu": lambda scores, _: otsu(scores),
    "mixture": lambda scores, _: mixture(scores),
}


def calibrate(
    scores: Scores,
    method: ThresholdMethod = "mode",
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
) -> float:
    """Threshold for ``score > threshold`` flags, from unlabelled scores."""
    if not 0 < false_alarm_rate < 0.5:
        raise ValueError(f"false-alarm rate must be in (0, 0.5), got {false_alarm_rate}")
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        raise ValueError("no finite scores to calibrate on")
    return max(FLOOR, float(METHODS[method](finite, false_alarm_rate)))
