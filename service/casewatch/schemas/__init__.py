"""Schemas casewatch registers and writes with (package data, read with ``schema_text``)."""

from __future__ import annotations

import importlib.resources

EVALUATION_AVRO = "evaluation.avsc"
EVENT_AVRO = "event.avsc"
EVENT_JSON_SCHEMA = "event.schema.json"


def schema_text(name: str) -> str:
    """The text of a bundled schema file."""
    return (importlib.resources.files(__name__) / name).read_text(encoding="utf-8")


__all__ = ["EVALUATION_AVRO", "EVENT_AVRO", "EVENT_JSON_SCHEMA", "schema_text"]
