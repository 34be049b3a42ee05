"""The model card written next to each trained model: what it reads, how it scores, how it was
calibrated and what it measured on held-out cases."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from casewatch.offline.logs.trace import Trace
from casewatch.offline.replay import OfflineResult


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What training learnt and measured, for the card."""

    name: str
    version: str
    source: str
    train_fraction: float
    sequence_length: int
    order: int
    attributes: list[str]
    threshold_method: str
    false_alarm_rate: float
    threshold: float
    flag_rate: float
    later_flag_rate: float | None = None


def model_card(
    path: Path,
    facts: CardFacts,
    *,
    contract_text: str,
    training: Sequence[Trace],
    held_out: OfflineResult | None,
) -> str:
    lines = [
        *_header(path, facts, training),
        *_scoring(facts),
        *_threshold(facts),
        "## Measured quality",
        "",
        *_quality(held_out),
        "",
        "## Contract",
        "",
        "```json",
        contract_text,
        "```",
        "",
    ]
    return "\n".join(lines)


def _header(path: Path, facts: CardFacts, training: Sequence[Trace]) -> list[str]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    n_events = sum(len(t.events) for t in training)
    activities = len({e.name for t in training for e in t.events})
    return [
        f"# Model card: {facts.name} {facts.version}",
        "",
        f"- File: `{path.name}` (sha256 `{digest}`)",
        f"- Trained: {dt.datetime.now(dt.UTC).date().isoformat()} by `casewatch train`",
        f"- Data: `{Path(facts.source).name}`, first {len(training)} cases in file order "
        f"(train fraction {facts.train_fraction}), {n_events} events, {activities} activities. "
        "Labels in the log are never read for training or for the threshold.",
        "",
    ]


def _scoring(facts: CardFacts) -> list[str]:
    return [
        "## Features and scoring",
        "",
        f"- Inputs: the last {facts.sequence_length} activity ids of the case (start-padded), "
        "the per-event categorical attributes of those events, n_events and the closed flag.",
        f"- Transitions: {facts.order}-gram probabilities, Witten-Bell interpolated with shorter "
        "contexts down to a unigram that keeps for an unseen activity the share of distinct "
        "activities among the training events; the end of a closed case is scored as END given "
        "the last activity only (logs cut while cases were running end after contexts complete "
        "cases never end after).",
        f"- Per-event attributes: {', '.join(facts.attributes) or 'none'}. Each value is scored "
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
        "- Cases longer than the ring are judged on the events the ring still holds plus END "
        "when scored on close. Scored on every event, the model is scored incrementally (it "
        "declares a window of its n-gram order): a long case keeps the largest score and "
        "residuals of all its events, also those the ring has forgotten; a case restored from "
        "the changelog or carried over to another model starts again from its ring.",
        "",
    ]


def _threshold(facts: CardFacts) -> list[str]:
    return [
        "## Threshold",
        "",
        f"- Method: `{facts.threshold_method}` on the training cases' scores, no labels "
        f"(see `casewatch.offline.threshold`), false-alarm rate {facts.false_alarm_rate:g}. "
        f"Threshold = {facts.threshold:.4f}; {facts.flag_rate:.1%} of training cases score "
        "above it (the expected flagged share, also in the contract).",
        "- `mode`: Otsu's split when the cases above it form an anomalous mode (median "
        "likelihood ratio at least 20 and 8 times that of the median case below the split, at "
        "most 40% of the cases), else SPOT (generalized "
        "Pareto tail) at the false-alarm rate, so a log without an anomalous mode gets about "
        "that share of alerts. "
        "Chosen over SPOT alone, DAPNN's lowest plateau, Otsu and a 2-component mixture on the "
        "shared logs at both anomalous shares (`bench/threshold_methods.py`). It never goes "
        "below a likelihood ratio of 10.",
        *_on_time(facts),
        "",
    ]


def _on_time(facts: CardFacts) -> list[str]:
    if facts.later_flag_rate is None:
        return ["- Too few training cases to replay the recipe on time."]
    return [
        "- Replayed on time (fitted and thresholded on the earlier half of the training cases, "
        f"scored on the later half): {facts.later_flag_rate:.1%} of the later cases flagged. "
        "That is the alert volume to expect on cases the model has not seen; above 40% the "
        "in-sample scores do not describe new cases (the process changes faster than training "
        "captures it) and the threshold of `mode` and `evt` is raised to SPOT on the later "
        "half's scores.",
    ]


def _quality(held_out: OfflineResult | None) -> list[str]:
    if held_out is not None and held_out.quality is not None:
        q = held_out.quality
        return [
            f"Held-out cases (the remaining {q.n_cases} cases; case level; anomalous = any "
            "injected anomaly):",
            "",
            "| precision | recall | F1 | PR-AUC | flagged | anomalous |",
            "|---|---|---|---|---|---|",
            f"| {q.precision:.3f} | {q.recall:.3f} | {q.f1:.3f} | {q.pr_auc:.3f} | "
            f"{q.n_flagged} | {q.n_anomalous} |",
        ]
    return ["No labelled held-out cases were available at training time."]
