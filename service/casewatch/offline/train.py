"""Fitting, calibrating and exporting the reference scorer, and writing its model card."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx

from casewatch.offline.export import build_model
from casewatch.offline.logs import Trace
from casewatch.offline.model_card import CardFacts, model_card
from casewatch.offline.ngram import NGramTables, fit_ngram
from casewatch.offline.replay import OfflineResult, replay
from casewatch.offline.threshold import (
    DEFAULT_FALSE_ALARM_RATE,
    ThresholdMethod,
    calibrate,
    unseen_guard,
)
from casewatch.offline.training_summary import summarise_training
from casewatch.scoring.contract import embed_contract, read_contract
from casewatch.scoring.scorer import Scorer
from casewatch.scoring.training_summary import embed_training_summary


@dataclass(frozen=True, slots=True)
class TrainOptions:
    name: str
    version: str
    order: int = 3
    sequence_length: int = 32
    threshold_method: ThresholdMethod = "mode"
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
    train_fraction: float = 1.0


@dataclass(frozen=True, slots=True)
class TrainReport:
    path: Path
    card: Path
    threshold: float
    training_cases: int
    training_flag_rate: float
    held_out: OfflineResult | None
    # Share of the later half of the training cases flagged by the recipe fitted on the earlier
    # half: the alert volume to expect on cases the model has not seen (None: too few cases).
    later_flag_rate: float | None = None


def split(traces: Sequence[Trace], fraction: float) -> tuple[list[Trace], list[Trace]]:
    """The first ``fraction`` of cases (file order) and the rest."""
    cut = max(1, min(len(traces), math.ceil(len(traces) * fraction)))
    return list(traces[:cut]), list(traces[cut:])


# Fewer training cases than this leave too few in each half to replay the recipe on time.
MIN_REPLAY_CASES = 20
RATE_METHODS = ("mode", "evt")


@dataclass(frozen=True, slots=True)
class OnTime:
    """The recipe replayed on time: fitted and thresholded on the earlier half of the training
    cases, scored on the later half."""

    later_scores: npt.NDArray[np.float64]
    flagged_share: float


def train(traces: Sequence[Trace], out: Path, options: TrainOptions, *, source: str) -> TrainReport:
    """Fit on the training share, calibrate without labels, export, and score the rest."""
    training, held_out = split(traces, options.train_fraction)
    tables = fit_ngram(training, order=options.order)
    model = _export(tables, options, out)
    # The threshold comes from the training cases scored by the same evaluator the daemon runs.
    training_scores = replay(training, Scorer(out), policy="close").scores
    threshold = calibrate(training_scores, options.threshold_method, options.false_alarm_rate)
    on_time = _replay_on_time(training, options, out)
    if on_time is not None and options.threshold_method in RATE_METHODS:
        threshold = unseen_guard(
            threshold, on_time.later_scores, on_time.flagged_share, options.false_alarm_rate
        )
    flag_rate = float(np.mean(training_scores > threshold))
    # The drift baseline: saved with the calibrated contract below.
    summary = summarise_training(
        training, training_scores, threshold=threshold, event_attributes=tables.attribute_names
    )
    embed_training_summary(model, summary)
    contract_text = _calibrated(model, out, options, threshold, flag_rate)
    held = replay(held_out, Scorer(out), policy="close") if held_out else None
    card = out.with_suffix(".md")
    facts = CardFacts(
        name=options.name, version=options.version, source=source,
        train_fraction=options.train_fraction, sequence_length=options.sequence_length,
        order=tables.order, attributes=tables.attribute_names,
        threshold_method=options.threshold_method, false_alarm_rate=options.false_alarm_rate,
        threshold=threshold, flag_rate=flag_rate,
        later_flag_rate=None if on_time is None else on_time.flagged_share,
    )  # fmt: skip
    card.write_text(
        model_card(out, facts, contract_text=contract_text, training=training, held_out=held),
        encoding="utf-8",
    )
    return TrainReport(
        path=out,
        card=card,
        threshold=threshold,
        training_cases=len(training),
        training_flag_rate=flag_rate,
        held_out=held,
        later_flag_rate=facts.later_flag_rate,
    )


def _export(tables: NGramTables, options: TrainOptions, out: Path) -> onnx.ModelProto:
    """Write the scorer with a placeholder threshold, replaced once calibrated."""
    description = (
        f"{tables.order}-gram activity model with {len(tables.attribute_names)} per-event "
        "attribute(s) scored against the activity and the case's neighbouring value; "
        "event score = log max p - log p(observed)"
    )
    model = build_model(
        tables,
        name=options.name,
        version=options.version,
        sequence_length=options.sequence_length,
        threshold=0.0,
        threshold_method=options.threshold_method,
        description=description,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return model


def _replay_on_time(training: Sequence[Trace], options: TrainOptions, out: Path) -> OnTime | None:
    """Share of the later training cases that the recipe, fitted on the earlier ones, flags."""
    if len(training) < MIN_REPLAY_CASES:
        return None
    earlier, later = split(training, 0.5)
    path = out.with_name(f".{out.stem}.earlier.onnx")
    try:
        _export(fit_ngram(earlier, order=options.order), options, path)
        scorer = Scorer(path)
        earlier_scores = replay(earlier, scorer, policy="close").scores
        later_scores = replay(later, scorer, policy="close").scores
    finally:
        path.unlink(missing_ok=True)
    threshold = calibrate(earlier_scores, options.threshold_method, options.false_alarm_rate)
    return OnTime(later_scores, float(np.mean(later_scores > threshold)))


def _calibrated(
    model: onnx.ModelProto, out: Path, options: TrainOptions, threshold: float, flag_rate: float
) -> str:
    """Write the threshold, the rate it was chosen for and the alert volume into the contract."""
    uses_rate = options.threshold_method in RATE_METHODS
    contract = read_contract(model, origin=str(out)).model_copy(
        update={
            "threshold": threshold,
            "false_alarm_rate": options.false_alarm_rate if uses_rate else None,
            "expected_flagged_share": flag_rate,
        }
    )
    embed_contract(model, contract)
    onnx.save(model, str(out))
    return contract.to_json()
