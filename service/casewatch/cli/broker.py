"""``casewatch broker``: run the embedded Kafka-protocol broker until SIGTERM or SIGINT.

The first line on stdout is ``bootstrap=HOST:PORT`` so a parent process can read the address.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from casewatch.kafka.broker import EmbeddedBroker, ensure_topics


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME",
        help="create this topic at start-up (repeatable)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        metavar="N",
        help="partitions for --topic where the broker supports CreateTopics "
        "(the embedded broker always auto-creates 4)",
    )


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    broker = EmbeddedBroker()
    try:
        if args.topic:
            ensure_topics(broker.bootstrap_servers, args.topic, partitions=args.partitions)
        print(f"bootstrap={broker.bootstrap_servers}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        broker.close()
    return 0
