from __future__ import annotations

import gc
import gzip
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from casewatch.errors import LogFormatError
from casewatch.events import StreamingEvent
from casewatch.offline.logs import Trace, interleave, read_log

EVENTLOGS = Path(__file__).parents[3] / "shared" / "data" / "eventlogs"
BUNDLED = Path(__file__).parents[2] / "service" / "casewatch" / "data" / "p2p-0.3-1.csv.gz"

HEADER = (
    "case_id,event_position,activity_name,timestamp,user,label,anomaly_type,anomaly_description"
)
SMALL_CSV = f"""{HEADER}
1,0,▶,,▶,normal,-,-
1,1,A,2006-01-11T15:49:42+01:00,ann,normal,-,-
1,2,B,,,normal,-,-
1,3,■,,■,normal,-,-
2,0,▶,,▶,anomalous,Insert,"{{'indices': [1]}}"
2,2,B,,bob,anomalous,Insert,"{{'indices': [1]}}"
2,1,A,,ann,anomalous,Insert,"{{'indices': [1]}}"
2,3,■,,■,anomalous,Insert,"{{'indices': [1]}}"
3,0,▶,,▶,anomalous,Rework,not a dict
3,1,A,,ann,anomalous,Rework,not a dict
3,2,■,,■,anomalous,Rework,not a dict
"""


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def names(trace: Trace) -> list[str]:
    return [event.name for event in trace.events]


def make_traces(lengths: list[int], *, timed: bool = False) -> list[Trace]:
    return [
        Trace(
            f"c{i}",
            [StreamingEvent(f"c{i}", f"e{p}", float(p) if timed else None) for p in range(n)],
            None,
            None,
            (),
        )
        for i, n in enumerate(lengths)
    ]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_csv_drops_markers_and_reads_attributes_timestamps_and_labels(
    tmp_path: Path, suffix: str
) -> None:
    traces = read_log(write(tmp_path / f"log{suffix}", SMALL_CSV))

    assert [t.case_id for t in traces] == ["1", "2", "3"]
    first, inserted, unreadable = traces
    assert names(first) == ["A", "B"]
    assert first.events[0].attributes == {"user": "ann"}
    assert first.events[1].attributes == {}
    expected = datetime(2006, 1, 11, 14, 49, 42, tzinfo=UTC).timestamp()
    assert first.events[0].timestamp == expected
    assert first.events[1].timestamp is None
    assert (first.label, first.anomaly_type, first.anomalous_positions) == (False, None, ())
    assert all(not e.close and e.case_id == "1" for e in first.events)
    # Rows are put back in event_position order.
    assert names(inserted) == ["A", "B"]
    assert (inserted.label, inserted.anomaly_type, inserted.anomalous_positions) == (
        True,
        "Insert",
        (1,),
    )
    # An unreadable description costs only the positions, never the read.
    assert (unreadable.label, unreadable.anomaly_type, unreadable.anomalous_positions) == (
        True,
        "Rework",
        (),
    )


def test_csv_without_label_columns_is_unlabelled(tmp_path: Path) -> None:
    path = write(tmp_path / "plain.csv", "case_id,activity_name,cost\nx,A,3\nx,B,\ny,A,1\n")

    traces = read_log(path)

    assert [(t.case_id, names(t), t.label) for t in traces] == [
        ("x", ["A", "B"], None),
        ("y", ["A"], None),
    ]
    assert traces[0].events[0].attributes == {"cost": "3"}


@pytest.mark.parametrize(
    ("file_name", "content", "cause"),
    [
        ("p.csv", "case_id,timestamp\n1,\n", "missing activity column 'activity_name'"),
        ("p.csv", "id,what\n1,A\n", "missing case column 'case:concept:name'"),
        ("p.csv", "", "empty file"),
        (
            "p.csv",
            f"{HEADER}\n1,0,A,yesterday,u,normal,-,-\n",
            "line 2, column 'timestamp': invalid timestamp",
        ),
        ("p.csv", f"{HEADER}\n1,0,A,,u,odd,-,-\n", "unknown label 'odd'"),
        ("p.csv", f"{HEADER}\n1,0,A\n", "line 2: 3 fields"),
        (
            "p.csv",
            f"{HEADER}\n1,x,A,,u,normal,-,-\n",
            "line 2, column 'event_position': invalid event position 'x'",
        ),
        ("p.csv.gz", "not gzip", "Not a gzipped file"),
        ("p.xes", "<log><trace>", "no element found"),
        ("p.xes", "<log><trace><event/></trace></log>", "no string 'concept:name'"),
        ("p.jsonl", '{"case_id": "1"}\n', "line 1: Object missing required field `activity`"),
        ("p.parquet", "", "Parquet file size is 0 bytes"),
        ("p.parquet", "PAR1 truncated", "magic bytes not found"),
        ("p.txt", "", "unsupported log format"),
    ],
)
def test_bad_file_raises_one_line_log_format_error(
    tmp_path: Path, file_name: str, content: str, cause: str
) -> None:
    path = tmp_path / file_name
    path.write_text(content, encoding="utf-8")

    with pytest.raises(LogFormatError) as caught:
        read_log(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert cause in message
    assert "\n" not in message


def test_missing_file_raises_log_format_error(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="No such file"):
        read_log(tmp_path / "absent.csv")


XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xmlns="http://www.xes-standard.org/" xes.version="1.0">
  <global scope="event"><string key="concept:name" value="__INVALID__"/></global>
  <trace>
    <string key="concept:name" value="case-1"/>
    <string key="label" value="anomalous"/>
    <string key="anomaly_type" value="Insert"/>
    <event>
      <string key="concept:name" value="A"/>
      <date key="time:timestamp" value="2020-01-01T00:00:00+00:00"/>
      <string key="org:resource" value="ann"/>
      <int key="cost" value="3"/>
      <float key="weight" value="1.5"/>
      <boolean key="urgent" value="true"/>
      <date key="due" value="2020-02-01T00:00:00+00:00"/>
      <list key="tags"><string key="tag" value="ignored"/></list>
    </event>
    <event><string key="concept:name" value="B"/></event>
  </trace>
  <trace>
    <string key="concept:name" value="case-2"/>
    <boolean key="label" value="false"/>
    <event><string key="concept:name" value="A"/></event>
  </trace>
  <trace>
    <string key="concept:name" value="case-3"/>
    <event><string key="concept:name" value="C"/></event>
  </trace>
</log>
"""


@pytest.mark.parametrize("suffix", [".xes", ".xes.gz"])
def test_xes_round_trip(tmp_path: Path, suffix: str) -> None:
    traces = read_log(write(tmp_path / f"log{suffix}", XES))

    assert [(t.case_id, names(t), t.label, t.anomaly_type) for t in traces] == [
        ("case-1", ["A", "B"], True, "Insert"),
        ("case-2", ["A"], False, None),
        ("case-3", ["C"], None, None),
    ]
    first = traces[0].events[0]
    assert first.case_id == "case-1"
    assert first.timestamp == datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    assert first.attributes == {
        "org:resource": "ann",
        "cost": 3,
        "weight": 1.5,
        "urgent": True,
        "due": datetime(2020, 2, 1, tzinfo=UTC).timestamp(),
    }
    assert traces[0].events[1].timestamp is None


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_jsonl_round_trip(tmp_path: Path, suffix: str) -> None:
    lines = [
        {"case_id": "b", "activity": "A", "timestamp": 10.5, "attributes": {"amount": 3}},
        {"case_id": "a", "activity": "A", "timestamp": "1970-01-01T00:00:20Z", "label": "normal"},
        {"case_id": "b", "activity": "B", "timestamp": None, "close": True, "label": True},
        {"case_id": "c", "activity": "A"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n\n"

    traces = read_log(write(tmp_path / f"events{suffix}", text))

    assert [(t.case_id, names(t), t.label) for t in traces] == [
        ("b", ["A", "B"], True),
        ("a", ["A"], False),
        ("c", ["A"], None),
    ]
    b = traces[0].events
    assert (b[0].timestamp, b[0].attributes, b[1].timestamp) == (10.5, {"amount": 3}, None)
    assert not any(e.close for t in traces for e in t.events)
    assert traces[1].events[0].timestamp == 20.0


def test_progress_reports_every_ten_thousand_rows(tmp_path: Path) -> None:
    rows = "".join(f"{i // 10},A{i % 10}\n" for i in range(25_000))
    path = write(tmp_path / "big.csv", f"case_id,activity_name\n{rows}")
    seen: list[int] = []

    traces = read_log(path, progress=seen.append)

    assert seen == [10_000, 20_000]
    assert len(traces) == 2_500


def test_interleave_round_robin_keeps_open_cases_in_flight() -> None:
    traces = make_traces([3, 1, 2, 0, 2])

    replay = [(e.case_id, e.name, e.close) for e in interleave(traces, open_cases=2)]

    assert replay == [
        ("c0", "e0", False),
        ("c1", "e0", True),
        ("c0", "e1", False),
        ("c2", "e0", False),
        ("c0", "e2", True),
        ("c2", "e1", True),
        ("c4", "e0", False),
        ("c4", "e1", True),
    ]
    # The traces themselves are left untouched.
    assert not any(e.close for t in traces for e in t.events)


def test_interleave_without_close_marker() -> None:
    replay = list(interleave(make_traces([2, 2]), close_marker=False))

    assert [(e.case_id, e.name) for e in replay] == [
        ("c0", "e0"),
        ("c1", "e0"),
        ("c0", "e1"),
        ("c1", "e1"),
    ]
    assert not any(e.close for e in replay)


def test_interleave_orders_by_timestamp_when_every_event_has_one() -> None:
    def trace(case_id: str, *times: float) -> Trace:
        events = [StreamingEvent(case_id, f"e{i}", t) for i, t in enumerate(times)]
        return Trace(case_id, events, None, None, ())

    # "late" goes back in time: it must still be replayed in its own logged order.
    traces = [trace("x", 5, 7), trace("y", 1, 5, 9), trace("late", 3, 2)]

    replay = [(e.case_id, e.name, e.close) for e in interleave(traces, open_cases=1)]

    assert replay == [
        ("y", "e0", False),
        ("late", "e0", False),
        ("late", "e1", True),
        ("x", "e0", False),
        ("y", "e1", False),
        ("x", "e1", True),
        ("y", "e2", True),
    ]


def test_interleave_rejects_no_open_cases() -> None:
    with pytest.raises(ValueError, match="open_cases"):
        list(interleave([], open_cases=0))


@pytest.mark.parametrize("timed", [False, True])
def test_interleave_scales_linearly(timed: bool) -> None:
    def replay_seconds(n_traces: int) -> float:
        traces = make_traces([2] * n_traces, timed=timed)
        # The fastest of three runs with the collector paused: a collection or a busy neighbour
        # only ever adds time, so the minimum is what the algorithm costs.
        runs = []
        gc.disable()
        try:
            for _ in range(3):
                started = time.perf_counter()
                count = sum(1 for _ in interleave(traces, open_cases=n_traces))
                runs.append(time.perf_counter() - started)
                assert count == 2 * n_traces
        finally:
            gc.enable()
        return min(runs)

    small, large = replay_seconds(10_000), replay_seconds(100_000)

    # Ten times the events; a quadratic replay would take about a hundred times longer.
    assert large < 30 * max(small, 1e-3)


def test_bundled_log_reads_cleanly() -> None:
    traces = read_log(BUNDLED)

    assert len(traces) == 5000
    labels = Counter(t.label for t in traces)
    assert set(labels) == {False, True}
    assert all(t.anomaly_type is not None for t in traces if t.label)
    assert all(t.anomalous_positions for t in traces if t.label)
    events = [e for t in traces for e in t.events]
    assert not any(e.name in {"▶", "■"} or e.close for e in events)
    assert all("▶" not in e.attributes.values() for e in events)


def normal_variants(traces: list[Trace]) -> set[tuple[str, ...]]:
    return {tuple(names(t)) for t in traces if t.label is False}


def of_type(traces: list[Trace], anomaly_type: str) -> list[Trace]:
    return [t for t in traces if t.anomaly_type == anomaly_type]


@pytest.mark.skipif(not EVENTLOGS.is_dir(), reason=f"labelled event logs absent at {EVENTLOGS}")
def test_positions_blame_the_injected_events_on_real_logs() -> None:
    traces = read_log(EVENTLOGS / "small-0.3-1.csv.gz")
    normal = normal_variants(traces)
    by_type = Counter(t.anomaly_type for t in traces if t.label)
    assert set(by_type) == {"Insert", "Rework", "SkipSequence", "Early", "Late", "Attribute"}

    # Case 2: 'indices': [0, 5] blames the random activities at event_position 1 and 6.
    case_2 = next(t for t in traces if t.case_id == "2")
    assert case_2.anomalous_positions == (0, 5)
    assert [names(case_2)[i] for i in (0, 5)] == ["Random activity 18", "Random activity 11"]

    for trace in of_type(traces, "Insert"):
        pos = trace.anomalous_positions
        assert all(names(trace)[i].startswith("Random activity") for i in pos)
        assert tuple(n for i, n in enumerate(names(trace)) if i not in pos) in normal

    # Rework: dropping the blamed block (the repetition) gives back a normal trace.
    for trace in of_type(traces, "Rework"):
        pos = trace.anomalous_positions
        assert tuple(names(trace)[: pos[0]] + names(trace)[pos[-1] + 1 :]) in normal

    # Early/Late: putting the blamed block back somewhere else gives back a normal trace.
    for trace in of_type(traces, "Early") + of_type(traces, "Late"):
        pos = trace.anomalous_positions
        block, rest = names(trace)[pos[0] : pos[-1] + 1], names(trace)
        rest = rest[: pos[0]] + rest[pos[-1] + 1 :]
        candidates = {tuple(rest[:j] + block + rest[j:]) for j in range(len(rest) + 1)}
        assert tuple(names(trace)) not in normal
        assert candidates & normal

    # SkipSequence: the blamed event is the first one after the gap, so some normal trace shares
    # everything before it as a prefix and everything from it on as a suffix.
    for trace in of_type(traces, "SkipSequence"):
        (pos,) = trace.anomalous_positions
        head, tail = tuple(names(trace)[:pos]), tuple(names(trace)[pos:])
        assert any(
            len(n) > len(trace.events) and n[:pos] == head and n[len(n) - len(tail) :] == tail
            for n in normal
        )

    # Attribute: the activities are normal; only the blamed events' attributes were changed.
    for trace in of_type(traces, "Attribute"):
        assert tuple(names(trace)) in normal
        assert trace.anomalous_positions


@pytest.mark.skipif(not EVENTLOGS.is_dir(), reason=f"labelled event logs absent at {EVENTLOGS}")
def test_timestamped_real_log() -> None:
    traces = read_log(EVENTLOGS / "bpic13-0.3-1.csv.gz")

    first = traces[0]
    assert first.case_id == "1-109135791"
    assert names(first)[0] == "Queued+Awaiting Assignment"
    assert (
        first.events[0].timestamp == datetime.fromisoformat("2006-01-11T15:49:42+01:00").timestamp()
    )
    assert first.events[0].attributes["org:resource"] == "Minnie"
    early = next(t for t in traces if t.case_id == "1-147898401")
    assert (early.anomaly_type, early.anomalous_positions) == ("Early", (0, 1))
