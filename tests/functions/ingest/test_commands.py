"""Remote control as ingest sees it, without services: which types are commands and which
are dangerous, who may receive them, what a command looks like on the wire."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from functions.commands.queue import NOTIFY_CHANNEL, Command, NewCommand, command_types
from functions.ingest.accept import Acceptor
from functions.ingest.auth import Principal
from functions.ingest.command_notify import REVOKED_CHANNEL, CommandNotifier
from functions.ingest.command_stream import _BadFrame, _frame
from functions.ingest.commands import device_only
from functions.ingest.limits import DEVICE_BODY_LIMIT, DeclaredSizeLimit
from functions.ingest.problems import BadRequest, Forbidden
from loom.catalog import EventType, default_catalog
from loom.cehttp import parse_structured
from loom.events import PARTITION_KEY, from_kafka, to_kafka
from loom.testing import example_event

DANGEROUS = {
    "device.command.shell.execute",
    "device.command.keystroke.send",
    "device.command.file.transfer",
}


def test_devices_cannot_post_commands_and_three_kinds_are_dangerous() -> None:
    catalog = default_catalog()
    commands = command_types(catalog)
    assert len(commands) == 9
    assert not [t.type for t in commands if t.ingest]
    assert {t.type for t in commands if t.dangerous} == DANGEROUS
    assert not [t.type for t in catalog if t.dangerous and not t.type.startswith("device.command")]


def test_a_dangerous_type_devices_could_post_is_refused_by_the_catalog() -> None:
    entry = default_catalog()["device.command.shell.execute"].model_dump()
    with pytest.raises(ValidationError, match="cannot be posted by devices"):
        EventType.model_validate({**entry, "ingest": True})


def test_the_front_door_refuses_a_command_from_a_device() -> None:
    event = example_event("device.command.shell.execute").to_cloudevent()
    device = Principal(kind="device", device_id="macbook-ada")
    with pytest.raises(BadRequest, match="devices cannot send it"):
        Acceptor(default_catalog(), "").accept(event, device)


def test_only_the_device_itself_receives_its_commands() -> None:
    device_only(Principal(kind="device", device_id="phone"), "phone")
    with pytest.raises(Forbidden, match="not the admin's"):
        device_only(Principal(kind="admin", label="ops"), "phone")
    with pytest.raises(Forbidden, match="not device 'phone'"):
        device_only(Principal(kind="device", device_id="laptop"), "phone")


def _command() -> tuple[NewCommand, Command]:
    catalog = default_catalog()
    data = {**example_event("device.command.app.launch").data, "device_id": "phone",
            "command_id": "c-1"}  # fmt: skip
    at = datetime(2026, 11, 25, 8, 15, 30, tzinfo=UTC)
    new = NewCommand("c-1", "phone", catalog["device.command.app.launch"], data, "ops")
    row = Command(command_id="c-1", device_id="phone", sequence=7, type=new.event_type.type,
                  source=new.source, data=data, issued_by="ops", issued_at=at, expires_at=at,
                  delivered_at=None, delivery_attempts=0, acked_at=None, status="queued",
                  result=None, responded_at=None)  # fmt: skip
    return new, row


def test_a_device_receives_a_structured_cloudevent_with_the_command_id_as_its_id() -> None:
    _, row = _command()
    frame = row.frame()
    assert (frame["type"], frame["command_id"], frame["sequence"]) == ("command", "c-1", 7)
    event = parse_structured(json.dumps(frame["event"]).encode())
    assert (event.get_id(), event.get_type()) == ("c-1", "device.command.app.launch")
    assert frame["event"]["time"] == "2026-11-25T08:15:30Z"
    assert frame["event"]["datacontenttype"] == "application/json"
    assert default_catalog().violations(row.type, frame["event"]["data"]) == []


def test_the_kafka_record_is_the_same_command_in_binary_mode() -> None:
    new, row = _command()
    record = to_kafka(new.record(row.issued_at))
    back = from_kafka(list(record.headers.items()), record.key, record.value)
    assert (back.get_id(), back.get_type()) == ("c-1", "device.command.app.launch")
    assert back.get_extension(PARTITION_KEY) == "phone"
    assert record.key in (b"phone", "phone")
    assert back.get_attributes()["dataschema"] == new.event_type.schema_id


async def test_a_notification_wakes_the_connections_of_its_device_only() -> None:
    notifier = CommandNotifier("postgresql://unused")
    with notifier.subscribe("phone") as phone, notifier.subscribe("phone") as phone_too, \
            notifier.subscribe("laptop") as laptop:  # fmt: skip
        notifier.wake("phone")
        assert phone.is_set()
        assert phone_too.is_set()
        assert not laptop.is_set()
        notifier.wake_all()
        await asyncio.wait_for(laptop.wait(), 1)
    notifier.wake("phone")  # nobody listens any more: nothing to do, nothing kept
    with notifier.subscribe("phone") as later:
        assert not later.is_set()


async def test_a_revocation_is_forgotten_before_the_device_s_connections_wake() -> None:
    revoked: list[str | None] = []
    notifier = CommandNotifier("postgresql://unused", on_revoked=revoked.append)
    with notifier.subscribe("phone") as phone, notifier.subscribe("laptop") as laptop:
        notifier.notified(NOTIFY_CHANNEL, "phone")  # a new command: no token forgotten
        assert (revoked, phone.is_set()) == ([], True)
        phone.clear()
        notifier.notified(REVOKED_CHANNEL, "phone")
        assert (revoked, phone.is_set(), laptop.is_set()) == (["phone"], True, False)


def test_a_command_settled_before_its_ack_is_withdrawn() -> None:
    _, row = _command()
    assert not row.withdrawn
    assert row.model_copy(update={"status": "expired"}).withdrawn
    assert row.model_copy(update={"status": "failed"}).withdrawn  # failed by Loom, not answered
    answered = row.model_copy(update={"status": "failed", "acked_at": row.issued_at})
    assert not answered.withdrawn


@pytest.mark.parametrize(("message", "complaint"), [
    ({"bytes": b"\x00"}, "not binary"),
    ({"text": "not json"}, "not JSON"),
    ({"text": '{"type": "nack", "command_id": "c-1"}'}, "a frame is"),
    ({"text": '{"type": "ack"}'}, "names its command_id"),
])  # fmt: skip
def test_a_device_frame_is_an_ack_or_a_ping(message: dict[str, object], complaint: str) -> None:
    with pytest.raises(_BadFrame, match=complaint):
        _frame(message)
    assert _frame({"text": '{"type": "ack", "command_id": "c-1"}'})["command_id"] == "c-1"


def test_a_command_body_may_be_as_large_as_its_type_allows() -> None:
    limits = DeclaredSizeLimit(app=None, default_limit=32 * 1024 * 1024)
    assert limits.limit("/devices/phone") == DEVICE_BODY_LIMIT
    assert limits.limit("/devices/phone/commands/allowed") == DEVICE_BODY_LIMIT
    assert limits.limit("/devices/phone/commands") == 32 * 1024 * 1024
