"""Parquet event logs (as pandas, pm4py or Spark write them): one row per event.

pyarrow is an optional extra: the daemon never reads Parquet, and pyarrow would more than double
the size of its image.
"""

from __future__ import annotations

import io
from typing import Any

from casewatch.offline.logs.columns import LogColumns, resolve
from casewatch.offline.logs.table import TableBuilder
from casewatch.offline.logs.trace import MalformedLogError, Progress, Trace, report_progress

__all__ = ["read_parquet"]

_BATCH_ROWS = 65_536


def _pyarrow() -> Any:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - only Parquet logs need it
    except ImportError:
        raise MalformedLogError(
            "reading Parquet needs pyarrow: pip install 'casewatch[parquet]'"
        ) from None
    return pq


def read_parquet(
    stream: io.BufferedIOBase, progress: Progress | None, columns: LogColumns | None
) -> list[Trace]:
    pq = _pyarrow()
    import pyarrow as pa  # noqa: PLC0415

    try:
        table = pq.ParquetFile(stream)
        header = list(table.schema_arrow.names)
        builder = TableBuilder(
            resolve(header, columns), columns.timestamp_format if columns else None
        )
        count = 0
        for batch in table.iter_batches(batch_size=_BATCH_ROWS):
            cells = [column.to_pylist() for column in batch.columns]
            for row in zip(*cells, strict=True):
                count += 1
                report_progress(progress, count)
                builder.add(row, f"row {count}")
    except pa.ArrowException as exc:
        raise MalformedLogError(" ".join(str(exc).split()) or type(exc).__name__) from None
    return builder.traces()
