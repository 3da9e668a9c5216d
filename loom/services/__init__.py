"""Real Kafka and PostgreSQL as local processes, for `loom dev`, tests and benchmarks."""

from loom.services.kafka import KafkaServer, resolve_kafka
from loom.services.local import LocalServices
from loom.services.postgres import PostgresServer

__all__ = ["KafkaServer", "LocalServices", "PostgresServer", "resolve_kafka"]
