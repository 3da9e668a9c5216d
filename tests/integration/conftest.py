"""Real Kafka and PostgreSQL for the integration tests: started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loom.catalog import Catalog, default_catalog
from loom.services import LocalServices
from loom.settings import LoomSettings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServices]:
    with LocalServices(tmp_path_factory.mktemp("services")) as running:
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
