"""Arguments naming the log to read and, for CSV and Parquet, its columns."""

from __future__ import annotations

import argparse

from casewatch.offline.logs.columns import LogColumns

LOG_HELP = "event log: .csv[.gz], .parquet, .xes[.gz] or .jsonl[.gz]"


def add_column_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "columns (CSV and Parquet)",
        # Kept as written by the help formatter, so wrapped here.
        "default: the pm4py names (case:concept:name, concept:name, time:timestamp),\n"
        "or case_id, activity_name, timestamp, event_position when the header has case_id",
    )
    group.add_argument("--case-column", metavar="NAME", help="column holding the case id")
    group.add_argument("--activity-column", metavar="NAME", help="column holding the activity")
    group.add_argument("--timestamp-column", metavar="NAME", help="column holding the timestamp")
    group.add_argument(
        "--timestamp-format", metavar="FORMAT",
        help="strptime format of text timestamps that are not ISO-8601, e.g. '%%d/%%m/%%Y %%H:%%M'",
    )  # fmt: skip
    group.add_argument(
        "--position-column", metavar="NAME",
        help="column holding the event's place in its case (default: order by timestamp)",
    )  # fmt: skip


def log_columns(args: argparse.Namespace) -> LogColumns:
    return LogColumns(
        case=args.case_column,
        activity=args.activity_column,
        timestamp=args.timestamp_column,
        position=args.position_column,
        timestamp_format=args.timestamp_format,
    )
