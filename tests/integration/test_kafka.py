"""A real broker: topics from the catalog, binary-mode CloudEvents round-trip."""

from __future__ import annotations

from confluent_kafka import Producer

from loom.catalog import Catalog
from loom.events import from_kafka, make_event, to_kafka
from loom.kafka import create_topics, describe_topics, list_topics, producer_config
from loom.settings import LoomSettings
from tests.integration.ingest_helpers import consume_all


def test_every_catalog_topic_exists_with_its_partitions(
    catalog: Catalog, settings: LoomSettings, topics: list[str]
) -> None:
    assert set(topics) <= set(list_topics(settings))
    infos = {i.name: i for i in describe_topics(settings, topics)}
    for t in catalog:
        assert infos[t.type].partitions == t.partitions_or(settings.kafka_default_partitions)
        assert infos[t.type].config["compression.type"] == t.compression


def test_retention_of_topics_matches_the_catalog(
    catalog: Catalog, settings: LoomSettings, topics: list[str]
) -> None:
    names = ["device.audio.raw", "device.health.heartrate.raw", "device.metadata.raw"]
    got = {i.name: int(i.config["retention.ms"]) for i in describe_topics(settings, names)}
    day = 24 * 3600 * 1000
    assert got == {n: catalog[n].retention_ms for n in names}
    assert got == {
        "device.audio.raw": 7 * day,
        "device.health.heartrate.raw": 60 * day,
        "device.metadata.raw": 90 * day,
    }


def test_creating_topics_again_changes_nothing_and_restores_configs(
    catalog: Catalog, settings: LoomSettings, topics: list[str]
) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    set_op = AlterConfigOpType.SET
    drifted = ConfigResource(
        ResourceType.TOPIC,
        "device.sensor.gps.raw",
        incremental_configs=[ConfigEntry("retention.ms", "1000", incremental_operation=set_op)],
    )
    for future in admin.incremental_alter_configs([drifted]).values():
        future.result(timeout=30)
    created, updated = create_topics(catalog, settings)
    assert created == []
    assert len(updated) == len(catalog)
    (info,) = describe_topics(settings, ["device.sensor.gps.raw"])
    assert info.config["retention.ms"] == str(catalog["device.sensor.gps.raw"].retention_ms)


def test_binary_cloudevent_round_trips_with_every_attribute(
    catalog: Catalog, settings: LoomSettings, topics: list[str]
) -> None:
    gps = catalog["device.sensor.gps.raw"]
    data = {
        "device_id": "pixel-7",
        "timestamp": "2026-11-25T08:15:30Z",
        "latitude": 52.52,
        "longitude": 13.405,
        "accuracy": 4.5,
    }
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    sent = make_event(
        gps.type,
        data,
        source="/devices/pixel-7",
        device_id="pixel-7",
        dataschema=gps.schema_id,
        subject="fix",
        traceparent=trace,
    )
    record = to_kafka(sent)
    producer = Producer(producer_config(settings))
    errors: list[object] = []
    producer.produce(
        gps.topic(settings.kafka_topic_prefix),
        value=record.value,
        key=record.key,
        headers=list(record.headers.items()),
        on_delivery=lambda err, _msg: errors.append(err),
    )
    assert producer.flush(30) == 0
    assert errors == [None]

    wanted_id = sent.get_id().encode()
    (message,) = [
        m for m in consume_all(settings, gps.topic(settings.kafka_topic_prefix))
        if dict(m.headers() or [])["ce_id"] == wanted_id
    ]  # fmt: skip
    assert message.key() == b"pixel-7"
    headers = dict(message.headers() or [])
    assert headers["ce_type"] == b"device.sensor.gps.raw"
    assert headers["content-type"] == b"application/json"
    got = from_kafka(message.headers(), message.key(), message.value())
    for attr in (
        "id",
        "source",
        "type",
        "specversion",
        "time",
        "datacontenttype",
        "dataschema",
        "subject",
    ):
        assert got.get_attributes()[attr] == sent.get_attributes()[attr], attr
    assert got.get_extension("partitionkey") == "pixel-7"
    assert got.get_extension("traceparent") == sent.get_extension("traceparent")
    assert got.get_data() == data
