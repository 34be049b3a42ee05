"""Fitting, calibrating and exporting the reference scorer, and writing its model card."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from casewatch._contract import embed_contract, read_contract
from casewatch._export import build_model
from casewatch._logs import Trace
from casewatch._ngram import fit_ngram
from casewatch._offline import OfflineResult, replay
from casewatch._scorer import Scorer
from casewatch._threshold import DEFAULT_FALSE_ALARM_RATE, ThresholdMethod, calibrate


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


def split(traces: Sequence[Trace], fraction: float) -> tuple[list[Trace], list[Trace]]:
    """The first ``fraction`` of cases (file order) and the rest."""
    cut = max(1, min(len(traces), math.ceil(len(traces) * fraction)))
    return list(traces[:cut]), list(traces[cut:])


def train(traces: Sequence[Trace], out: Path, options: TrainOptions, *, source: str) -> TrainReport:
    """Fit on the training share, calibrate without labels, export, and score the rest."""
    training, held_out = split(traces, options.train_fraction)
    tables = fit_ngram(training, order=options.order)
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
        threshold=0.0,  # replaced once calibrated
        threshold_method=options.threshold_method,
        description=description,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    # The threshold comes from the training cases scored by the same evaluator the daemon runs.
    training_scores = replay(training, Scorer(out), policy="close").scores
    threshold = calibrate(training_scores, options.threshold_method, options.false_alarm_rate)
    flag_rate = float(np.mean(training_scores > threshold))
    uses_rate = options.threshold_method in ("mode", "evt")
    contract = read_contract(model, origin=str(out)).model_copy(
        update={
            "threshold": threshold,
            "false_alarm_rate": options.false_alarm_rate if uses_rate else None,
            "expected_flagged_share": flag_rate,
        }
    )
    embed_contract(model, contract)
    onnx.save(model, str(out))
    held = replay(held_out, Scorer(out), policy="close") if held_out else None
    card = out.with_suffix(".md")
    card.write_text(
        model_card(
            out,
            contract_text=contract.to_json(),
            options=options,
            source=source,
            training=training,
            held_out=held,
            threshold=threshold,
            flag_rate=flag_rate,
            attributes=tables.attribute_names,
            order=tables.order,
        ),
        encoding="utf-8",
    )
    return TrainReport(
        path=out,
        card=card,
        threshold=threshold,
        training_cases=len(training),
        training_flag_rate=flag_rate,
        held_out=held,
    )


def model_card(
    path: Path,
    *,
    contract_text: str,
    options: TrainOptions,
    source: str,
    training: Sequence[Trace],
    held_out: OfflineResult | None,
    threshold: float,
    flag_rate: float,
    attributes: list[str],
    order: int,
) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    n_events = sum(len(t.events) for t in training)
    activities = len({e.name for t in training for e in t.events})
    lines = [
        f"# Model card: {options.name} {options.version}",
        "",
        f"- File: `{path.name}` (sha256 `{digest}`)",
        f"- Trained: {dt.datetime.now(dt.UTC).date().isoformat()} by `casewatch train`",
        f"- Data: `{Path(source).name}`, first {len(training)} cases in file order "
        f"(train fraction {options.train_fraction}), {n_events} events, {activities} activities. "
        "Labels in the log are never read for training or for the threshold.",
        "",
        "## Features and scoring",
        "",
        f"- Inputs: the last {options.sequence_length} activity ids of the case (start-padded), "
        "the per-event categorical attributes of those events, n_events and the closed flag.",
        f"- Transitions: {order}-gram probabilities, Witten-Bell interpolated with shorter "
        "contexts down to a unigram that keeps for an unseen activity the share of distinct "
        "activities among the training events; the end of a closed case is scored as END given "
        "the last activity only (logs cut while cases were running end after contexts complete "
        "cases never end after).",
        f"- Per-event attributes: {', '.join(attributes) or 'none'}. Each value is scored "
        "against a mixture of 'same value as the case's previous event' (weight learnt per "
        "activity) and its distribution given the activity, Witten-Bell smoothed so that "
        "long-tailed attributes expect unseen values. A first event's value counts only when "
        "both its activity and the next event find it odd (a rare value the case keeps is the "
        "case's own); a case's only event is not judged on its attributes.",
        "- Each feature's surprises are scaled down so that their training 99th percentile is at "
        "most log 100 for the activities and log 7 for each attribute: a feature that is noisy "
        "on normal cases cannot dominate sharp ones, and a legitimate attribute value unseen in "
        "training does not outweigh a transition the process never makes.",
        "- Event score: log(max_j p(j | context)) - log p(observed | context), so 0 means the most "
        "expected event and unknown activities or values score high.",
        "- Per-transition residual: the largest event score among the case's events of that "
        "activity (END charged to the last activity). Trace score: the largest residual "
        "(a sum would grow with case length and hide one impossible event among many normal ones).",
        "- Cases longer than the ring are judged on the events the ring still holds plus END.",
        "",
        "## Threshold",
        "",
        f"- Method: `{options.threshold_method}` on the training cases' scores, no labels "
        f"(see `casewatch._threshold`), false-alarm rate {options.false_alarm_rate:g}. "
        f"Threshold = {threshold:.4f}; {flag_rate:.1%} of training cases score above it "
        "(the expected flagged share, also in the contract).",
        "- `mode`: Otsu's split when the cases above it form a mode of their own (median "
        "likelihood ratio at least 20), else SPOT (generalized Pareto tail) at the false-alarm "
        "rate, so a log without a separate anomalous mode gets about that share of alerts. "
        "Chosen over SPOT alone, DAPNN's lowest plateau, Otsu and a 2-component mixture on the "
        "shared logs at both anomalous shares (`bench/threshold_methods.py`). It never goes "
        "below a likelihood ratio of 10.",
        "",
        "## Measured quality",
        "",
    ]
    if held_out is not None and held_out.quality is not None:
        q = held_out.quality
        lines += [
            f"Held-out cases (the remaining {q.n_cases} cases; case level; anomalous = any "
            "injected anomaly):",
            "",
            "| precision | recall | F1 | PR-AUC | flagged | anomalous |",
            "|---|---|---|---|---|---|",
            f"| {q.precision:.3f} | {q.recall:.3f} | {q.f1:.3f} | {q.pr_auc:.3f} | "
            f"{q.n_flagged} | {q.n_anomalous} |",
        ]
    else:
        lines.append("No labelled held-out cases were available at training time.")
    lines += ["", "## Contract", "", "```json", contract_text, "```", ""]
    return "\n".join(lines)
