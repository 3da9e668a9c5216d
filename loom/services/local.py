"""Start Kafka and PostgreSQL together, for `loom dev`, the test fixtures and `make bench`."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from loom.errors import ServiceError
from loom.services.kafka import KafkaServer
from loom.services.postgres import PostgresServer
from loom.settings import LoomSettings

__all__ = ["LocalServices"]


@dataclass
class LocalServices:
    """A broker and a database under ``base_dir``, started side by side.

    ``settings()`` gives :class:`LoomSettings` pointed at them. If one fails to
    start the other is stopped again and the error names the one that failed.
    """

    base_dir: Path
    kafka: KafkaServer = field(init=False)
    postgres: PostgresServer = field(init=False)

    def __post_init__(self) -> None:
        self.kafka = KafkaServer(self.base_dir / "kafka")
        self.postgres = PostgresServer(self.base_dir / "postgres")

    def start(self, timeout: float = 120.0) -> LocalServices:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures: dict[str, Future[object]] = {
                "Kafka": pool.submit(self.kafka.start, timeout),
                "PostgreSQL": pool.submit(self.postgres.start, timeout),
            }
            errors: dict[str, Exception] = {}
            for name, future in futures.items():
                try:
                    future.result()
                except Exception as exc:  # noqa: BLE001 - collected and re-raised below
                    errors[name] = exc
        if errors:
            self.stop()
            detail = "\n".join(f"{name}: {exc}" for name, exc in errors.items())
            raise ServiceError(f"local services failed to start:\n{detail}")
        return self

    def stop(self) -> None:
        self.kafka.stop()
        self.postgres.stop()

    def settings(self, **overrides: object) -> LoomSettings:
        return LoomSettings(
            kafka_bootstrap_servers=self.kafka.bootstrap_servers,
            database_url=self.postgres.url,
            **overrides,  # type: ignore[arg-type]
        )

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
