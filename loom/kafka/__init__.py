"""Kafka clients and topic administration, configured from settings and the catalog."""

from loom.kafka.config import admin_config, consumer_config, producer_config
from loom.kafka.producer import (
    AsyncProducer,
    KafkaUnavailable,
    OutgoingRecord,
    ProducerQueueFull,
    RecordTooLarge,
)
from loom.kafka.topics import TopicInfo, create_topics, describe_topics, list_topics, topic_config

__all__ = [
    "AsyncProducer",
    "KafkaUnavailable",
    "OutgoingRecord",
    "ProducerQueueFull",
    "RecordTooLarge",
    "TopicInfo",
    "admin_config",
    "consumer_config",
    "create_topics",
    "describe_topics",
    "list_topics",
    "producer_config",
    "topic_config",
]
