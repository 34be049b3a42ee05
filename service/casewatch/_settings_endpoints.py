"""The first settings of every deployment: the cluster, the topics and the model.

``casewatch.settings.Settings`` extends them with everything else; fields are listed (and
documented) in declaration order, these first. Shared field types live here too.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import BaseSettings, NoDecode

from casewatch._settings_environment import names_list, off_is_none, policy_alias

# Field names of the XES standard extension attributes, as flattened by most exporters.
XES_FIELD_NAMES = {
    "case_id_field": "case:concept:name",
    "activity_field": "concept:name",
    "timestamp_field": "time:timestamp",
}

NonEmptyStr = Annotated[str, Field(min_length=1)]
# A duration that ``off`` (or 0, or empty) switches off.
SecondsOrOff = Annotated[
    float | None, BeforeValidator(off_is_none), AfterValidator(lambda value: value or None)
]
Names = Annotated[list[str], NoDecode, BeforeValidator(names_list)]
ScorePolicy = Annotated[Literal["close", "every-event"], BeforeValidator(policy_alias)]


def bundled_model_path() -> Path:
    """The reference scorer shipped inside the package."""
    return Path(str(importlib.resources.files("casewatch") / "models" / "reference.onnx"))


class EndpointSettings(BaseSettings):
    """Where events come from, where evaluations go, and which model scores them."""

    bootstrap_servers: NonEmptyStr = Field(
        "localhost:9092", description="Kafka bootstrap servers, comma-separated."
    )
    input_topic: NonEmptyStr = Field("casewatch-events", description="Topic of input events.")
    output_topic: NonEmptyStr = Field(
        "casewatch-evaluations", description="Topic evaluations are published to."
    )
    dlq_topic: NonEmptyStr = Field(
        "casewatch-dlq",
        description="Dead-letter topic for input messages that cannot be decoded.",
    )
    group_id: NonEmptyStr = Field("casewatch", description="Kafka consumer group id.")
    model_path: Path = Field(
        default_factory=bundled_model_path,
        description="ONNX scorer to load; defaults to the reference model bundled in the package.",
        json_schema_extra={"doc_default": "bundled `casewatch/models/reference.onnx`"},
    )
    model_watch_interval_seconds: SecondsOrOff = Field(
        5.0,
        ge=0,
        description=(
            "How often to check the model file for changes and hot-reload it (0 or empty: only "
            "on SIGHUP). Replace the file atomically (write elsewhere, then rename)."
        ),
    )
