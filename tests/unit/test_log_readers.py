from __future__ import annotations

import datetime as dt
import gzip
import logging
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from casewatch.errors import LogFormatError
from casewatch.offline.logs import Trace, read_log
from casewatch.offline.logs.columns import LogColumns

UTC = dt.UTC

# As pm4py's ``write_csv`` lays out a log: case attributes prefixed ``case:``, no position column,
# rows not in event order within a case.
PM4PY_CSV = """case:concept:name,concept:name,time:timestamp,org:resource,case:channel
t1,Register,2024-03-01 09:00:00+00:00,ann,web
t1,Close,2024-03-01 11:00:00+00:00,bob,web
t1,Assign,2024-03-01 10:00:00+00:00,cid,web
t2,Register,2024-03-02 09:00:00,dan,phone
t2,Assign,2024-03-02 09:00:00,eve,phone
"""


def names(trace: Trace) -> list[str]:
    return [event.name for event in trace.events]


def write(path: Path, text: str) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_pm4py_csv_is_read_without_options_and_ordered_by_timestamp(
    tmp_path: Path, suffix: str
) -> None:
    traces = read_log(write(tmp_path / f"log{suffix}", PM4PY_CSV))

    assert [(t.case_id, names(t), t.label) for t in traces] == [
        ("t1", ["Register", "Assign", "Close"], None),
        # Equal timestamps keep file order.
        ("t2", ["Register", "Assign"], None),
    ]
    first = traces[0].events[0]
    assert first.timestamp == dt.datetime(2024, 3, 1, 9, tzinfo=UTC).timestamp()
    assert first.attributes == {"org:resource": "ann", "case:channel": "web"}
    # No zone: taken as UTC.
    assert traces[1].events[0].timestamp == dt.datetime(2024, 3, 2, 9, tzinfo=UTC).timestamp()


def test_events_without_every_timestamp_keep_file_order(tmp_path: Path) -> None:
    text = "case:concept:name,concept:name,time:timestamp\nx,B,2024-01-02\nx,A,\n"

    (trace,) = read_log(write(tmp_path / "log.csv", text))

    assert names(trace) == ["B", "A"]
    assert trace.events[1].timestamp is None


def test_columns_chosen_by_name(tmp_path: Path) -> None:
    text = "claim,step,when,seq,clerk\n9,Close,2024-01-03,2,ann\n9,Open,2024-01-05,1,bob\n"
    columns = LogColumns(case="claim", activity="step", timestamp="when", position="seq")

    (trace,) = read_log(write(tmp_path / "log.csv", text), columns=columns)

    # The position column wins over timestamps.
    assert (trace.case_id, names(trace)) == ("9", ["Open", "Close"])
    assert trace.events[0].attributes == {"clerk": "bob"}


def test_casewatch_layout_with_pm4py_named_attributes_keeps_its_own_activity(
    tmp_path: Path,
) -> None:
    # The BPIC exports carry concept:name (the activity without its lifecycle) as an attribute.
    text = "case_id,event_position,activity_name,concept:name\n1,0,Queued+Wait,Queued\n"

    (trace,) = read_log(write(tmp_path / "log.csv", text))

    assert names(trace) == ["Queued+Wait"]
    assert trace.events[0].attributes == {"concept:name": "Queued"}


def test_timestamps_in_a_given_format(tmp_path: Path) -> None:
    text = (
        "case:concept:name,concept:name,time:timestamp\n"
        "1,B,02/03/2024 10:00\n1,A,01/03/2024 09:30\n"
    )
    path = write(tmp_path / "log.csv", text)

    (trace,) = read_log(path, columns=LogColumns(timestamp_format="%d/%m/%Y %H:%M"))

    assert names(trace) == ["A", "B"]
    assert trace.events[0].timestamp == dt.datetime(2024, 3, 1, 9, 30, tzinfo=UTC).timestamp()
    with pytest.raises(LogFormatError) as caught:
        read_log(path, columns=LogColumns(timestamp_format="%Y-%m-%d"))
    assert str(caught.value) == (
        f"{path}: line 2, column 'time:timestamp': invalid timestamp '02/03/2024 10:00' "
        "(expected format '%Y-%m-%d')"
    )


@pytest.mark.parametrize(
    ("columns", "cause"),
    [
        (LogColumns(case="claim"), "missing case column 'claim'"),
        (LogColumns(timestamp="when"), "missing timestamp column 'when'"),
    ],
)
def test_a_named_column_must_exist(tmp_path: Path, columns: LogColumns, cause: str) -> None:
    path = write(tmp_path / "log.csv", PM4PY_CSV)

    with pytest.raises(LogFormatError, match=cause):
        read_log(path, columns=columns)


def write_parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def test_parquet_in_pm4py_layout(tmp_path: Path) -> None:
    stamps = [dt.datetime(2024, 3, 1, h, tzinfo=UTC) for h in (11, 9, 10)]
    table = pa.table(
        {
            "case:concept:name": ["t1", "t1", "t1"],
            "concept:name": ["Close", "Register", "Assign"],
            "time:timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "amount": [3, None, 5],
            "urgent": [True, False, None],
            "tags": [["a"], [], None],
        }
    )

    (trace,) = read_log(write_parquet(tmp_path / "log.parquet", table))

    assert names(trace) == ["Register", "Assign", "Close"]
    assert trace.events[0].timestamp == stamps[1].timestamp()
    assert trace.events[0].attributes == {"urgent": False, "tags": []}
    assert trace.events[2].attributes == {"amount": 3, "urgent": True, "tags": ["a"]}


def test_parquet_naive_timestamps_and_dates_are_utc(tmp_path: Path) -> None:
    for kind, values in [
        (pa.timestamp("ns"), [dt.datetime(2024, 3, 2), dt.datetime(2024, 3, 1)]),
        (pa.date32(), [dt.date(2024, 3, 2), dt.date(2024, 3, 1)]),
    ]:
        table = pa.table(
            {
                "case:concept:name": ["t", "t"],
                "concept:name": ["B", "A"],
                "time:timestamp": pa.array(values, kind),
            }
        )

        (trace,) = read_log(write_parquet(tmp_path / "log.parquet", table))

        assert names(trace) == ["A", "B"]
        assert trace.events[0].timestamp == dt.datetime(2024, 3, 1, tzinfo=UTC).timestamp()


def test_parquet_in_casewatch_layout_with_labels(tmp_path: Path) -> None:
    table = pa.table(
        {
            "case_id": ["1", "1", "1", "1"],
            "event_position": [0, 2, 1, 3],
            "activity_name": ["▶", "B", "A", "■"],
            "label": ["anomalous"] * 4,
            "anomaly_type": ["Insert"] * 4,
            "anomaly_description": ["{'indices': [1]}"] * 4,
        }
    )

    (trace,) = read_log(write_parquet(tmp_path / "log.parquet", table))

    assert names(trace) == ["A", "B"]
    assert (trace.label, trace.anomaly_type, trace.anomalous_positions) == (True, "Insert", (1,))


def test_malformed_parquet_names_row_and_column(tmp_path: Path) -> None:
    table = pa.table(
        {
            "case:concept:name": ["t1", "t1"],
            "concept:name": ["A", "B"],
            "time:timestamp": [True, False],
        }
    )
    path = write_parquet(tmp_path / "log.parquet", table)

    with pytest.raises(LogFormatError) as caught:
        read_log(path)

    assert str(caught.value) == f"{path}: row 1, column 'time:timestamp': invalid timestamp True"


def test_parquet_without_a_case_column_names_it(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "log.parquet", pa.table({"activity": ["A"]}))

    with pytest.raises(LogFormatError, match="missing case column 'case:concept:name'"):
        read_log(path)


NESTED_XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="2.0" xmlns="http://www.xes-standard.org/">
  <string key="concept:name" value="the log itself"/>
  <global scope="trace"><string key="channel" value="UNKNOWN"/></global>
  <trace>
    <string key="concept:name" value="T-1"/>
    <string key="channel" value="web"/>
    <int key="priority" value="2"/>
    <event>
      <string key="concept:name" value="Open"/>
      <date key="time:timestamp" value="2024-03-01T09:00:00.500+01:00"/>
      <string key="org:resource" value="ann">
        <string key="team" value="first line"/>
      </string>
      <container key="address">
        <string key="city" value="Lyon"/>
        <container key="geo"><float key="lat" value="45.76"/></container>
      </container>
      <list key="tags">
        <values><string key="tag" value="vip"/><string key="tag" value="new"/></values>
      </list>
      <boolean key="urgent" value="FALSE"/>
      <id key="id:id" value="e-1"/>
    </event>
    <event>
      <string key="concept:name" value="Close"/>
      <int key="priority" value="5"/>
    </event>
  </trace>
</log>
"""


@pytest.mark.parametrize("suffix", [".xes", ".xes.gz"])
def test_xes_nested_typed_and_trace_attributes(
    tmp_path: Path, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / f"log{suffix}", NESTED_XES)

    with caplog.at_level(logging.WARNING, logger="casewatch.logs"):
        (trace,) = read_log(path)

    assert (trace.case_id, names(trace), trace.label) == ("T-1", ["Open", "Close"], None)
    opened, closed = trace.events
    assert opened.timestamp == dt.datetime(2024, 3, 1, 8, 0, 0, 500_000, tzinfo=UTC).timestamp()
    assert opened.attributes == {
        "case:channel": "web",
        "case:priority": 2,
        "org:resource": "ann",
        "org:resource.team": "first line",
        "address.city": "Lyon",
        "address.geo.lat": 45.76,
        "urgent": False,
        "id:id": "e-1",
    }
    # An event's own attribute wins over the trace's of the same name.
    assert closed.attributes == {"case:channel": "web", "case:priority": 2, "priority": 5}
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: list attribute 'tags' skipped: it has no single value"
    ]


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        ('<int key="cost" value="3.5"/>', "attribute 'cost': invalid int '3.5'"),
        ('<date key="time:timestamp" value="noon"/>', "attribute 'time:timestamp': invalid date"),
        ('<boolean key="ok" value="yes"/>', "attribute 'ok': invalid boolean 'yes'"),
        ('<string key="concept:name" value=""/><int key="concept:name" value="1"/>', "event has"),
    ],
)
@pytest.mark.parametrize("suffix", [".xes", ".xes.gz"])
def test_malformed_xes_value_names_line_trace_event_and_attribute(
    tmp_path: Path, body: str, cause: str, suffix: str
) -> None:
    text = (
        '<log xmlns="http://www.xes-standard.org/">\n'
        '<trace><string key="concept:name" value="1"/>\n'
        '  <event><string key="concept:name" value="A"/></event>\n'
        "</trace>\n"
        '<trace><string key="concept:name" value="2"/>\n'
        '  <event><string key="concept:name" value="A"/></event>\n'
        f'  <event>\n    <string key="concept:name" value="B"/>\n    {body}\n  </event>\n'
        "</trace></log>\n"
    )
    path = write(tmp_path / f"bad{suffix}", text)

    with pytest.raises(LogFormatError) as caught:
        read_log(path)

    assert str(caught.value).startswith(f"{path}: line 7 (trace 2, event 2): {cause}")


def test_xes_trace_without_a_case_id_names_its_line(tmp_path: Path) -> None:
    text = '<log>\n<trace>\n<event><string key="concept:name" value="A"/></event>\n</trace></log>'
    path = write(tmp_path / "bad.xes", text)

    with pytest.raises(LogFormatError) as caught:
        read_log(path)

    assert str(caught.value) == f"{path}: line 2 (trace 1): trace has no string 'concept:name'"


def test_malformed_xes_markup_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.xes", "<log>\n<trace>\n<event></trace>\n</log>\n")

    with pytest.raises(LogFormatError, match=r"mismatched tag: line 3, column \d+"):
        read_log(path)


def test_parquet_without_pyarrow_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_parquet(tmp_path / "log.parquet", pa.table({"activity": ["A"]}))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import now fails

    with pytest.raises(LogFormatError) as caught:
        read_log(path)

    assert str(caught.value) == (
        f"{path}: reading Parquet needs pyarrow: pip install 'casewatch[parquet]'"
    )
