"""CSV event logs: one row per event, in the pm4py layout or casewatch's own."""

from __future__ import annotations

import csv
import io
from typing import BinaryIO, cast

from casewatch.offline.logs.columns import LogColumns, resolve
from casewatch.offline.logs.table import TableBuilder
from casewatch.offline.logs.trace import MalformedLogError, Progress, Trace, report_progress

__all__ = ["read_csv"]


def read_csv(
    stream: io.BufferedIOBase, progress: Progress | None, columns: LogColumns | None
) -> list[Trace]:
    rows = csv.reader(io.TextIOWrapper(cast(BinaryIO, stream), encoding="utf-8-sig", newline=""))
    header = next(rows, None)
    if header is None:
        raise MalformedLogError("empty file, expected a header row")
    builder = TableBuilder(
        resolve(header, columns), columns.timestamp_format if columns else None, text=True
    )
    for count, row in enumerate(rows, start=1):
        report_progress(progress, count)
        if not row:
            continue
        line = rows.line_num
        if len(row) != len(header):
            raise MalformedLogError(f"line {line}: {len(row)} fields, header has {len(header)}")
        builder.add(row, f"line {line}")
    return builder.traces()
