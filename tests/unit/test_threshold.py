from __future__ import annotations

import math

import numpy as np
import pytest

from casewatch.offline.evt import fit_pareto, spot
from casewatch.offline.threshold import (
    FLOOR,
    MAX_MODE_SHARE,
    MODE_LEVEL,
    calibrate,
    lowest_plateau,
    mode_or_tail,
    otsu,
    unseen_guard,
)


def test_pareto_fit_recovers_known_tails() -> None:
    rng = np.random.default_rng(0)
    gamma, sigma = fit_pareto(rng.exponential(2.0, 20_000))
    assert abs(gamma) < 0.05 and sigma == pytest.approx(2.0, rel=0.05)
    gamma, _ = fit_pareto(rng.pareto(4.0, 20_000))  # Lomax: shape 1 / 4
    assert gamma == pytest.approx(0.25, abs=0.05)


def test_spot_flags_the_chosen_share_of_a_clean_tail() -> None:
    rng = np.random.default_rng(1)
    scores = rng.exponential(1.0, 50_000)
    for rate in (0.01, 0.001):
        threshold = spot(scores, rate)
        assert threshold == pytest.approx(-math.log(rate), rel=0.05)
    few = rng.exponential(1.0, 40)  # too few excesses for a fit: the empirical quantile
    assert spot(few, 0.05) == pytest.approx(float(np.quantile(few, 0.95)))


def test_mode_takes_the_split_when_the_cases_above_it_are_an_anomalous_mode() -> None:
    rng = np.random.default_rng(2)
    normal = np.abs(rng.normal(0.0, 0.8, 9_500))
    anomalous = rng.normal(6.0, 1.0, 500)
    scores = np.concatenate([normal, anomalous])
    threshold = mode_or_tail(scores, 0.005)
    assert threshold == otsu(scores)
    assert np.mean(anomalous > threshold) > 0.99 and np.mean(normal > threshold) < 0.01


def test_mode_falls_back_to_the_tail_without_an_anomalous_mode() -> None:
    rng = np.random.default_rng(3)
    # A skewed normal process: Otsu splits it, but the cases above are only mildly unusual.
    scores = rng.gamma(2.0, 0.6, 10_000)
    assert np.median(scores[scores > otsu(scores)]) < MODE_LEVEL
    for rate in (0.01, 0.002):
        flagged = float(np.mean(scores > calibrate(scores, "mode", rate)))
        assert flagged == pytest.approx(rate, rel=0.3)
    # Every case of a log of long cases holds some rare event: the whole distribution sits high
    # and its upper part is not a mode of its own.
    shifted = np.concatenate([rng.normal(2.5, 0.3, 7_000), rng.normal(3.8, 0.3, 3_000)])
    assert np.median(shifted[shifted > otsu(shifted)]) >= MODE_LEVEL
    assert np.mean(shifted > calibrate(shifted, "mode", 0.01)) < 0.02
    # Half of the cases far out is how this process runs, not an anomalous mode.
    bimodal = np.concatenate([rng.normal(0.5, 0.2, 5_000), rng.normal(8.0, 0.5, 5_000)])
    assert np.mean(bimodal > calibrate(bimodal, "mode", 0.01)) < 0.02


def test_lowest_plateau_sits_in_the_flat_run_of_the_ratio_curve() -> None:
    scores = np.r_[np.linspace(0.0, 1.0, 900), np.linspace(5.0, 6.0, 100)]
    assert 1.0 <= lowest_plateau(scores) <= 6.0


def test_calibrate_refuses_a_rate_outside_zero_to_a_half_and_keeps_the_floor() -> None:
    with pytest.raises(ValueError, match="false-alarm rate"):
        calibrate(np.ones(10), "mode", 0.5)
    assert calibrate(np.zeros(1000), "evt", 0.01) == FLOOR


def test_the_unseen_guard_acts_only_when_the_replay_on_time_flags_most_new_cases() -> None:
    rng = np.random.default_rng(4)
    unseen = rng.normal(11.0, 0.5, 2000)  # new cases all far above the in-sample threshold
    assert unseen_guard(5.0, unseen, MAX_MODE_SHARE, 0.01) == 5.0
    raised = unseen_guard(5.0, unseen, 0.9, 0.01)
    assert float(np.mean(unseen > raised)) == pytest.approx(0.01, abs=0.01)
    # Never lowered: unseen scores below the in-sample threshold leave it as it is.
    assert unseen_guard(20.0, unseen, 0.9, 0.01) == 20.0
