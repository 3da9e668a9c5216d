"""Start Kafka and PostgreSQL together, for `loom dev`, the test fixtures and `make bench`."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from loom.errors import ServiceError
from loom.services._process import free_port
from loom.services.kafka import KafkaServer
from loom.services.postgres import PostgresServer
from loom.settings import LoomSettings

__all__ = ["LocalServices"]


@dataclass
class LocalServices:
    """A broker and a database under ``base_dir``, started side by side.

    ``settings()`` gives :class:`LoomSettings` pointed at them. If one fails to
    start the other is stopped again and the error names the one that failed.
    With ``preferred_ports`` (``loom dev``) they take the seed's well-known ports
    when those are free; either way the ports chosen the first time are kept in
    ``ports.json`` and reused, so addresses stay put across restarts.
    """

    base_dir: Path
    preferred_ports: bool = False
    kafka: KafkaServer = field(init=False)
    postgres: PostgresServer = field(init=False)

    def __post_init__(self) -> None:
        ports = self._ports()
        self.kafka = KafkaServer(
            self.base_dir / "kafka", port=ports["kafka"], controller_port=ports["controller"]
        )
        self.postgres = PostgresServer(self.base_dir / "postgres", port=ports["postgres"])

    def _ports(self) -> dict[str, int]:
        path = self.base_dir / "ports.json"
        if path.exists():
            saved: dict[str, int] = json.loads(path.read_text())
            return saved
        wanted = {"kafka": 9092, "controller": 9093, "postgres": 5432}
        ports = {name: free_port(preferred=p if self.preferred_ports else 0)
                 for name, p in wanted.items()}  # fmt: skip
        self.base_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ports))
        return ports

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
        values: dict[str, object] = {
            "kafka_bootstrap_servers": self.kafka.bootstrap_servers,
            "database_url": self.postgres.url,
            **overrides,
        }
        return LoomSettings(**values)  # type: ignore[arg-type]

    def __enter__(self) -> LocalServices:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
