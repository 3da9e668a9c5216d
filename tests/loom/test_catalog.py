"""The catalog: every seed topic, golden examples, and clear errors for a bad catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loom.catalog import Catalog, default_catalog, default_schemas_dir, load_catalog
from loom.errors import CatalogError, UnknownEventTypeError

# The 83 topics the seed design names (raw, processed, analysis, location, motion,
# external, task, remote-control command/response/sync). The catalog may hold more.
SEED_TOPICS = """
device.audio.raw device.video.screen.raw device.image.camera.raw device.sensor.gps.raw
device.sensor.accelerometer.raw device.sensor.barometer.raw device.sensor.temperature.raw
device.health.heartrate.raw device.health.steps.raw device.state.power.raw
device.system.apps.macos.raw device.system.apps.android.raw device.metadata.raw
device.network.wifi.raw device.network.bluetooth.raw os.events.app_lifecycle.raw
os.events.system.raw os.events.notifications.raw digital.clipboard.raw
digital.web_analytics.raw external.twitter.liked.raw external.calendar.events.raw
external.email.events.raw task.url.ingest media.audio.vad_filtered
media.audio.environment_classified media.text.transcribed.words media.text.ocr_extracted
media.text.ocr_cleaned media.image.camera.preprocessed media.image.screenshot.preprocessed
media.image.objects_detected media.image.objects_hashed media.image.faces_detected
media.image.pose_detected media.image.gaze_detected media.image.analysis.moondream_results
media.image.analysis.minicpm_results media.video.analysis.yolo_results
analysis.3d_reconstruction.dustr_results analysis.inferred_context.qwen_results
analysis.inferred_context.mistral_results analysis.audio.emotion_results
analysis.image.emotion_results task.url.processed.twitter_archived
task.url.processed.hackernews_archived task.url.processed.pdf_extracted
location.georegion.detected location.address.geocoded location.business.identified
device.sensor.accelerometer.windowed motion.events.significant motion.classification.activity
device.state.power.enriched device.state.power.patterns os.events.app_lifecycle.enriched
external.email.raw external.email.parsed external.email.embedded external.calendar.raw
external.calendar.enriched external.calendar.embedded external.hackernews.liked
external.hackernews.content_fetched external.hackernews.embedded spatial.slam.mapping
device.command.keystroke.send device.command.mouse.send device.command.clipboard.send
device.command.file.transfer device.command.screen.capture device.command.audio.send
device.command.shell.execute device.command.app.launch device.command.app.close
device.response.command.status device.response.file.transfer device.response.screen.capture
device.response.shell.output device.response.error device.sync.clipboard.broadcast
device.sync.files.broadcast device.sync.state.broadcast
""".split()

# Retention the seed fixes, in days.
SEED_RETENTION_DAYS = {
    "device.audio.raw": 7,
    "device.sensor.gps.raw": 30,
    "device.sensor.accelerometer.raw": 30,
    "device.state.power.raw": 30,
    "device.system.apps.macos.raw": 30,
    "device.system.apps.android.raw": 30,
    "os.events.app_lifecycle.raw": 30,
    "os.events.system.raw": 30,
    "os.events.notifications.raw": 30,
    "device.health.heartrate.raw": 60,
    "device.metadata.raw": 90,
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    """The shipped catalog with every schema checked against the 2020-12 meta-schema."""
    return load_catalog(check_schemas=True)


def test_every_seed_topic_is_a_catalog_type(catalog: Catalog) -> None:
    assert len(SEED_TOPICS) == 83
    missing = [t for t in SEED_TOPICS if t not in catalog]
    assert missing == []


def test_no_two_types_share_a_topic_or_a_table(catalog: Catalog) -> None:
    for prefix in ("", "loom"):
        topics = [t.topic(prefix) for t in catalog]
        assert len(topics) == len(set(topics))
    tables = [t.table for t in catalog if t.table]
    assert len(tables) == len(set(tables))


def test_seed_retention_and_table_names(catalog: Catalog) -> None:
    for name, days in SEED_RETENTION_DAYS.items():
        assert catalog[name].retention_ms == days * 86_400_000, name
        assert catalog[name].retention_why == "seed"
    assert catalog["os.events.system.raw"].table == "os_events_system_raw"
    assert catalog["os.events.app_lifecycle.raw"].table == "os_events_app_lifecycle_raw"
    assert catalog["device.system.apps.android.raw"].table == "device_system_apps_android_raw"
    assert catalog["device.audio.raw"].compression == "lz4"


def test_every_type_says_why_it_keeps_data_as_long_as_it_does(catalog: Catalog) -> None:
    for t in catalog:
        assert t.retention_why.strip(), t.type
        assert t.data_schema["title"] == t.type


@pytest.mark.parametrize("name", [t.type for t in default_catalog()])
def test_golden_examples_validate_as_labelled(catalog: Catalog, name: str) -> None:
    examples = catalog.examples(name)
    assert any(e.valid for e in examples), f"{name} has no valid golden example"
    assert any(not e.valid for e in examples), f"{name} has no invalid golden example"
    for example in examples:
        errors = catalog.errors(name, example.load())
        if example.valid:
            assert errors == [], f"{example.path.name}: {errors}"
        else:
            assert errors, f"{example.path.name} is labelled invalid but validates"


def test_seed_device_payloads_are_accepted(catalog: Catalog) -> None:
    base = {
        "schema_version": "1.0",
        "device_id": "d1",
        "timestamp": "2026-11-25T08:00:00Z",
        "message_id": "m1",
    }
    seed_payloads = {
        "device.sensor.gps.raw": {
            "latitude": 1.0,
            "longitude": 2.0,
            "altitude": None,
            "accuracy": 5.0,
            "heading": None,
            "speed": None,
        },
        "device.sensor.accelerometer.raw": {"x": 0.1, "y": 9.8, "z": 0.0},
        "device.health.heartrate.raw": {"bpm": 72, "confidence": 0.9},
        "device.state.power.raw": {
            "battery_level": 81.5,
            "is_charging": False,
            "power_source": None,
        },
        "device.audio.raw": {
            "chunk_data": "UklGRg==",
            "sample_rate": 16000,
            "channels": 1,
            "format": "wav",
            "duration_ms": 1000,
            "file_id": None,
        },
        "device.metadata.raw": {
            "metadata_type": "device_capabilities",
            "metadata": {"cpu": "arm64"},
        },
        "device.sensor.generic.raw": {
            "sensor_type": "light",
            "value": {"lux": 310},
            "unit": "lx",
            "accuracy": None,
        },
        "os.events.app_lifecycle.raw": {
            "app_identifier": "com.spotify.music",
            "app_name": "Spotify",
            "event_type": "foreground",
            "duration_seconds": None,
        },
        "os.events.system.raw": {
            "event_type": "screen_on",
            "event_category": "screen",
            "metadata": {"brightness": 120},
        },
        "device.system.apps.android.raw": {
            "running_applications": [
                {
                    "pid": 1234,
                    "name": "Maps",
                    "package_name": "com.google.android.apps.maps",
                    "active": True,
                    "hidden": False,
                    "launch_date": 1764057600.0,
                    "version_code": 1,
                    "version_name": "11.0",
                }
            ]
        },
    }
    for name, payload in seed_payloads.items():
        assert catalog.errors(name, {**base, **payload}) == [], name


def test_errors_name_the_path_and_problem(catalog: Catalog) -> None:
    errors = catalog.errors("device.sensor.gps.raw", {"device_id": "d", "latitude": 91})
    assert "$.latitude: 91 is greater than the maximum of 90" in errors
    assert any("'timestamp' is a required property" in e for e in errors)


def test_unknown_type_is_a_clear_error(catalog: Catalog) -> None:
    with pytest.raises(UnknownEventTypeError, match=r"'device\.nope\.raw' is not an event type"):
        catalog["device.nope.raw"]


def test_topic_prefix_maps_back_to_the_type(catalog: Catalog) -> None:
    t = catalog["device.audio.raw"]
    assert t.topic("loom") == "loom.device.audio.raw"
    assert catalog.by_topic("loom.device.audio.raw", "loom") is t
    assert catalog.by_topic("device.audio.raw") is t


# ── a bad catalog fails with the file and the field ──────────────────────────


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(default_schemas_dir(), root)
    return root


def _edit_catalog(root: Path, old: str, new: str) -> None:
    path = root / "catalog.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_unknown_field_names_file_and_field(copy: Path) -> None:
    _edit_catalog(copy, "{type: device.audio.raw,", "{type: device.audio.raw, colour: red,")
    with pytest.raises(CatalogError) as info:
        load_catalog(copy)
    assert info.value.file == str(copy / "catalog.yaml")
    assert info.value.field == "types[0] (device.audio.raw).colour"
    assert "unknown field" in str(info.value)


def test_duplicate_type_names_both_entries(copy: Path) -> None:
    _edit_catalog(copy, "{type: device.video.screen.raw,", "{type: device.audio.raw,")
    with pytest.raises(
        CatalogError,
        match=r"types\[1\] \(device.audio.raw\)\.type: "
        r"'device.audio.raw' is also used by types\[0\]",
    ):
        load_catalog(copy)


def test_bad_retention_is_explained(copy: Path) -> None:
    _edit_catalog(
        copy, "retention: 7d, retention_why: seed", "retention: 1week, retention_why: seed"
    )
    with pytest.raises(CatalogError, match=r"device.audio.raw\)\.retention: .*'1week' is not <n>d"):
        load_catalog(copy)


def test_schema_that_is_not_json_schema_names_the_schema_file(copy: Path) -> None:
    path = copy / "device/sensor/gps/raw/v1.json"
    doc = json.loads(path.read_text())
    doc["properties"]["latitude"]["minimum"] = "minus ninety"
    path.write_text(json.dumps(doc))
    with pytest.raises(CatalogError) as info:
        load_catalog(copy)
    assert info.value.file == str(path)
    assert "latitude" in info.value.field
    assert "'minus ninety' is not of type 'number'" in info.value.problem


def test_unresolvable_ref_names_the_schema_file(copy: Path) -> None:
    path = copy / "device/sensor/gps/raw/v1.json"
    path.write_text(path.read_text().replace("#/$defs/device_id", "#/$defs/nope"))
    with pytest.raises(CatalogError, match=r"gps/raw/v1.json: \$.properties.device_id.\$ref"):
        load_catalog(copy)


def test_missing_schema_file(copy: Path) -> None:
    (copy / "device/sensor/gps/raw/v1.json").unlink()
    with pytest.raises(CatalogError, match=r"gps/raw/v1.json: \(file\): schema file not found"):
        load_catalog(copy)


@pytest.mark.parametrize("name", [t.type for t in default_catalog()])
def test_compiled_check_agrees_with_jsonschema_on_golden_examples(
    catalog: Catalog, name: str
) -> None:
    from jsonschema import Draft202012Validator

    from loom.catalog import compile_fast_check

    fast = compile_fast_check(catalog.bundled_schema(name))
    if fast is None:
        pytest.skip("no compiled check for this schema; jsonschema alone decides")
    full = Draft202012Validator(
        catalog.bundled_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    for example in catalog.examples(name):
        data = example.load()
        assert fast(data) == full.is_valid(data), example.path.name


def test_the_dead_letter_type_is_in_the_catalog(catalog: Catalog) -> None:
    from loom.catalog import DEAD_LETTER_TYPE

    assert catalog[DEAD_LETTER_TYPE].table == "system_events_deadletter"
    assert not catalog[DEAD_LETTER_TYPE].ingest


def test_a_typed_column_must_be_a_scalar_field_of_the_schema(copy: Path) -> None:
    _edit_catalog(copy, "columns: [x, y, z]", "columns: [x, y, z, magnitude]")
    with pytest.raises(
        CatalogError,
        match=r"\(device.sensor.accelerometer.raw\)\.columns: 'magnitude' is not a top-level "
        r"property of one scalar type",
    ):
        load_catalog(copy)
    _edit_catalog(copy, "columns: [x, y, z, magnitude]", "columns: [timestamp]")
    with pytest.raises(CatalogError, match="'timestamp' is not a top-level property"):
        load_catalog(copy)  # a $ref, not a type of its own: no column type to derive


def test_a_typed_column_cannot_take_a_common_column_name(copy: Path) -> None:
    _edit_catalog(copy, "columns: [x, y, z]", "columns: [x, y, z, device_id]")
    with pytest.raises(CatalogError, match="'device_id' is a column every table has already"):
        load_catalog(copy)


def test_table_names_leave_room_for_partition_and_staging_names(copy: Path) -> None:
    _edit_catalog(copy, "table: device_audio_raw,", f"table: {'t' * 53},")
    with pytest.raises(CatalogError, match=r"device.audio.raw\)\.table"):
        load_catalog(copy)
