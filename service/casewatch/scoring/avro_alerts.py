"""Case alerts as Avro, when the evaluations are (``CASEWATCH_OUTPUT_FORMAT=avro``).

The alert's schema is built from the bundled evaluation schema (``evaluation.avsc``): its
``evaluation`` field is that very record, so whatever an evaluation carries, its alert carries
too, and the two never drift apart. It is registered under ``<alert topic>-value`` at start-up,
like the evaluation schema, so a registry that refuses it stops the daemon before it consumes
anything. Avro resolves fields by name, so the field order (``evaluation`` before ``model``, which
reuses the evaluation's model record) does not change the record's content.
"""

from __future__ import annotations

import json
from typing import Any

from casewatch.kafka.registry import EVALUATION_AVRO, schema_text
from casewatch.scoring.avro_output import RegisteredAvroEncoder


def alert_schema() -> str:
    """The Avro schema of a ``CaseAlert`` record, around the bundled evaluation schema."""
    evaluation = json.loads(schema_text(EVALUATION_AVRO))
    model_type = next(f["type"] for f in evaluation["fields"] if f["name"] == "model")
    return json.dumps(
        {
            "type": "record",
            "name": "CaseAlert",
            "namespace": evaluation.get("namespace", "casewatch"),
            "doc": "A case first judged anomalous (opened), or such a case leaving (closed).",
            "fields": [
                {"name": "alert_id", "type": "string", "doc": "Same kind and evaluation, same id."},
                {"name": "kind", "type": "string", "doc": "opened or closed."},
                {"name": "case_id", "type": "string"},
                {"name": "consecutive_anomalous", "type": "long"},
                {"name": "alert_after", "type": "long"},
                {"name": "evaluation", "type": evaluation, "doc": "The evaluation that raised it."},
                # The evaluation declared the model record; a named type is declared only once.
                {"name": "model", "type": _type_name(model_type)},
            ],
        }
    )


def _type_name(declared: Any) -> Any:
    return declared["name"] if isinstance(declared, dict) else declared


class AvroAlertEncoder(RegisteredAvroEncoder):
    """Case alerts with ``alert_schema()``."""

    def __init__(self, client: Any, topic: str) -> None:
        super().__init__(client, topic, alert_schema(), "alert")
