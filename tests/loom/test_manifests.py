"""Generated manifests: no drift, strict fields, and a graph that is wired right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from loom.catalog import default_catalog
from loom.manifests import ManifestOptions, check_graph, generate, render
from loom.manifests.models import Trigger
from loom.runtime.models import ModelRegistry, discover_models, model
from loom.runtime.registry import GraphError, Registry, discover, function
from tests.loom.runtime.sample import registry as sample

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_manifests_match_the_generator() -> None:
    files = generate(default_catalog(), discover(), ManifestOptions(), discover_models())
    for rel, objects in files.items():
        assert (ROOT / rel).read_text() == render(objects), (
            f"{rel} is stale: run `uv run loom manifests` and commit"
        )
    on_disk = {
        str(p.relative_to(ROOT))
        for d in ("knative", "eventing", "kserve")
        for p in (ROOT / d).glob("*.yaml")
    }
    assert on_disk == set(files), "a manifest file exists that the generator does not make"


def _docs(files: dict[str, Any], rel: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(files[rel])) if d]


def test_graph_wiring_for_a_registry() -> None:
    catalog = default_catalog()
    files = generate(catalog, sample, ManifestOptions())
    triggers = _docs(files, "eventing/triggers.yaml")
    by_subscriber = {
        (t["spec"]["subscriber"]["ref"]["name"], t["spec"]["filter"]["attributes"]["type"])
        for t in triggers
    }
    assert by_subscriber == {
        ("power-echo", "device.state.power.raw"),
        ("liar", "device.state.power.raw"),
    }
    for t in triggers:
        assert t["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] == "loom-dead-letter"
        assert t["spec"]["delivery"]["retry"] == 5
    persisted = {
        d["spec"]["topic"]
        for d in _docs(files, "eventing/persist.yaml")
        if d["kind"] == "KafkaSink"
    }
    assert persisted == {"device.state.power.enriched", "device.state.power.patterns"}
    (source,) = _docs(files, "eventing/sources.yaml")
    assert not persisted & set(source["spec"]["topics"]), "a persist sink would re-feed a source"
    assert set(source["spec"]["topics"]) == {t.topic() for t in catalog.ingestable()}
    (service,) = _docs(files, "knative/power-echo.yaml")
    assert (
        service["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"]
        == "0"
    )
    assert service["spec"]["template"]["spec"]["containers"][0]["args"] == ["serve", "power-echo"]
    topics = {d["spec"]["topicName"]: d for d in _docs(files, "eventing/topics.yaml")}
    assert topics["device.audio.raw"]["spec"]["config"]["retention.ms"] == str(7 * 86_400_000)
    assert len(topics) == len(catalog)


def _registry(*edges: tuple[str, str, str]) -> Registry:
    own = Registry()
    for name, consumes, produces in edges:

        async def handle(event: Any, ctx: Any) -> None:
            return None

        function(consumes=[consumes], produces=[produces], name=name, registry=own)(handle)
    return own


def test_a_cycle_is_refused() -> None:
    own = _registry(
        ("a", "motion.events.significant", "motion.classification.activity"),
        ("b", "motion.classification.activity", "motion.events.significant"),
    )
    with pytest.raises(GraphError, match="cycle"):
        check_graph(own, default_catalog())


def test_producing_a_type_ingest_writes_is_refused() -> None:
    own = _registry(("echo", "motion.events.significant", "device.sensor.gps.raw"))
    with pytest.raises(GraphError, match="would feed the KafkaSource"):
        check_graph(own, default_catalog())


def test_store_must_take_every_stored_type() -> None:
    own = _registry(("store", "device.sensor.gps.raw", "motion.events.significant"))
    with pytest.raises(GraphError, match="store must consume every stored type once"):
        check_graph(own, default_catalog())


def test_models_refuse_unknown_fields() -> None:
    good = yaml.safe_load_all(
        render(generate(default_catalog(), sample, ManifestOptions())["eventing/triggers.yaml"])
    )
    trigger = next(d for d in good if d)
    Trigger.model_validate(trigger)
    trigger["spec"]["filters"] = trigger["spec"].pop("filter")
    with pytest.raises(ValidationError, match="filters"):
        Trigger.model_validate(trigger)


def _kubernetes_container_validator() -> Any:
    """Kubernetes' own strict JSON Schema of a Container (from kubernetes-validate)."""
    import json

    import kubernetes_validate
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    strict = sorted(
        root.glob("v*-local-strict"),
        key=lambda p: [int(x) for x in p.name[1:].split("-")[0].split(".")],
    )[-1]
    definitions = json.loads((strict / "_definitions.json").read_text())
    container = json.loads((strict / "container-v1.json").read_text())
    registry = Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json", Resource.from_contents(definitions)
    )
    return Draft202012Validator(container, registry=registry)


def test_embedded_containers_are_valid_kubernetes_containers() -> None:
    validator = _kubernetes_container_validator()
    files = generate(default_catalog(), sample, ManifestOptions())
    containers = []
    for rel in ("knative/ingest.yaml", "knative/power-echo.yaml", "kserve/runtime.yaml"):
        for doc in _docs(files, rel):
            spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Service" else doc["spec"]
            containers += spec["containers"]
    assert len(containers) == 3
    for container in containers:
        errors = [e.message for e in validator.iter_errors(container)]
        assert errors == [], errors
    broken = {**containers[0], "imagePullPolicyy": "Always"}
    assert any("imagePullPolicyy" in e.message for e in validator.iter_errors(broken))


def test_an_inference_service_per_model() -> None:
    models = ModelRegistry()

    @model(
        name="stt",
        storage_uri_env="LOOM_STT_STORAGE_URI",
        default_storage_uri="hf://kyutai/stt-1b-en_fr",
        registry=models,
    )
    class SpeechToText:
        """Speech to text (Kyutai STT through moshi)."""

    files = generate(default_catalog(), sample, ManifestOptions(), models)
    (isvc,) = _docs(files, "kserve/stt.yaml")
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == 0
    assert predictor["model"]["storageUri"] == "hf://kyutai/stt-1b-en_fr"
    assert predictor["model"]["runtime"] == "loom-python"
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert isvc["metadata"]["annotations"]["loom.dev/storage-uri-setting"] == "LOOM_STT_STORAGE_URI"
