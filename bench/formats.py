"""Input decode throughput per wire format: the same events as JSON, Avro, Protobuf and JSON
Schema values, each decoded to a ``StreamingEvent`` by the daemon's decoder for that format.

    python bench/formats.py [--cases 2000] [--repeat 3]

The registry formats go through confluent-kafka's deserializers against its in-process
``mock://`` registry (schemas cached after the first value, as with a real registry), so the
figures are the per-value cost of the serdes plus casewatch's field mapping, without network.
"""

from __future__ import annotations

import argparse
import importlib.resources
import time
import uuid
from pathlib import Path

from casewatch.daemon.decode import FieldNames
from casewatch.daemon.wire_formats import event_decoder
from casewatch.kafka.feed import encode_event
from casewatch.kafka.registry import registry_client
from casewatch.kafka.registry_feed import registry_event_encoder
from casewatch.offline.logs import interleave, read_log

TOPIC = "bench-formats"
FORMATS = ("json", "avro", "protobuf", "json_schema")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    log = Path(str(importlib.resources.files("casewatch") / "data" / "p2p-0.3-1.csv.gz"))
    events = list(interleave(read_log(log)[: args.cases], close_marker=True))
    print(f"{len(events)} events of {args.cases} cases; best of {args.repeat} runs")
    for fmt in FORMATS:
        registry = {"url": f"mock://{uuid.uuid4().hex}"}
        if fmt == "json":
            values = [encode_event(event) for event in events]
        else:
            encode = registry_event_encoder(fmt, registry_client(registry), TOPIC)
            values = [encode(event) for event in events]
        decoder = event_decoder(
            fmt, FieldNames(), topic=TOPIC, max_message_bytes=1 << 20, registry=registry
        )
        best = 0.0
        for _ in range(args.repeat):
            started = time.perf_counter()
            for offset, value in enumerate(values):
                decoder.decode(value, b"key", 0, offset)
            best = max(best, len(values) / (time.perf_counter() - started))
        size = sum(map(len, values)) / len(values)
        print(f"{fmt:12s} {best:>12,.0f} events/s   {size:5.0f} bytes per value")


if __name__ == "__main__":
    main()
