"""The loop: consume, decode (every message becomes an event or a dead letter), score, publish,
checkpoint; rebalances, model reload and start-up checks around it."""

from casewatch.daemon.decode import EventDecoder, FieldNames
from casewatch.daemon.loop import Daemon

__all__ = ["Daemon", "EventDecoder", "FieldNames"]
