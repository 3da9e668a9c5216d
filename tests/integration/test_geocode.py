"""The geocode function as a host runs it: its lifespan loads the places and keeps the
per-device state in PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from functions.geocode.handler import handle
from functions.geocode.settings import GeocodeSettings
from functions.ingest import IngestSettings
from loom.testing import FunctionHarness, assert_emitted, example_event


async def test_the_lifespan_loads_places_and_keeps_state_in_postgres(
    ingest_settings: IngestSettings, admin: str
) -> None:
    pytest.importorskip("reverse_geocoder", reason="needs the reverse-geocoder package")
    settings = GeocodeSettings(database_url=ingest_settings.database_url)
    golden = example_event("device.sensor.gps.raw", name="seed-phone")
    device = f"geo-{uuid.uuid4().hex[:8]}"
    event = replace(golden, data={**golden.data, "device_id": device}, device_id=device)
    async with FunctionHarness(handle, settings=settings) as harness:
        (address,) = assert_emitted(await harness.call(event), "location.address.geocoded", 1)
        assert (address.data["admin1"], address.data["country_code"]) == ("Berlin", "DE")
        again = await harness.call(event)  # redelivered: the same address, the same id
        assert [e.id for e in again] == [address.id]
        saved = await harness.state.store.get(device)
    assert saved["sent"]["lat"] == event.data["latitude"]
