"""The broker a benchmark runs against: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else an embedded one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from casewatch.kafka.broker import embedded_broker


@contextlib.contextmanager
def broker() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
    else:
        with embedded_broker() as bootstrap:
            yield bootstrap
