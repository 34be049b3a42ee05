"""The records casewatch writes to its dead-letter topic.

Every dead-letter record names its reason (``casewatch.error.reason``, a fixed string also used as
a metric label), a one-line detail, and where it came from. Records too large for the broker are
truncated by the producer, which adds the original sizes (``casewatch.kafka.oversize``).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from casewatch.kafka.oversize import DETAIL_HEADER, REASON_HEADER, Headers
from casewatch.scoring.isolation import ScoringFailure

SCORING_FAILED: Final = "scoring_failed"
_DETAIL_BYTES = 1000
_encode = msgspec.json.Encoder().encode


def _source(topic: str | None, partition: int, offset: int) -> Headers:
    return [
        ("casewatch.source.topic", (topic or "").encode()),
        ("casewatch.source.partition", str(partition).encode()),
        ("casewatch.source.offset", str(offset).encode()),
    ]


def dead_letter(message: Any, reason: str, detail: str) -> tuple[bytes | None, bytes, Headers]:
    """Key, value and headers of the dead-letter record for an input message."""
    headers: Headers = [
        (REASON_HEADER, reason.encode()),
        (DETAIL_HEADER, detail.encode()[:_DETAIL_BYTES]),
        *_source(message.topic(), message.partition(), message.offset()),
    ]
    return message.key(), message.value() or b"", headers


def scoring_failure(failure: ScoringFailure) -> tuple[bytes, bytes, Headers]:
    """Key (the case id), value (the failure as JSON) and headers for a case the model failed on."""
    source, model = failure.source, failure.model
    headers: Headers = [
        (REASON_HEADER, SCORING_FAILED.encode()),
        (DETAIL_HEADER, failure.error.encode()[:_DETAIL_BYTES]),
        *_source(source.topic, source.partition, source.offset),
        ("casewatch.model.name", model.name.encode()),
        ("casewatch.model.version", model.version.encode()),
    ]
    return failure.case_id.encode(), _encode(failure), headers
