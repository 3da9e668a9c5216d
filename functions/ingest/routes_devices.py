"""Device management (admin token): register, list, get, update, soft delete, activity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path

from functions.ingest.devices import Device, DeviceIn, DevicePatch, RegisteredDevice
from functions.ingest.limits import DEVICE_BODY_LIMIT
from functions.ingest.openapi import PROBLEM_RESPONSES
from functions.ingest.routes_data import DeviceActivityReport, stored_activity
from functions.ingest.state import Admin

__all__ = ["add_device_routes"]

DeviceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: PROBLEM_RESPONSES[code] for code in ("401", "403", "413", "503")
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    "404": {"description": "No such device.", "content": PROBLEM_RESPONSES["401"]["content"]},
}


def _activity(
    device_id: str, types: list[dict[str, Any]], registered: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A device's activity: its registry row (if any) and its stored events per type."""
    seen = registered or {"name": None, "last_seen_at": None, "events_total": 0, "active": False}
    return {
        **seen,
        "device_id": device_id,
        "registered": registered is not None,
        "stored_events": sum(t["count"] for t in types),
        "last_event_at": types[0]["last_event_at"] if types else None,
        "types": types,
    }


def add_device_routes(app: FastAPI) -> None:
    router = APIRouter(prefix="/devices", tags=["devices"], max_body_size=DEVICE_BODY_LIMIT)

    @router.get("", response_model=list[Device], responses=_ERRORS)
    async def list_devices(state: Admin, include_deleted: bool = False) -> list[Device]:
        """All registered devices (soft-deleted ones with `include_deleted=true`)."""
        return await state.devices.list(include_deleted)

    @router.get("/activity", response_model=list[DeviceActivityReport], responses=_ERRORS)
    async def device_activity(state: Admin) -> list[dict[str, Any]]:
        """Per device: what ingest took (last-seen time, event count, whether it sent in the
        last 5 minutes) and, per type, how many events the store holds and the latest one's
        time. Devices with stored data but no live registration come last."""
        await state.activity.flush()
        stored = await stored_activity(state)
        report = [
            _activity(row["device_id"], stored.pop(row["device_id"], []), row)
            for row in await state.devices.activity()
        ]
        others = [(d, types) for d, types in stored.items() if d is not None]
        others.sort(key=lambda item: item[1][0]["last_event_at"], reverse=True)
        return report + [_activity(device_id, types) for device_id, types in others]

    @router.post(
        "", response_model=RegisteredDevice, status_code=201,
        responses={**_ERRORS, "409": {"description": "Already registered.",
                                      "content": PROBLEM_RESPONSES["401"]["content"]}},
    )  # fmt: skip
    async def register_device(body: DeviceIn, state: Admin) -> RegisteredDevice:
        """Register a device; the answer carries its token, shown this once."""
        return await state.devices.register(body)

    @router.get("/{device_id}", response_model=Device, responses=_NOT_FOUND)
    async def get_device(device_id: DeviceId, state: Admin) -> Device:
        return await state.devices.get(device_id)

    @router.patch("/{device_id}", response_model=Device, responses=_NOT_FOUND)
    async def update_device(device_id: DeviceId, body: DevicePatch, state: Admin) -> Device:
        """Change name, type, platform or metadata."""
        return await state.devices.patch(device_id, body)

    @router.delete("/{device_id}", response_model=Device, responses=_NOT_FOUND)
    async def delete_device(device_id: DeviceId, state: Admin) -> Device:
        """Soft delete: the device's token stops working (its open command connections
        close); its data stays."""
        device = await state.devices.soft_delete(device_id)
        state.revoked(device_id)  # other replicas hear of it by NOTIFY
        return device

    @router.post("/{device_id}/token", response_model=RegisteredDevice, responses=_NOT_FOUND)
    async def rotate_device_token(device_id: DeviceId, state: Admin) -> RegisteredDevice:
        """Revoke the device's token and issue a new one (shown this once); connections
        open with the old one close."""
        device = await state.devices.rotate_token(device_id)
        state.revoked(device_id)
        return device

    app.include_router(router)
