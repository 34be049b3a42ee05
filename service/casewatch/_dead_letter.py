"""The records casewatch writes to its dead-letter topic.

Every dead-letter record names its reason (``casewatch.error.reason``, a fixed string also used as
a metric label), a one-line detail, and where it came from. Records too large for the broker are
truncated by the producer, which adds the original sizes (``casewatch._oversize``).
"""

from __future__ import annotations

from typing import Any

from casewatch._oversize import DETAIL_HEADER, REASON_HEADER, Headers

_DETAIL_BYTES = 1000


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
