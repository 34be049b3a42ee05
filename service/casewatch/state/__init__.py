"""The open cases: the columnar store, its binary codec, change tracking, the changelog topic
they are written to, restore on assignment, and idle expiry in stream time."""

from casewatch.state.changes import ChangeTracker, StateChanges
from casewatch.state.codec import StateFormatError, decode_state, encode_row
from casewatch.state.restore import ReplayGuard, Restorer
from casewatch.state.store import CaseStore, StoreShape
from casewatch.state.stream_time import IdleExpiry, StreamTime

__all__ = [
    "CaseStore",
    "ChangeTracker",
    "IdleExpiry",
    "ReplayGuard",
    "Restorer",
    "StateChanges",
    "StateFormatError",
    "StoreShape",
    "StreamTime",
    "decode_state",
    "encode_row",
]
