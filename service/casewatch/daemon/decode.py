"""Turn one Kafka message into a ``StreamingEvent``, or say precisely why it cannot be one.

The common message shape (only the mapped fields) decodes in one typed msgspec pass. Anything else
(flat XES-style events with extra top-level keys, and every invalid message) takes a generic pass
that merges the extra keys into the attributes or names the failure. Failure reasons are fixed
strings, used as metric labels and dead-letter headers; see ``INVALID_REASONS``.

``decode`` is total: whatever a message holds (nesting beyond msgspec's recursion limit, integers
beyond float range, anything else), it returns an event or raises InvalidEventError.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final

import msgspec

from casewatch.daemon.timestamps import (
    BAD_TIMESTAMP,
    finite_timestamp,
    from_datetime,
    numeric_timestamp,
    parse_timestamp_text,
)
from casewatch.errors import ConfigError, InvalidEventError
from casewatch.events import StreamingEvent

EMPTY: Final = "empty"
OVERSIZED: Final = "oversized"
NOT_JSON: Final = "not_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_CASE_ID: Final = "missing_case_id"
MISSING_ACTIVITY: Final = "missing_activity"
WRONG_TYPE: Final = "wrong_type"
TOO_DEEP: Final = "too_deep"
NOT_UTF8: Final = "not_utf8"
UNDECODABLE: Final = "undecodable"

INVALID_REASONS: Final = (
    EMPTY,
    OVERSIZED,
    NOT_JSON,
    NOT_AN_OBJECT,
    MISSING_CASE_ID,
    MISSING_ACTIVITY,
    WRONG_TYPE,
    BAD_TIMESTAMP,
    TOO_DEEP,
    NOT_UTF8,
    UNDECODABLE,
)
_DETAIL_CHARS = 200
# Attribute values nested deeper than this are refused: msgspec decodes up to about 1000 levels,
# but turning such a value into a string for the model (repr recurses) can overflow the stack
# in the middle of a batch from about 990. A value nested d levels deep takes at least 2d bytes,
# so shorter messages need no check.
MAX_NESTING: Final = 500
_CONTAINERS = (dict, list)


@dataclass(frozen=True)
class FieldNames:
    """Where each part of an event sits in the input JSON object."""

    case_id: str = "case_id"
    activity: str = "activity"
    timestamp: str = "timestamp"
    attributes: str = "attributes"
    close: str = "close"

    def __post_init__(self) -> None:
        names = [getattr(self, f.name) for f in fields(self)]
        if any(not name for name in names):
            raise ConfigError("input field names must not be empty")
        if len(set(names)) != len(names):
            raise ConfigError(f"input field names must be distinct, got {', '.join(names)}")


def _typed_struct(names: FieldNames) -> type[msgspec.Struct]:
    """A Struct of exactly the mapped fields: any extra key sends a message to the generic pass."""
    return msgspec.defstruct(
        "WireEvent",
        [
            ("case_id", str | int | None, None),
            ("activity", str | None, None),
            ("timestamp", float | datetime | None, None),
            # Scalars only: an attribute holding an object or a list takes the generic pass,
            # which checks its nesting (as fast as Any for the common flat attributes).
            ("attributes", dict[str, str | int | float | bool | None] | None, None),
            ("close", bool | None, None),
        ],
        rename={
            "case_id": names.case_id,
            "activity": names.activity,
            "timestamp": names.timestamp,
            "attributes": names.attributes,
            "close": names.close,
        },
        forbid_unknown_fields=True,
        gc=False,
    )


def _nested_too_deep(value: bytes, attributes: dict[str, Any], *, prefilter: bool = True) -> bool:
    if prefilter and value.count(b"{") + value.count(b"[") <= MAX_NESTING:
        return False
    stack = [(item, 1) for item in attributes.values() if item.__class__ in _CONTAINERS]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            return True
        children = item.values() if item.__class__ is dict else item
        stack.extend((c, depth + 1) for c in children if c.__class__ in _CONTAINERS)
    return False


def invalid_from(exc: Exception) -> InvalidEventError:
    """The InvalidEventError standing for an unexpected failure while decoding one message."""
    if isinstance(exc, InvalidEventError):
        return exc
    if isinstance(exc, RecursionError):
        return InvalidEventError(TOO_DEEP, "message nests deeper than the decoder allows")
    if isinstance(exc, UnicodeError):
        return InvalidEventError(NOT_UTF8, f"message is not valid UTF-8: {exc}"[:_DETAIL_CHARS])
    text = " ".join(str(exc).split())
    return InvalidEventError(
        UNDECODABLE, f"message cannot be decoded: {type(exc).__name__}: {text}"[:_DETAIL_CHARS]
    )


class EventDecoder:
    """Decodes input messages; build one per consumer and reuse it for every message."""

    def __init__(
        self, fields: FieldNames = FieldNames(), *, max_message_bytes: int = 1_048_576
    ) -> None:
        if max_message_bytes <= 0:
            raise ConfigError("max_message_bytes must be greater than 0")
        self.fields = fields
        self.max_message_bytes = max_message_bytes
        self._typed = msgspec.json.Decoder(_typed_struct(fields))
        self._generic = msgspec.json.Decoder()
        self._mapped = frozenset(
            (fields.case_id, fields.activity, fields.timestamp, fields.attributes, fields.close)
        )
        # Streams of flat events fail the typed pass on every message; while the last valid
        # message was flat, go straight to the generic pass.
        self._flat_stream = False

    def decode(
        self, value: bytes | None, key: bytes | None, partition: int, offset: int
    ) -> StreamingEvent:
        """The event in ``value``; raises InvalidEventError (a reason from INVALID_REASONS) only."""
        try:
            if not value:
                raise InvalidEventError(EMPTY, "message has no value")
            if len(value) > self.max_message_bytes:
                raise InvalidEventError(
                    OVERSIZED, f"message is {len(value)} bytes, limit is {self.max_message_bytes}"
                )
            if self._flat_stream:
                return self._decode_generic(value, key, partition, offset)
            try:
                wire: Any = self._typed.decode(value)
            except msgspec.DecodeError:
                return self._decode_generic(value, key, partition, offset)

            case_id = wire.case_id
            if case_id is None:
                case_id = self._case_id_from_key(key)
            elif case_id.__class__ is int:
                case_id = str(case_id)
            elif not case_id:
                raise InvalidEventError(MISSING_CASE_ID, f"{self.fields.case_id!r} is empty")
            activity = wire.activity
            if not activity:
                raise InvalidEventError(MISSING_ACTIVITY, f"{self.fields.activity!r} is missing")
            timestamp = wire.timestamp
            if timestamp is not None:
                timestamp = (
                    finite_timestamp(timestamp, self.fields.timestamp)
                    if timestamp.__class__ is float
                    else from_datetime(timestamp)
                )
            attributes = wire.attributes
            return StreamingEvent(
                case_id,
                activity,
                timestamp,
                {} if attributes is None else attributes,
                wire.close is True,
                partition,
                offset,
            )
        except InvalidEventError:
            raise
        except Exception as exc:  # one message must never stop the loop, whatever it holds
            raise invalid_from(exc) from None

    def _decode_generic(
        self, value: bytes, key: bytes | None, partition: int, offset: int
    ) -> StreamingEvent:
        try:
            obj = self._generic.decode(value)
        except msgspec.DecodeError as exc:
            raise InvalidEventError(NOT_JSON, f"message is not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise InvalidEventError(
                NOT_AN_OBJECT, f"message is a JSON {type(obj).__name__}, not an object"
            )
        event = self._from_mapping(obj, key, partition, offset)
        if len(value) > 2 * MAX_NESTING:
            self._check_nesting(value, event.attributes)
        return event

    def _from_mapping(
        self, obj: dict[str, Any], key: bytes | None, partition: int, offset: int
    ) -> StreamingEvent:
        """The event in a decoded object (JSON here, a registry format's record in a subclass)."""
        names = self.fields
        case_id = self._generic_case_id(obj.get(names.case_id), key)

        activity = obj.get(names.activity)
        if activity is None or activity == "":
            raise InvalidEventError(MISSING_ACTIVITY, f"{names.activity!r} is missing")
        if not isinstance(activity, str):
            raise self._wrong_type(names.activity, "a string", activity)

        raw_timestamp = obj.get(names.timestamp)
        timestamp: float | None
        if raw_timestamp is None:
            timestamp = None
        elif isinstance(raw_timestamp, str):
            timestamp = parse_timestamp_text(raw_timestamp, names.timestamp)
        elif isinstance(raw_timestamp, int | float) and not isinstance(raw_timestamp, bool):
            timestamp = numeric_timestamp(raw_timestamp, names.timestamp)
        elif isinstance(raw_timestamp, datetime):
            # Avro's timestamp logical types arrive as datetimes; JSON never holds one.
            timestamp = from_datetime(raw_timestamp)
        else:
            raise self._wrong_type(names.timestamp, "a number or an ISO-8601 string", raw_timestamp)

        attributes = obj.get(names.attributes)
        if attributes is None:
            attributes = {}
        elif not isinstance(attributes, dict):
            raise self._wrong_type(names.attributes, "an object", attributes)

        close = obj.get(names.close)
        if close is not None and not isinstance(close, bool):
            raise self._wrong_type(names.close, "a boolean", close)

        mapped = self._mapped
        extra = {name: item for name, item in obj.items() if name not in mapped}
        self._flat_stream = bool(extra)
        if extra:
            # The explicit attributes object is the more deliberate source, so it wins.
            extra.update(attributes)
            attributes = extra
        return StreamingEvent(
            case_id, activity, timestamp, attributes, close is True, partition, offset
        )

    def _generic_case_id(self, raw: object, key: bytes | None) -> str:
        if raw is None:
            return self._case_id_from_key(key)
        if isinstance(raw, str) or (isinstance(raw, int) and not isinstance(raw, bool)):
            case_id = str(raw)
            if not case_id:
                raise InvalidEventError(MISSING_CASE_ID, f"{self.fields.case_id!r} is empty")
            return case_id
        raise self._wrong_type(self.fields.case_id, "a string or an integer", raw)

    def _case_id_from_key(self, key: bytes | None) -> str:
        if not key:
            raise InvalidEventError(
                MISSING_CASE_ID, f"{self.fields.case_id!r} is missing and the message has no key"
            )
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEventError(
                MISSING_CASE_ID, f"{self.fields.case_id!r} is missing and the key is not UTF-8"
            ) from None

    @staticmethod
    def _check_nesting(value: bytes, attributes: dict[str, Any]) -> None:
        if _nested_too_deep(value, attributes):
            raise InvalidEventError(TOO_DEEP, f"an attribute nests over {MAX_NESTING} levels")

    @staticmethod
    def _wrong_type(field: str, expected: str, got: object) -> InvalidEventError:
        kind = "null" if got is None else type(got).__name__
        return InvalidEventError(WRONG_TYPE, f"{field!r} must be {expected}, got {kind}")
