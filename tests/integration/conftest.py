"""Real Kafka and PostgreSQL for the integration tests: started once per session."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from functions.ingest import IngestSettings, create_app
from functions.ingest.auth import create_admin_token
from loom.catalog import Catalog, default_catalog
from loom.db import migrate
from loom.services import LocalServices
from loom.settings import LoomSettings
from tests.integration.ingest_helpers import register


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services() -> Iterator[LocalServices]:
    # Not under pytest's basetemp: another pytest session on the machine makes that 0700
    # again when it starts, and PostgreSQL (its own user when run as root) loses its way
    # into its data directory.
    with (
        tempfile.TemporaryDirectory(prefix="loom-test-services-") as data,
        LocalServices(Path(data)) as running,
    ):
        yield running


@pytest.fixture(scope="session")
def settings(services: LocalServices) -> LoomSettings:
    return services.settings()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture(scope="session")
def topics(catalog: Catalog, settings: LoomSettings) -> list[str]:
    """Every catalog topic, created on the session's broker."""
    from loom.kafka import create_topics

    create_topics(catalog, settings)
    return [t.topic(settings.kafka_topic_prefix) for t in catalog]


@pytest.fixture(scope="session")
def ingest_settings(services: LocalServices, topics: list[str]) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap_servers=services.kafka.bootstrap_servers,
        database_url=services.postgres.url,
    )


@pytest.fixture(scope="session")
def admin(ingest_settings: IngestSettings) -> str:
    migrate(ingest_settings.database_url, backend=ingest_settings.store_backend)
    return create_admin_token(ingest_settings.database_url, "tests")


@pytest.fixture(scope="session")
def client(ingest_settings: IngestSettings, admin: str) -> Iterator[TestClient]:
    with TestClient(create_app(ingest_settings)) as c:
        deadline = time.monotonic() + 30
        while c.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert c.get("/readyz").status_code == 200, c.get("/readyz").json()
        yield c


@pytest.fixture
def device(client: TestClient, admin: str) -> dict[str, Any]:
    return register(client, admin, device_type="phone", platform="android")
