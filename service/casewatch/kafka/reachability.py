"""One bounded metadata request that says why the brokers cannot be reached.

A client pointed at brokers that refuse connections retries forever; a metadata request with a
timeout turns that into one answer. librdkafka's exception only says the request timed out, so
the cause (connection refused, name not resolved, TLS or SASL failure...) comes from the error
callback, which ``poll`` serves.
"""

from __future__ import annotations

from typing import Any

import confluent_kafka

from casewatch.errors import KafkaFailure
from casewatch.kafka import clients


class BrokersUnreachable(KafkaFailure):
    """No broker answered a metadata request in time; ``cause`` is librdkafka's reason."""

    def __init__(self, brokers: object, cause: str) -> None:
        self.problem = f"cannot reach the brokers {brokers}"
        self.cause = cause
        super().__init__(f"{self.problem}: {cause}")


def cluster_metadata(config: dict[str, Any], *, timeout: float) -> tuple[Any, Any]:
    """An admin client and the cluster's metadata within ``timeout`` seconds.

    Raises BrokersUnreachable instead. The client logs nothing itself: its error callback
    carries the cause once, and the caller reports it in one line.
    """
    causes: list[str] = []
    client = clients.admin(
        {
            **config,
            "log_level": 0,
            "error_cb": lambda error: causes.append(error.str()),
        }
    )
    try:
        return client, client.list_topics(timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        client.poll(0)
        raise BrokersUnreachable(
            config.get("bootstrap.servers"), causes[0] if causes else str(exc)
        ) from None
