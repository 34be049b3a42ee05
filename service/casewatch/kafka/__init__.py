"""Kafka at the edges: client configuration, error mapping, the output producer and its size
guard, the embedded broker, and the event feed that replays a log onto a topic."""

from casewatch.kafka.broker import EmbeddedBroker, embedded_broker, ensure_topics
from casewatch.kafka.config import ClientOptions, consumer_config, producer_config
from casewatch.kafka.errors import is_fatal, kafka_errors
from casewatch.kafka.feed import replay
from casewatch.kafka.producer import OutputProducer

__all__ = [
    "ClientOptions",
    "EmbeddedBroker",
    "OutputProducer",
    "consumer_config",
    "embedded_broker",
    "ensure_topics",
    "is_fatal",
    "kafka_errors",
    "producer_config",
    "replay",
]
