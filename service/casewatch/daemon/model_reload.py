"""Hot reload of the scorer, on SIGHUP or when the model file changes.

The new model is loaded and validated completely before it replaces the old one, between two
batches, so no event is scored half by one model and half by the other and none is dropped.
An invalid model leaves the old one in place, with a log line and a metric.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from casewatch.errors import CasewatchError
from casewatch.events import ModelIdentity
from casewatch.scoring.scorer import Scorer
from casewatch.telemetry.logging import get_logger
from casewatch.telemetry.metrics import Telemetry

log = get_logger(__name__)


class _Swappable(Protocol):
    @property
    def identity(self) -> ModelIdentity: ...

    @property
    def open_case_count(self) -> int: ...

    def swap_scorer(self, scorer: Scorer) -> bool: ...


@dataclass(frozen=True)
class ModelFile:
    """The scorer the daemon runs: loaded at start-up, and again from the same file on reload."""

    path: Path
    contract_path: Path | None = None
    intra_op_threads: int = 1

    def load(self) -> Scorer:
        """Raises ModelError (ContractError) when the file cannot be used."""
        return Scorer(
            self.path, contract_path=self.contract_path, intra_op_threads=self.intra_op_threads
        )


class ModelReloader:
    def __init__(
        self,
        model: ModelFile,
        evaluator: _Swappable,
        telemetry: Telemetry,
        *,
        watch_interval: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._path = model.path
        self._interval = watch_interval
        self._evaluator = evaluator
        self._telemetry = telemetry
        self._clock = clock
        self._seen = self._signature()
        self._next_check = clock() + (self._interval or 0)
        self._requested = False

    def request(self) -> None:
        """Ask for a reload at the next batch boundary (safe from a signal handler)."""
        self._requested = True

    def maybe_reload(self) -> bool:
        """Reload when asked to or when the file changed; True when a new model took over."""
        if not self._requested:
            if not self._interval or self._clock() < self._next_check:
                return False
            self._next_check = self._clock() + self._interval
            signature = self._signature()
            if signature == self._seen:
                return False
            self._seen = signature
        self._requested = False
        return self._reload()

    def _signature(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self._path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _reload(self) -> bool:
        try:
            scorer = self._model.load()
        except CasewatchError as exc:
            self._telemetry.model_load_failures.inc()
            log.error("model_reload_failed", error=str(exc), kept=self._evaluator.identity.version)
            return False
        old = self._evaluator.identity
        if scorer.identity.sha256 == old.sha256:
            return False
        migrated = self._evaluator.swap_scorer(scorer)
        new = scorer.identity
        self._telemetry.set_model(new.name, new.version, new.sha256, threshold=scorer.threshold)
        # The window was judged against the old model's baseline: start it again.
        self._telemetry.drift.use_model(scorer.training_summary, new.name)
        log.info(
            "model_loaded",
            name=new.name,
            version=new.version,
            sha256=new.sha256,
            previous_version=old.version,
            open_cases=self._evaluator.open_case_count,
            cases_carried_over="translated by label" if migrated else "unchanged",
        )
        return True
