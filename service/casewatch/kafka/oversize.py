"""Records larger than the broker takes, replaced by a dead-letter record that fits.

librdkafka refuses at ``produce()`` a record whose key, value and headers, plus the record framing,
exceed the producer's ``message.max.bytes``; a broker or topic with a lower limit refuses it later,
in the delivery report. Either way the record can never be delivered, and waiting for it would hold
back the commit of its input forever. So it is replaced by a record on the dead-letter topic with
key and value truncated and the original sizes in headers: the loop keeps going and nothing is lost
without a trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from casewatch.telemetry.logging import get_logger

log = get_logger(__name__)

Headers = list[tuple[str, bytes]]

OUTPUT_TOO_LARGE: Final = "output_too_large"
# librdkafka's default message.max.bytes.
DEFAULT_MAX_BYTES: Final = 1_000_000
# The v2 record framing librdkafka adds to key + value + headers is at most about 40 bytes;
# the margin also covers the record batch a single record travels in.
RECORD_OVERHEAD: Final = 128
# A replacement keeps this much of the original key: enough to recognise a case id.
KEY_LIMIT: Final = 1024
# Original headers a replacement carries over (a dead-letter record's reason and source).
CARRIED_HEADERS_LIMIT: Final = 8192
# Below this a refused record cannot be shrunk into something more useful than its headers.
SMALLEST_LIMIT: Final = 4096

REASON_HEADER: Final = "casewatch.error.reason"
DETAIL_HEADER: Final = "casewatch.error.detail"
TOPIC_HEADER: Final = "casewatch.output.topic"
KEY_BYTES_HEADER: Final = "casewatch.original.key_bytes"
VALUE_BYTES_HEADER: Final = "casewatch.original.value_bytes"
HEADERS_BYTES_HEADER: Final = "casewatch.original.headers_bytes"
_OWN = frozenset({TOPIC_HEADER, KEY_BYTES_HEADER, VALUE_BYTES_HEADER, HEADERS_BYTES_HEADER})


def headers_size(headers: Headers | None) -> int:
    """Bytes the headers take on the wire, rounded up (each has two varint lengths)."""
    if not headers:
        return 0
    return sum(len(name) + len(value) + 10 for name, value in headers)


def record_size(key: bytes | None, value: bytes | None, headers: Headers | None) -> int:
    """What librdkafka compares with ``message.max.bytes``, with our margin for framing."""
    size = RECORD_OVERHEAD + (len(key) if key else 0) + (len(value) if value else 0)
    return size + headers_size(headers) if headers else size


@dataclass(frozen=True, slots=True)
class Replacement:
    key: bytes | None
    value: bytes
    headers: Headers


def replacement(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    *,
    limit: int,
    dead_letter_topic: str,
    detail: str,
) -> Replacement:
    """The dead-letter record standing for a record too large for ``limit`` bytes.

    A record already bound for the dead-letter topic keeps its own reason and source headers;
    any other (an evaluation, a changelog record) gets the reason ``output_too_large``.
    """
    original = headers or []
    carried: Headers = []
    budget = min(CARRIED_HEADERS_LIMIT, limit // 4)
    for name, data in original:
        if name in _OWN or (topic != dead_letter_topic and name in (REASON_HEADER, DETAIL_HEADER)):
            continue
        if headers_size([*carried, (name, data)]) > budget:
            break
        carried.append((name, data))
    own: Headers = [
        (TOPIC_HEADER, topic.encode()),
        (KEY_BYTES_HEADER, str(len(key) if key else 0).encode()),
        (VALUE_BYTES_HEADER, str(len(value) if value else 0).encode()),
        (HEADERS_BYTES_HEADER, str(headers_size(headers)).encode()),
    ]
    if topic != dead_letter_topic:
        own[:0] = [(REASON_HEADER, OUTPUT_TOO_LARGE.encode()), (DETAIL_HEADER, detail.encode())]
    new_headers = own + carried
    new_key = key[: min(KEY_LIMIT, limit // 8)] if key else key
    room = limit - record_size(new_key, None, new_headers)
    new_value = (value or b"")[: max(room, 0)]
    return Replacement(new_key, new_value, new_headers)


def replace_oversized(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    limit: int,
    cause: str | None,
    dead_letter_topic: str,
) -> Replacement:
    """``replacement`` of a record found too large (``cause`` None: by our own estimate), and
    the warning that says so."""
    cause = cause or f"limit is {limit} bytes"
    size = record_size(key, value, headers)
    log.warning(
        "output_replaced_oversized",
        topic=topic,
        key_bytes=len(key) if key else 0,
        value_bytes=len(value) if value else 0,
        limit=limit,
        cause=cause,
    )
    return replacement(
        topic, key, value, headers, limit=limit, dead_letter_topic=dead_letter_topic,
        detail=f"record for {topic!r} is about {size} bytes: {cause}",
    )  # fmt: skip
