"""Who receives a sync broadcast, and under which id (the same on every delivery)."""

from __future__ import annotations

from dataclasses import replace

from functions.sync.handler import SYNC_TYPES, handle, item_id, receivers
from loom.catalog import default_catalog
from loom.testing import example_event


def test_it_consumes_every_broadcast_type_of_the_catalog_and_makes_nothing() -> None:
    broadcasts = {
        t.type for t in default_catalog()
        if t.type.startswith("device.sync.") and t.type.endswith(".broadcast")
    }  # fmt: skip
    assert set(SYNC_TYPES) == broadcasts
    assert len(broadcasts) == 3
    assert handle.spec.produces == ()


def test_everyone_but_the_sender_and_the_origin_receives_it() -> None:
    devices = ["watch", "laptop", "phone", "tablet"]
    assert receivers(devices, sender="phone") == ["laptop", "tablet", "watch"]
    assert receivers(devices, sender="phone", origin="laptop") == ["tablet", "watch"]
    assert receivers(["phone"], sender="phone") == []


def test_an_item_id_is_the_same_on_every_delivery_and_differs_per_receiver() -> None:
    event = example_event("device.sync.clipboard.broadcast")
    again = replace(event)  # the same broadcast delivered once more
    assert item_id(event, "tablet") == item_id(again, "tablet")
    assert item_id(event, "tablet") != item_id(event, "watch")
    other = replace(event, id="another-broadcast")
    assert item_id(other, "tablet") != item_id(event, "tablet")
    elsewhere = replace(event, source="/devices/somebody-else")
    assert item_id(elsewhere, "tablet") != item_id(event, "tablet")
