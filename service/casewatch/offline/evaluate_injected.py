"""What a user should expect on their own log: train on its first half, inject into the second.

Labels in the log are ignored. The first half of the cases (file order) trains a scorer with
the standard recipe, unless a model is given; the second half gets injected anomalies
(``casewatch.offline.inject``) and is scored the way the daemon scores it. The training half
is never changed and never scored for the figures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from casewatch.offline.evaluate import Evaluation, evaluate
from casewatch.offline.inject import Injected, inject
from casewatch.offline.logs.trace import Trace
from casewatch.offline.replay import Policy
from casewatch.offline.train import TrainOptions, TrainReport, split, train
from casewatch.scoring.scorer import Scorer

__all__ = ["InjectedEvaluation", "evaluate_injected"]

TRAIN_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class InjectedEvaluation:
    evaluation: Evaluation
    injected: Injected
    training_cases: int
    trained: TrainReport | None  # None when a model was given


def evaluate_injected(
    traces: Sequence[Trace],
    *,
    rate: float,
    seed: int,
    policy: Policy,
    workdir: Path,
    source: str,
    model: Path | None = None,
    contract: Path | None = None,
) -> InjectedEvaluation:
    """Split, train unless ``model`` is given, inject into the held-out half, and evaluate."""
    unlabelled = [Trace(t.case_id, t.events, None, None, ()) for t in traces if t.events]
    training, held_out = split(unlabelled, TRAIN_SHARE)
    if not held_out:
        raise ValueError(f"{len(unlabelled)} non-empty case(s): too few to hold half out")
    injected = inject(held_out, rate, seed=seed, known=training)
    trained = None
    if model is None:
        options = TrainOptions(
            name=f"{Path(source).name.split('.')[0]}-evaluate",
            version=dt.datetime.now(dt.UTC).strftime("%Y.%m.%d"),
        )
        trained = train(training, workdir / "evaluate.onnx", options, source=source)
        model = trained.path
    scorer = Scorer(model, contract_path=contract)
    result = evaluate(injected.traces, scorer, policy=policy)
    return InjectedEvaluation(result, injected, len(training), trained)
