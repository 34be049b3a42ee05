"""Peaks over threshold: the score a chosen share of cases exceeds, from the tail of the scores.

SPOT (Siffer et al., KDD 2017): fit a generalized Pareto distribution to the excesses over a high
initial quantile ``u`` and read the threshold a share ``q`` of the cases exceeds from it,
``z = u + sigma / gamma * ((q n / n_u) ** -gamma - 1)``. The tail model extrapolates past the
largest training scores, so a small ``q`` still gives a threshold a few hundred cases can support.
The fit is maximum likelihood over ``theta = gamma / sigma`` (Grimshaw's reduction), on a grid:
for a fixed ``theta`` the likelihood has a closed-form maximum, so one pass over the grid finds it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float64]

INITIAL_QUANTILE = 0.98
MIN_EXCESSES = 10
_GRID = 200


def fit_pareto(excesses: Scores) -> tuple[float, float]:
    """Maximum-likelihood shape gamma and scale sigma of a generalized Pareto on the excesses."""
    y = excesses[excesses > 0]
    n, mean = y.size, float(y.mean())
    best = (-n * math.log(mean) - n, 0.0, mean)  # gamma = 0: the exponential tail
    top = float(y.max())
    thetas = np.r_[
        -np.geomspace(0.999 / top, 1e-3 / top, _GRID // 2),
        np.geomspace(1e-3 / top, 1e3 / top, _GRID),
    ]
    logs = np.log1p(thetas[:, None] * y[None, :])
    gammas = logs.mean(axis=1)
    usable = gammas != 0
    sigmas = np.where(usable, gammas / np.where(usable, thetas, 1.0), 1.0)
    usable &= sigmas > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        likelihood = -n * np.log(sigmas) - (1 / gammas + 1) * logs.sum(axis=1)
    likelihood = np.where(usable, likelihood, -np.inf)
    i = int(np.argmax(likelihood))
    if likelihood[i] > best[0]:
        return float(gammas[i]), float(sigmas[i])
    return best[1], best[2]


def spot(scores: Scores, false_alarm_rate: float) -> float:
    """The score a share ``false_alarm_rate`` of cases exceeds, by a Pareto fit of the tail."""
    level = min(INITIAL_QUANTILE, 1 - 2 * false_alarm_rate)
    initial = float(np.quantile(scores, level))
    excesses = scores[scores > initial] - initial
    if excesses.size < MIN_EXCESSES:
        return float(np.quantile(scores, 1 - false_alarm_rate))
    gamma, sigma = fit_pareto(excesses)
    ratio = false_alarm_rate * scores.size / excesses.size
    if abs(gamma) < 1e-9:
        return initial - sigma * math.log(ratio)
    return float(initial + sigma / gamma * (ratio**-gamma - 1))
