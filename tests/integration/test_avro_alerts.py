"""With Avro evaluations the alerts are Avro too, under their own registered schema.

Runs the daemon in-process (see ``tests.integration.test_registry_formats``): the ``mock://``
Schema Registry lives in one process.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import msgspec
import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from casewatch.kafka.broker import ensure_topics
from casewatch.kafka.feed import replay
from casewatch.kafka.registry import registry_client
from casewatch.scoring.alerts import CaseAlert, alert_id
from casewatch.settings import Settings
from tests.conftest import Broker
from tests.integration.alert_checks import expected_alerts, verdicts
from tests.integration.daemon_harness import case_events, read_records
from tests.integration.test_registry_formats import running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_avro_alerts_carry_the_avro_evaluation_and_read_like_json_alerts(
    kafka_broker: Broker, topics: dict[str, str], model_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    alerts_topic = topics["output"].removesuffix("-out") + "-alerts"
    ensure_topics(bootstrap, [alerts_topic], partitions=None if kafka_broker.embedded else 4)
    settings = Settings(
        bootstrap_servers=bootstrap, input_topic=topics["input"], output_topic=topics["output"],
        dlq_topic=topics["dlq"], group_id=topics["group"], model_path=model_path,
        metrics_host="127.0.0.1", metrics_port=0, commit_interval_seconds=0.3,
        max_batch_wait_ms=50, model_watch_interval_seconds=0,
        schema_registry_url=f"mock://{uuid.uuid4().hex}", output_format="avro",
        score_policy="every-event", alert_topic=alerts_topic, alert_after=3,
    )  # fmt: skip
    events = case_events(40)
    expected = expected_alerts(verdicts(model_path, events), 3)
    with running(settings):
        replay(events, bootstrap_servers=bootstrap, topic=topics["input"])
        records = read_records(bootstrap, alerts_topic, until=len(expected), timeout=60)
    client = registry_client(settings.registry_config())
    assert client.get_latest_version(f"{alerts_topic}-value").schema.schema_type == "AVRO"
    read = AvroDeserializer(client)
    context = SerializationContext(alerts_topic, MessageField.VALUE)
    # Avro resolves by name: the record converts into the JSON alert, field for field.
    alerts = [msgspec.convert(read(r.value, context), CaseAlert) for r in records]
    assert sorted((a.case_id, a.kind, a.evaluation.n_events) for a in alerts) == sorted(expected)
    for alert in alerts:
        assert alert.alert_id == alert_id(alert.kind, alert.evaluation.evaluation_id)
        assert alert.model == alert.evaluation.model
