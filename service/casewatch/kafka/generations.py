"""Undelivered output records, counted per producer generation.

A checkpoint waits for "everything produced before now" without waiting for what the loop
produces meanwhile: ``OutputProducer.mark`` closes the current generation and opens the next.
Each generation is one counter, and its ``report`` is the delivery callback of every record
produced in it, so a delivery report costs one call and one decrement; anything but a success
goes to the producer's ``on_failure``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Generation:
    """The records produced between two marks that have no final delivery report yet."""

    __slots__ = ("_on_failure", "number", "pending")

    def __init__(self, number: int, on_failure: Callable[[Generation, Any, Any], None]) -> None:
        self.number = number
        self.pending = 0
        self._on_failure = on_failure

    def report(self, error: Any, message: Any) -> None:
        """librdkafka's delivery callback; never raises (see ``casewatch.kafka.producer``)."""
        if error is None:
            self.pending -= 1
        else:
            self._on_failure(self, error, message)


class Generations:
    """The open generation and the older ones still waiting for delivery reports."""

    def __init__(self, on_failure: Callable[[Generation, Any, Any], None]) -> None:
        self._on_failure = on_failure
        self.current = Generation(0, on_failure)
        self._older: list[Generation] = []

    @property
    def pending(self) -> int:
        return self.current.pending + sum(g.pending for g in self._older)

    def mark(self) -> int:
        """Open a new generation; returns the number of the one just closed."""
        closed = self.current
        self._older.append(closed)
        self.current = Generation(closed.number + 1, self._on_failure)
        return closed.number

    def delivered_through(self, number: int) -> bool:
        """Whether every record of generation ``number`` and older ones has been delivered;
        never true of the open generation, which may still get records."""
        older = self._older = [g for g in self._older if g.pending]
        return self.current.number > number and all(g.number > number for g in older)
