"""The scorer's threshold and the activities anomalies are blamed on, as Prometheus series.

Both are read off the published evaluations, which carry their model, its threshold and their
top transitions; the threshold is also set when a model is loaded, so it is there before the
first case is scored. A blamed transition is always one of the model contract's activities (the
record builder names residuals by the contract's list), so the ``activity`` label set is bounded
by the contract, not by what producers send; events with activities the model does not know are
counted by ``casewatch_unknown_activities_total`` instead. A model reload may add its own names;
earlier ones keep their series so no counter ever goes back. ``MAX_ACTIVITY_LABELS`` caps the
union anyway, and ``other`` takes anything past it as well as anomalies with no blamed transition.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from casewatch.events import ModelIdentity
from casewatch.telemetry.verdicts import Verdicts

OTHER: Final = "other"
# Far above any process model's activity count (the bundled one has 25): a guard against a
# contract that lists thousands, which would make one series each.
MAX_ACTIVITY_LABELS: Final = 200


class ModelSeries:
    """``<prefix>_threshold{model, version}`` and ``<prefix>_anomalies_total{activity}``."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.threshold = Gauge(
            f"{prefix}_threshold",
            "Trace score above which an evaluation is anomalous, for the model whose "
            "evaluations are published.",
            ["model", "version"],
            registry=registry,
        )
        self.anomalies = Counter(
            f"{prefix}_anomalies",
            "Anomalous evaluations, by the activity of their top blamed transition "
            f"({OTHER}: none blamed, or past {MAX_ACTIVITY_LABELS} distinct activities).",
            ["activity"],
            registry=registry,
        )
        self._by_activity = {OTHER: self.anomalies.labels(OTHER)}
        self._model: tuple[str, str] | None = None
        self.sha256: str | None = None

    def observe(self, verdicts: Verdicts | None) -> None:
        """One batch of published evaluations: the threshold in use and the blamed activities."""
        if verdicts is None:
            return
        if verdicts.model.sha256 != self.sha256:
            self.use(verdicts.model, verdicts.threshold)
        for activity, count in Tally(OTHER if b is None else b for b in verdicts.blamed).items():
            self._child(activity).inc(count)

    def use(self, identity: ModelIdentity, threshold: float) -> None:
        """The threshold line of the model now in use."""
        model = (identity.name, identity.version)
        if self._model is not None and self._model != model:
            # One threshold line at a time: a series per model ever loaded would mislead.
            self.threshold.remove(*self._model)
        self._model = model
        self.sha256 = identity.sha256
        self.threshold.labels(*model).set(threshold)

    def _child(self, activity: str) -> Counter:
        child = self._by_activity.get(activity)
        if child is None:
            if len(self._by_activity) > MAX_ACTIVITY_LABELS:
                return self._by_activity[OTHER]
            child = self._by_activity[activity] = self.anomalies.labels(activity)
        return child

    def activities(self) -> frozenset[str]:
        """The ``activity`` label values in use."""
        return frozenset(self._by_activity)
