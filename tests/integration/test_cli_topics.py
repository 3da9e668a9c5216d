"""`loom topics` against the session's real broker."""

from __future__ import annotations

from loom.catalog import Catalog
from loom.settings import LoomSettings
from tests.loom.test_cli import loom


def test_topics_create_list_describe(catalog: Catalog, settings: LoomSettings) -> None:
    env = {"LOOM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    created = loom("topics", "create", env=env)
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout
    listed = loom("topics", "list", env=env)
    assert set(listed.stdout.split()) >= {t.type for t in catalog}
    described = loom("topics", "describe", "device.audio.raw", "device.sensor.gps.raw", env=env)
    assert described.returncode == 0, described.stderr
    assert str(catalog["device.audio.raw"].retention_ms) in described.stdout
    assert "differs" not in described.stdout
    assert described.stdout.count("matches") == 2


def test_topics_describe_unknown_topic_is_a_clear_error(settings: LoomSettings) -> None:
    env = {"LOOM_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers}
    done = loom("topics", "describe", "no.such.topic", env=env)
    assert done.returncode == 2
    assert "no such topic(s) on the broker: no.such.topic" in done.stderr


def test_topics_against_a_dead_broker_says_so() -> None:
    from loom.services._process import free_port

    env = {"LOOM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    done = loom("topics", "list", env=env)
    assert done.returncode == 2
    assert "cannot reach Kafka at 127.0.0.1:" in done.stderr
