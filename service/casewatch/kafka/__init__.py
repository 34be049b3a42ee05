"""Kafka at the edges: client configuration, the output producer and its size guard, the
embedded broker, and the event feed that replays a log onto a topic."""

from casewatch.kafka.broker import EmbeddedBroker, embedded_broker, ensure_topics
from casewatch.kafka.config import consumer_config, is_fatal, producer_config
from casewatch.kafka.feed import replay
from casewatch.kafka.producer import OutputProducer

__all__ = [
    "EmbeddedBroker",
    "OutputProducer",
    "consumer_config",
    "embedded_broker",
    "ensure_topics",
    "is_fatal",
    "producer_config",
    "replay",
]
