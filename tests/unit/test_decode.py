from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from casewatch.daemon.build import field_names
from casewatch.daemon.decode import INVALID_REASONS, EventDecoder, FieldNames
from casewatch.errors import ConfigError, InvalidEventError
from casewatch.events import StreamingEvent
from casewatch.settings import load_settings

XES = FieldNames(case_id="case:concept:name", activity="concept:name", timestamp="time:timestamp")


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def reason_of(decoder: EventDecoder, value: bytes | None, key: bytes | None = None) -> str:
    with pytest.raises(InvalidEventError) as caught:
        decoder.decode(value, key, 0, 0)
    assert "\n" not in str(caught.value)
    return caught.value.reason


def test_plain_event() -> None:
    event = EventDecoder().decode(
        encode(
            {
                "case_id": "c1",
                "activity": "Create",
                "timestamp": 1_700_000_000.5,
                "attributes": {"user": "u1", "amount": 12.5},
                "close": True,
            }
        ),
        b"ignored-key",
        3,
        42,
    )
    assert event == StreamingEvent(
        case_id="c1",
        name="Create",
        timestamp=1_700_000_000.5,
        attributes={"user": "u1", "amount": 12.5},
        close=True,
        partition=3,
        offset=42,
    )


def test_minimal_event_defaults() -> None:
    event = EventDecoder().decode(encode({"case_id": "c", "activity": "a"}), None, 0, 1)
    assert event.timestamp is None
    assert event.attributes == {}
    assert event.close is False


def test_integer_case_id_becomes_string() -> None:
    assert (
        EventDecoder().decode(encode({"case_id": 17, "activity": "a"}), None, 0, 0).case_id == "17"
    )


@pytest.mark.parametrize("body", [{"activity": "a"}, {"case_id": None, "activity": "a"}])
def test_key_is_case_id_when_field_absent(body: dict[str, Any]) -> None:
    event = EventDecoder().decode(encode(body), b"case-from-key", 0, 0)
    assert event.case_id == "case-from-key"


def test_field_wins_over_key() -> None:
    event = EventDecoder().decode(encode({"case_id": "c", "activity": "a"}), b"k", 0, 0)
    assert event.case_id == "c"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (1_700_000_000, 1_700_000_000.0),
        (1_700_000_000.25, 1_700_000_000.25),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()),
        ("2024-01-02T03:04:05.5+01:00", datetime(2024, 1, 2, 2, 4, 5, 500000, UTC).timestamp()),
        ("2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()),
        ("1700000000.5", 1_700_000_000.5),
        (None, None),
    ],
)
def test_timestamps(timestamp: object, expected: float | None) -> None:
    body = {"case_id": "c", "activity": "a", "timestamp": timestamp}
    assert EventDecoder().decode(encode(body), None, 0, 0).timestamp == expected


def test_xes_flat_event_merges_extra_keys_into_attributes() -> None:
    body = {
        "case:concept:name": "c9",
        "concept:name": "Approve",
        "time:timestamp": "2011-10-01T00:38:44.546+02:00",
        "org:resource": "Sara",
        "amount": 100,
    }
    event = EventDecoder(XES).decode(encode(body), None, 1, 2)
    assert event.case_id == "c9"
    assert event.name == "Approve"
    assert event.timestamp == datetime.fromisoformat("2011-10-01T00:38:44.546+02:00").timestamp()
    assert event.attributes == {"org:resource": "Sara", "amount": 100}


def test_explicit_attributes_win_over_flat_keys() -> None:
    body = {
        "case_id": "c",
        "activity": "a",
        "user": "flat",
        "extra": 1,
        "attributes": {"user": "x"},
    }
    event = EventDecoder().decode(encode(body), None, 0, 0)
    assert event.attributes == {"user": "x", "extra": 1}


def test_flat_and_plain_messages_interleave() -> None:
    decoder = EventDecoder()
    flat = decoder.decode(encode({"case_id": "c", "activity": "a", "u": 1}), None, 0, 0)
    plain = decoder.decode(encode({"case_id": "c", "activity": "b"}), None, 0, 1)
    again = decoder.decode(encode({"case_id": "c", "activity": "c", "u": 2}), None, 0, 2)
    assert (flat.attributes, plain.attributes, again.attributes) == ({"u": 1}, {}, {"u": 2})


def test_custom_close_field() -> None:
    decoder = EventDecoder(FieldNames(close="done"))
    assert decoder.decode(encode({"case_id": "c", "activity": "a", "done": True}), None, 0, 0).close


def test_field_names_from_settings() -> None:
    settings = load_settings(field_preset="xes", close_field="lifecycle:end")
    names = field_names(settings)
    assert names == FieldNames(
        case_id="case:concept:name",
        activity="concept:name",
        timestamp="time:timestamp",
        attributes="attributes",
        close="lifecycle:end",
    )


def test_field_names_must_be_distinct() -> None:
    with pytest.raises(ConfigError):
        FieldNames(case_id="id", activity="id")


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (None, None, "empty"),
        (b"", b"k", "empty"),
        (b"x" * 101, None, "oversized"),
        (b"{not json", None, "not_json"),
        (b"\xff\xfe", None, "not_json"),
        (b"[1, 2]", None, "not_an_object"),
        (b'"text"', None, "not_an_object"),
        (b'{"activity": "a"}', None, "missing_case_id"),
        (b'{"activity": "a"}', b"\xff", "missing_case_id"),
        (b'{"case_id": "", "activity": "a"}', None, "missing_case_id"),
        (b'{"case_id": "c"}', None, "missing_activity"),
        (b'{"case_id": "c", "activity": ""}', None, "missing_activity"),
        (b'{"case_id": "c", "activity": 5}', None, "wrong_type"),
        (b'{"case_id": 1.5, "activity": "a"}', None, "wrong_type"),
        (b'{"case_id": true, "activity": "a"}', None, "wrong_type"),
        (b'{"case_id": "c", "activity": "a", "attributes": [1]}', None, "wrong_type"),
        (b'{"case_id": "c", "activity": "a", "close": "yes"}', None, "wrong_type"),
        (b'{"case_id": "c", "activity": "a", "timestamp": true}', None, "wrong_type"),
        (b'{"case_id": "c", "activity": "a", "timestamp": "yesterday"}', None, "bad_timestamp"),
        (b'{"case_id": "c", "activity": "a", "timestamp": "inf"}', None, "bad_timestamp"),
        (b'{"case_id": "c", "activity": "a", "timestamp": "nan"}', None, "bad_timestamp"),
    ],
)
def test_invalid_reasons(value: bytes | None, key: bytes | None, reason: str) -> None:
    assert reason in INVALID_REASONS
    assert reason_of(EventDecoder(max_message_bytes=100), value, key) == reason


def test_reasons_are_the_documented_set() -> None:
    assert set(INVALID_REASONS) == {
        "empty",
        "oversized",
        "not_json",
        "not_an_object",
        "missing_case_id",
        "missing_activity",
        "wrong_type",
        "bad_timestamp",
        "too_deep",
        "not_utf8",
        "undecodable",
    }


def test_detail_names_the_field() -> None:
    with pytest.raises(InvalidEventError, match="concept:name"):
        EventDecoder(XES).decode(encode({"case:concept:name": "c"}), None, 0, 0)


def test_message_at_size_limit_is_accepted() -> None:
    body = encode({"case_id": "c", "activity": "a"})
    assert EventDecoder(max_message_bytes=len(body)).decode(body, None, 0, 0).name == "a"


def test_decoder_survives_invalid_messages() -> None:
    decoder = EventDecoder()
    reason_of(decoder, b"{")
    assert decoder.decode(encode({"case_id": "c", "activity": "a"}), None, 0, 0).name == "a"


def nested(depth: int) -> bytes:
    return (
        b'{"case_id": "c", "activity": "a", "attributes": '
        + b'{"a": ' * depth
        + b"1"
        + (b"}" * depth)
        + b"}"
    )


@pytest.mark.parametrize("flat", [False, True])
def test_nesting_beyond_the_decoder_limit_is_an_invalid_event(flat: bool) -> None:
    decoder = EventDecoder()
    decoder._flat_stream = flat
    assert reason_of(decoder, nested(1000)) == "too_deep"
    assert decoder.decode(nested(150), None, 0, 0).name == "a"


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("opening", [b'{"a": ', b"["])
def test_values_nested_deeper_than_the_loop_can_carry_are_too_deep(
    flat: bool, opening: bytes
) -> None:
    """995 levels decode, but turning such a value into a string for the model overflows the
    stack later; anything beyond 500 levels is refused while decoding."""
    closing = b"}" if opening.startswith(b"{") else b"]"

    def message(depth: int) -> bytes:
        value = opening * depth + b"1" + closing * depth
        extra = b', "x": 1' if flat else b""
        return (
            b'{"case_id": "c", "activity": "a"'
            + extra
            + b', "attributes": {"user": '
            + (value + b"}}")
        )

    decoder = EventDecoder()
    assert reason_of(decoder, message(995)) == "too_deep"
    assert reason_of(decoder, message(501)) == "too_deep"
    assert decoder.decode(message(500), None, 0, 0).attributes["user"]
    wide = encode({"case_id": "c", "activity": "a", "attributes": {"l": [[1]] * 500}})
    assert decoder.decode(wide, None, 0, 0).name == "a"


@pytest.mark.parametrize("digits", [310, 400, 4000])
@pytest.mark.parametrize("sign", ["", "-"])
def test_integer_timestamp_beyond_float_range_is_a_bad_timestamp(digits: int, sign: str) -> None:
    body = b'{"case_id": "c", "activity": "a", "timestamp": ' + (sign + "9" * digits).encode()
    reason = reason_of(EventDecoder(), body + b"}")
    assert reason in {"bad_timestamp", "not_json"}
    flat = body + b', "extra": 1}'
    assert reason_of(EventDecoder(), flat) in {"bad_timestamp", "not_json"}


def test_invalid_utf8_inside_a_string_is_an_invalid_event() -> None:
    body = b'{"case_id": "bad\xff\xfe", "activity": "Create PO"}'
    assert reason_of(EventDecoder(), body) in {"not_json", "not_utf8"}


class _Raising:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def decode(self, value: bytes) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not_utf8"),
        (RecursionError("maximum recursion depth exceeded"), "too_deep"),
        (OverflowError("int too large to convert to float"), "undecodable"),
        (MemoryError(), "undecodable"),
        (KeyError("anything"), "undecodable"),
    ],
)
def test_any_failure_inside_the_decoder_is_an_invalid_event(error: Exception, reason: str) -> None:
    """Whatever the JSON library raises, one message yields one reason and nothing escapes."""
    decoder = EventDecoder()
    decoder._typed = _Raising(error)  # type: ignore[assignment]
    decoder._generic = _Raising(error)  # type: ignore[assignment]
    assert reason_of(decoder, encode({"case_id": "c", "activity": "a"})) == reason


SEEDS = [
    encode({"case_id": "c1", "activity": "Create", "timestamp": 1_700_000_000.5}),
    encode({"case_id": 17, "activity": "Approve", "attributes": {"user": "u", "n": [1, {}]}}),
    encode({"case_id": "c2", "activity": "Pay", "timestamp": "2024-01-02T03:04:05+01:00"}),
    encode({"case:concept:name": "c3", "concept:name": "Ship", "org:resource": "r", "x": 1.5}),
    encode({"case_id": "c4", "activity": "End", "close": True, "attributes": {}}),
]
FRAGMENTS = [b"[" * 1200, b"{" * 50, b"9" * 320, b"\xff\xfe", b"\\ud800", b'"', b"\x00", b"e9"]


def mutate(rng: random.Random, value: bytes) -> bytes:
    data = bytearray(value)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(data) + 1)
        choice = rng.random()
        if choice < 0.3 and data:
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif choice < 0.5 and data:
            del data[position : position + rng.randint(1, 8)]
        elif choice < 0.8:
            data[position:position] = rng.choice(FRAGMENTS)
        else:
            start = rng.randrange(len(data) + 1)
            data[position:position] = data[start : start + rng.randint(1, 16)]
    return bytes(data)


def test_fuzzed_messages_decode_or_raise_only_invalid_event() -> None:
    """Seeded byte mutations of valid events: every outcome is an event or a known reason."""
    rng = random.Random(20240611)
    decoder, xes = EventDecoder(), EventDecoder(XES)
    outcomes: dict[str, int] = {}
    for i in range(20_000):
        value = mutate(rng, SEEDS[i % len(SEEDS)])
        for current in (decoder, xes):
            try:
                event = current.decode(value, rng.choice([None, b"k", b"\xff"]), 0, i)
            except InvalidEventError as exc:
                reason = exc.reason
                outcomes[reason] = outcomes.get(reason, 0) + 1
                continue
            assert isinstance(event.case_id, str) and event.case_id
            assert isinstance(event.name, str) and event.name
            assert event.timestamp is None or math.isfinite(event.timestamp)
            assert isinstance(event.attributes, dict)
            event.case_id.encode()  # the case id becomes a Kafka key
            outcomes["decoded"] = outcomes.get("decoded", 0) + 1
    assert set(outcomes) - {"decoded"} <= set(INVALID_REASONS)
    assert outcomes["decoded"] > 1000
    assert len(outcomes) >= 6
