"""Liveness and readiness: what /healthz and /readyz answer, written by the processing loop."""

from __future__ import annotations

import time

from casewatch.errors import ConfigError


class Health:
    """Liveness and readiness state, written by the loop and read by the probe thread.

    Each write is a single attribute assignment, atomic under the GIL, so no lock is needed.
    """

    def __init__(self, liveness_timeout_seconds: float = 30.0) -> None:
        if liveness_timeout_seconds <= 0:
            raise ConfigError("liveness_timeout_seconds must be greater than 0")
        self.liveness_timeout_seconds = liveness_timeout_seconds
        self._last_beat = time.monotonic()
        self._assigned = False
        self._model_loaded = False
        self._restoring = False

    def heartbeat(self) -> None:
        self._last_beat = time.monotonic()

    def set_assigned(self, assigned: bool) -> None:
        self._assigned = assigned

    def set_model_loaded(self, loaded: bool) -> None:
        self._model_loaded = loaded

    def set_restoring(self, restoring: bool) -> None:
        self._restoring = restoring

    def liveness(self) -> tuple[bool, str]:
        silent = time.monotonic() - self._last_beat
        if silent > self.liveness_timeout_seconds:
            return False, f"processing loop silent for {silent:.0f}s"
        return True, "ok"

    def readiness(self) -> tuple[bool, str]:
        if not self._model_loaded:
            return False, "model not loaded"
        if not self._assigned:
            return False, "no partitions assigned"
        if self._restoring:
            return False, "restoring case state"
        return True, "ok"
