"""``casewatch produce``: replay an event log onto a topic as input events keyed by case id.

``--format avro|protobuf|json_schema`` writes the values through a Schema Registry
(``--schema-registry``), as ``CASEWATCH_INPUT_FORMAT`` reads them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from casewatch.cli._log_args import LOG_HELP
from casewatch.daemon.startup import warn_unknown_env
from casewatch.errors import ConfigError
from casewatch.kafka.feed import replay
from casewatch.kafka.reachability import cluster_metadata
from casewatch.kafka.registry import registry_client
from casewatch.kafka.registry_feed import REGISTRY_FORMATS, registry_event_encoder
from casewatch.offline.logs import interleave, read_log

_BOOTSTRAP_ENV = "CASEWATCH_BOOTSTRAP_SERVERS"
_REGISTRY_ENV = "CASEWATCH_SCHEMA_REGISTRY_URL"
_REACH_TIMEOUT_SECONDS = 8.0
# What is still queued when the log ends; a broker lost mid-replay fails the command this late.
_FLUSH_TIMEOUT_SECONDS = 15.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", type=Path, metavar="LOG", help=LOG_HELP)
    parser.add_argument("--topic", required=True, metavar="NAME", help="topic to produce to")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get(_BOOTSTRAP_ENV),
        metavar="HOST:PORT",
        help=f"Kafka bootstrap servers (default: ${_BOOTSTRAP_ENV})",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="N",
        help="events per second; 0 = as fast as possible",
    )
    parser.add_argument(
        "--no-close-marker",
        dest="close_marker",
        action="store_false",
        help="do not mark each case's last event with close=true",
    )
    parser.add_argument(
        "--limit-cases", type=int, default=None, metavar="N", help="replay only the first N cases"
    )
    parser.add_argument(
        "--open-cases", type=int, default=64, metavar="N", help="cases in flight at once"
    )
    parser.add_argument(
        "--format",
        choices=("json", *REGISTRY_FORMATS),
        default="json",
        help="value encoding; the registry formats register the bundled event schema",
    )
    parser.add_argument(
        "--schema-registry",
        default=os.environ.get(_REGISTRY_ENV),
        metavar="URL",
        help=f"Schema Registry URL for the registry formats (default: ${_REGISTRY_ENV})",
    )


def run(args: argparse.Namespace) -> int:
    # The bootstrap default is a setting: a misspelled CASEWATCH_* name is said, not ignored.
    warn_unknown_env(os.environ)
    if not args.bootstrap:
        raise ConfigError(f"no bootstrap servers: pass --bootstrap or set {_BOOTSTRAP_ENV}")
    if args.rate < 0:
        raise ConfigError("--rate must be 0 or more")
    if args.format != "json" and not args.schema_registry:
        raise ConfigError(
            f"--format {args.format} needs a Schema Registry: pass --schema-registry or set "
            f"{_REGISTRY_ENV}"
        )
    # A producer retries unreachable brokers forever; one bounded request answers first.
    cluster_metadata({"bootstrap.servers": args.bootstrap}, timeout=_REACH_TIMEOUT_SECONDS)
    traces = read_log(args.log)
    if args.limit_cases is not None:
        traces = traces[: max(0, args.limit_cases)]
    events = interleave(traces, open_cases=args.open_cases, close_marker=args.close_marker)
    encode = None
    if args.format != "json":
        client = registry_client({"url": args.schema_registry})
        encode = registry_event_encoder(args.format, client, args.topic)
    stats = replay(
        events,
        bootstrap_servers=args.bootstrap,
        topic=args.topic,
        rate=args.rate,
        encode=encode,
        flush_timeout=_FLUSH_TIMEOUT_SECONDS,
    )
    print(
        f"produced {stats.events} events of {stats.cases} cases to {args.topic} "
        f"in {stats.seconds:.1f} s ({stats.events_per_second:,.0f} events/s)"
    )
    return 0
