"""Consumer-group rebalance callbacks, kept small: they hand over to the checkpoint and evaluator.

confluent-kafka runs them inside ``consume()`` on the loop's thread, so the loop's state is never
touched concurrently. A failure inside a callback is recorded and raised by the loop afterwards,
because exceptions must not escape into librdkafka.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from casewatch._checkpoint import Checkpoint
from casewatch._outputs import OutputProducer


class _DropsPartitions(Protocol):
    def drop_partitions(self, partitions: set[int]) -> int: ...


class _Readiness(Protocol):
    def set_assigned(self, assigned: bool) -> None: ...


class Rebalance:
    """on_assign / on_revoke / on_lost for one input topic."""

    def __init__(
        self,
        *,
        checkpoint: Checkpoint,
        outputs: OutputProducer,
        evaluator: _DropsPartitions,
        health: _Readiness,
        flush_timeout: float,
        counted: Callable[[str, int], None],
    ) -> None:
        self._checkpoint = checkpoint
        self._outputs = outputs
        self._evaluator = evaluator
        self._health = health
        self._flush_timeout = flush_timeout
        self._counted = counted
        self.assigned: set[int] = set()
        self.failure: BaseException | None = None
        # Cleared after a failure: outputs of the last batch may be missing, so its input
        # must be read again by whoever takes the partitions over.
        self.commit_on_revoke = True

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned.update(tp.partition for tp in partitions)
        self._health.set_assigned(bool(self.assigned))
        self._counted("assign", len(partitions))

    def on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {tp.partition for tp in partitions}
        if self.commit_on_revoke:
            try:
                self._checkpoint.commit(consumer, self._outputs, flush_timeout=self._flush_timeout)
            except Exception as exc:  # raised by the loop once consume() returns
                self.failure = self.failure or exc
        self._release(revoked, "revoke")

    def on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # The group has moved on: committing now would be rejected, so only drop the state.
        self._release({tp.partition for tp in partitions}, "lost")

    def _release(self, partitions: set[int], kind: str) -> None:
        self._evaluator.drop_partitions(partitions)
        self._checkpoint.forget(partitions)
        self.assigned -= partitions
        self._health.set_assigned(bool(self.assigned))
        self._counted(kind, len(partitions))

    def raise_failure(self) -> None:
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
