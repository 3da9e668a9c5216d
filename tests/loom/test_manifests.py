"""Generated manifests: no drift, strict fields, and a graph that is wired right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from loom.catalog import default_catalog
from loom.manifests import ManifestOptions, check_graph, config_defaults, generate, render
from loom.manifests.models import CronJob, Trigger
from loom.manifests.options import slug
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


def _kubernetes_validator(schema: str = "container-v1.json") -> Any:
    """Kubernetes' own strict JSON Schema of ``schema`` (from kubernetes-validate)."""
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
    top = json.loads((strict / schema).read_text())
    registry = Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json", Resource.from_contents(definitions)
    )
    return Draft202012Validator(top, registry=registry)


def _containers(node: Any) -> list[dict[str, Any]]:
    """Every container in ``node``, however deep (Services, runtimes, CronJobs alike)."""
    if isinstance(node, list):
        return [c for item in node for c in _containers(item)]
    if not isinstance(node, dict):
        return []
    found = list(node.get("containers", []))
    return found + [c for k, v in node.items() if k != "containers" for c in _containers(v)]


def _all_docs(files: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for rel in sorted(files) for d in _docs(files, rel)]


def test_embedded_containers_are_valid_kubernetes_containers() -> None:
    validator = _kubernetes_validator()
    files = generate(default_catalog(), sample, ManifestOptions())
    containers = _containers(_all_docs(files))
    # ingest, power-echo, liar, the maintenance CronJob and the ServingRuntime
    assert len(containers) == 5
    for container in containers:
        errors = [e.message for e in validator.iter_errors(container)]
        assert errors == [], errors
    broken = {**containers[0], "imagePullPolicyy": "Always"}
    assert any("imagePullPolicyy" in e.message for e in validator.iter_errors(broken))


def test_maintenance_runs_hourly_as_a_valid_kubernetes_cronjob() -> None:
    files = generate(default_catalog(), sample, ManifestOptions())
    (cronjob,) = _docs(files, "knative/maintenance.yaml")
    errors = [
        e.message for e in _kubernetes_validator("cronjob-batch-v1.json").iter_errors(cronjob)
    ]
    assert errors == [], errors
    spec = cronjob["spec"]
    assert cronjob["kind"] == "CronJob"
    assert spec["schedule"] == "17 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] < 3600, "a run must end before the next one is due"
    pod = job["template"]["spec"]
    errors = [e.message for e in _kubernetes_validator("podspec-v1.json").iter_errors(pod)]
    assert errors == [], errors
    assert pod["restartPolicy"] == "OnFailure"
    (container,) = pod["containers"]
    assert container["args"] == ["db", "maintain"]
    (service,) = _docs(files, "knative/ingest.yaml")
    (serving,) = service["spec"]["template"]["spec"]["containers"]
    assert container["image"] == serving["image"]
    assert container["env"] == serving["env"], "the job must reach the same database"
    assert container["envFrom"] == serving["envFrom"]
    cronjob["spec"]["schedual"] = cronjob["spec"].pop("schedule")
    with pytest.raises(ValidationError, match="schedual"):
        CronJob.model_validate(cronjob)


def test_a_function_that_holds_a_model_asks_for_its_memory() -> None:
    registry = Registry()

    @function(consumes=["device.state.power.raw"], name="big", memory="1Gi", registry=registry)
    async def handle(event: Any, ctx: Any) -> None:
        return None

    files = generate(default_catalog(), registry, ManifestOptions())
    (service,) = _docs(files, "knative/big.yaml")
    (container,) = service["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["memory"] == "1Gi"
    assert container["resources"]["limits"]["memory"] == "1Gi"
    with pytest.raises(GraphError, match="not a Kubernetes quantity"):
        function(consumes=["device.state.power.raw"], memory="1 GB", registry=Registry())


def test_each_fetcher_is_a_cronjob_with_its_own_optional_secret() -> None:
    from collections.abc import AsyncIterator

    from loom.runtime.fetcher import Batch, fetcher
    from loom.settings import LoomSettings

    registry = Registry()

    @fetcher(produces=["external.hackernews.liked"], settings=LoomSettings,
             schedule="*/30 * * * *", name="hn_likes", registry=registry)  # fmt: skip
    async def fetch(account: Any, cursor: Any, ctx: Any) -> AsyncIterator[Batch]:
        """Liked Hacker News items."""
        yield Batch([], {})

    files = generate(default_catalog(), registry, ManifestOptions())
    (cronjob,) = _docs(files, "knative/fetchers.yaml")
    errors = [
        e.message for e in _kubernetes_validator("cronjob-batch-v1.json").iter_errors(cronjob)
    ]
    assert errors == [], errors
    assert cronjob["metadata"]["name"] == "loom-fetch-hn-likes"
    assert cronjob["spec"]["schedule"] == "*/30 * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["fetch", "hn_likes"]
    assert container["envFrom"][-1] == {
        "secretRef": {"name": "loom-fetcher-hn-likes", "optional": True}
    }
    assert "knative/fetchers.yaml" not in generate(default_catalog(), sample, ManifestOptions())


def test_every_container_reads_the_defaults_then_the_operators_config() -> None:
    files = generate(default_catalog(), sample, ManifestOptions())
    (defaults,) = _docs(files, "knative/config.yaml")
    errors = [e.message for e in _kubernetes_validator("configmap-v1.json").iter_errors(defaults)]
    assert errors == [], errors
    assert defaults["data"]["LOOM_STORE_BLOB_URL"].startswith("s3://")
    for container in _containers(_all_docs(files)):
        assert container["envFrom"] == [
            {"configMapRef": {"name": defaults["metadata"]["name"]}},
            {"configMapRef": {"name": "loom-config", "optional": True}},
        ], container["args"]
        explicit = {e["name"] for e in container["env"]}
        assert not explicit & set(defaults["data"]), "an env entry would hide the ConfigMaps"


def test_the_defaults_make_valid_store_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from loom.store.settings import StoreSettings

    defaults = config_defaults(ManifestOptions())
    for name in defaults:
        assert name.removeprefix("LOOM_").lower() in StoreSettings.model_fields, name
    for name, value in defaults.items():
        monkeypatch.setenv(name, value)
    settings = StoreSettings()
    assert settings.store_blob_url == defaults["LOOM_STORE_BLOB_URL"]
    assert settings.environment == "production"


def _with_concurrency(name: str, concurrency: int | None) -> Registry:
    own = Registry()

    async def handle(event: Any, ctx: Any) -> None:
        return None

    function(consumes=["device.state.power.raw"], name=name, concurrency=concurrency, registry=own)(
        handle
    )
    return own


def _serving(files: dict[str, Any], name: str) -> tuple[int, str]:
    (service,) = _docs(files, f"knative/{name}.yaml")
    template = service["spec"]["template"]
    return (
        template["spec"]["containerConcurrency"],
        template["metadata"]["annotations"]["autoscaling.knative.dev/target"],
    )


def test_a_function_declares_how_many_deliveries_a_replica_takes() -> None:
    catalog = default_catalog()
    files = generate(catalog, _with_concurrency("sink", 200), ManifestOptions())
    assert _serving(files, "sink") == (200, "100")
    files = generate(catalog, sample, ManifestOptions())
    assert _serving(files, "power-echo") == (20, "10"), "the default is unchanged"
    assert _serving(files, "ingest") == (200, "100")
    with pytest.raises(GraphError, match=r"'sink': concurrency 0 is not within 1\.\.1000"):
        generate(catalog, _with_concurrency("sink", 0), ManifestOptions())


@pytest.mark.parametrize("name", ["ingest", "maintenance", "config"])
def test_a_function_cannot_take_the_file_of_loom_s_own_objects(name: str) -> None:
    with pytest.raises(GraphError, match=f"would share knative/{name}.yaml"):
        generate(default_catalog(), _with_concurrency(name, None), ManifestOptions())


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
    # functions reach it by name: the cluster-local URL of its predictor, in the defaults
    (defaults,) = _docs(files, "knative/config.yaml")
    assert defaults["data"]["LOOM_MODEL_URLS"] == (
        '{"stt":"http://stt-predictor.loom.svc.cluster.local"}'
    )
    (runtime,) = _docs(files, "kserve/runtime.yaml")
    assert runtime["spec"]["containers"][0]["args"] == ["serve-model", "--model-name={{.Name}}"]


def test_every_inference_service_name_leads_its_runtime_to_its_model() -> None:
    # The ServingRuntime runs `loom serve-model --model-name={{.Name}}`: the
    # InferenceService's own (DNS-1123) name must find the model, which is then served
    # under the name the functions' clients put in the URL.
    models = ModelRegistry()

    @model(name="face_emotion", storage_uri_env="LOOM_FACE_EMOTION_STORAGE_URI",
           default_storage_uri="hf://x/y", registry=models)  # fmt: skip
    class FaceEmotion:
        """Emotions of faces."""

    files = generate(default_catalog(), sample, ManifestOptions(), models)
    (isvc,) = _docs(files, "kserve/face_emotion.yaml")
    assert isvc["metadata"]["name"] == "face-emotion"
    found = models.find(isvc["metadata"]["name"])
    assert found is not None
    assert found.name == "face_emotion"
    (defaults,) = _docs(files, "knative/config.yaml")
    assert '"face_emotion":"http://face-emotion-predictor.' in defaults["data"]["LOOM_MODEL_URLS"]
    assert models.find("no-such-model") is None


def test_the_store_waits_out_an_outage_before_dead_lettering() -> None:
    registry = discover()
    files = generate(default_catalog(), registry, ManifestOptions(), discover_models())
    triggers = {d["metadata"]["name"]: d for d in _docs(files, "eventing/triggers.yaml")}
    store = triggers["store-device-sensor-gps-raw"]["spec"]["delivery"]
    assert (store["retry"], store["backoffDelay"]) == (12, "PT1S")  # ~68 min of redelivery
    # functions that declare their own retries wait 1 s, doubling; the rest keep the default
    patient = {slug(s.name): s.retries for s in registry.functions.values() if s.retries}
    for trigger in triggers.values():
        delivery = trigger["spec"]["delivery"]
        service = trigger["spec"]["subscriber"]["ref"]["name"]
        if service in patient:
            assert (delivery["retry"], delivery["backoffDelay"]) == (patient[service], "PT1S")
        else:
            assert (delivery["retry"], delivery["backoffDelay"]) == (5, "PT0.2S")
