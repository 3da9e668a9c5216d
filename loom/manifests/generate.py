"""`loom manifests`: Knative, Knative-Kafka, Strimzi and KServe objects from the registry
and the catalog. Never edited by hand; a test regenerates them and fails on drift."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from loom.catalog import DEAD_LETTER_TYPE, Catalog
from loom.manifests.models import (
    Broker,
    ConfigMap,
    Container,
    Delivery,
    Destination,
    EnvVar,
    InferenceService,
    KafkaSink,
    KafkaSource,
    KafkaTopic,
    KnativeService,
    Metadata,
    Probe,
    Ref,
    ServingRuntime,
    Strict,
    Trigger,
)
from loom.runtime.models import ModelRegistry
from loom.runtime.registry import GraphError, Registry

__all__ = ["ManifestOptions", "check_graph", "generate", "render", "write"]

SERVING = "serving.knative.dev/v1"
PORT = 8080  # what `loom serve` listens on in a container (LOOM_PORT)


@dataclass(frozen=True)
class ManifestOptions:
    namespace: str = "loom"
    image: str = "ghcr.io/loom-pipeline/loom:latest"
    bootstrap_servers: str = "loom-kafka-bootstrap.kafka:9092"
    replication_factor: int = 3
    default_partitions: int = 3
    broker: str = "loom"
    database_secret: str = "loom-database"
    retries: int = 5
    backoff: str = "PT0.2S"


T = TypeVar("T", bound=Strict)


def _obj(cls: type[T], **fields: Any) -> T:
    """``cls`` checked strictly from ``fields`` (nested dicts or models)."""
    return cls.model_validate(fields)


def slug(text: str, limit: int = 63) -> str:
    """A DNS-1123 name from ``text``; long ones end in a short hash to stay unique."""
    name = text.replace(".", "-").replace("_", "-").lower()
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def _meta(name: str, o: ManifestOptions, **annotations: str) -> Metadata:
    return _obj(
        Metadata,
        name=name,
        namespace=o.namespace,
        labels={"app.kubernetes.io/part-of": "loom"},
        annotations=annotations,
    )


def _service_ref(name: str) -> Destination:
    return _obj(Destination, ref=_obj(Ref, apiVersion=SERVING, kind="Service", name=name))


def _sink_ref(name: str) -> Destination:
    return _obj(
        Destination,
        ref=_obj(Ref, apiVersion="eventing.knative.dev/v1alpha1", kind="KafkaSink", name=name),
    )


def _container(
    name: str, args: list[str], o: ManifestOptions, *, cpu: str, memory: str
) -> Container:
    env = [
        EnvVar(name="LOOM_PORT", value=str(PORT)),
        EnvVar(name="LOOM_KAFKA_BOOTSTRAP_SERVERS", value=o.bootstrap_servers),
        EnvVar(name="LOOM_KAFKA_DEFAULT_PARTITIONS", value=str(o.default_partitions)),
        EnvVar(name="LOOM_KAFKA_DEFAULT_REPLICATION_FACTOR", value=str(o.replication_factor)),
        EnvVar(name="LOOM_ENVIRONMENT", value="production"),
        EnvVar(name="LOOM_LOG_LEVEL", value="INFO"),
        _obj(
            EnvVar,
            name="LOOM_DATABASE_URL",
            valueFrom={"secretKeyRef": {"name": o.database_secret, "key": "url"}},
        ),
    ]
    probe = {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 5}
    return _obj(
        Container,
        name=name,
        image=o.image,
        args=args,
        env=env,
        ports=[{"containerPort": PORT, "name": "http1"}],
        resources={"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        readinessProbe=Probe.model_validate(probe),
        livenessProbe=Probe.model_validate({"httpGet": {"path": "/healthz", "port": PORT}}),
    )


def _knative(
    name: str, args: list[str], o: ManifestOptions, *, min_scale: int, concurrency: int, why: str
) -> KnativeService:
    annotations = {
        "autoscaling.knative.dev/min-scale": str(min_scale),
        "autoscaling.knative.dev/target": str(concurrency),
        "autoscaling.knative.dev/metric": "concurrency",
    }
    return _obj(
        KnativeService,
        metadata=_meta(name, o, **{"loom.dev/why": why}),
        spec={
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "containerConcurrency": concurrency * 2,
                    "timeoutSeconds": 300,
                    "containers": [_container("loom", args, o, cpu="250m", memory="256Mi")],
                },
            }
        },
    )


def check_graph(registry: Registry, catalog: Catalog) -> None:
    """The wiring is acyclic, nothing re-feeds a source topic, and stored types reach
    the store exactly once."""
    registry.check(catalog)
    sourced = {t.type for t in catalog.ingestable()}
    edges: dict[str, set[str]] = defaultdict(set)
    for spec in registry.functions.values():
        for produced in spec.produces:
            if produced in sourced:
                raise GraphError(
                    f"function {spec.name!r} produces {produced!r}, a type ingest writes: its "
                    "persisting KafkaSink would feed the KafkaSource that reads that topic"
                )
            for consumed in spec.consumes:
                edges[consumed].add(produced)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 1:
            raise GraphError(f"the graph has a cycle: {' -> '.join([*path, node])}")
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(edges[node]):
            visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(edges):
        visit(node, [])
    if "store" in registry.functions:
        store_types = registry["store"].consumes
        missing = [t.type for t in catalog.stored() if t.type not in store_types]
        twice = sorted({t for t in store_types if store_types.count(t) > 1})
        if missing or twice:
            raise GraphError(
                f"store must consume every stored type once: missing {missing}, twice {twice}"
            )


def generate(
    catalog: Catalog,
    registry: Registry,
    o: ManifestOptions,
    models: ModelRegistry | None = None,
) -> dict[str, list[Strict]]:
    """Every object, keyed by the file it goes in (relative to the repository root)."""
    check_graph(registry, catalog)
    out: dict[str, list[Strict]] = defaultdict(list)
    out["knative/ingest.yaml"].append(
        _knative(
            "ingest",
            ["serve", "ingest"],
            o,
            min_scale=1,
            concurrency=100,
            why="the front door stays up: a device must never meet a cold start",
        )
    )
    for spec in sorted(registry.functions.values(), key=lambda s: s.name):
        out[f"knative/{spec.name}.yaml"].append(
            _knative(
                slug(spec.name),
                ["serve", spec.name],
                o,
                min_scale=0,
                concurrency=10,
                why=spec.description or "a Loom function",
            )
        )

    dead = "loom-dead-letter"
    delivery = _obj(
        Delivery,
        retry=o.retries,
        backoffPolicy="exponential",
        backoffDelay=o.backoff,
        deadLetterSink=_sink_ref(dead),
    )
    config = _obj(
        ConfigMap,
        metadata=_meta("loom-kafka-broker-config", o),
        data={
            "bootstrap.servers": o.bootstrap_servers,
            "default.topic.partitions": str(o.default_partitions),
            "default.topic.replication.factor": str(o.replication_factor),
        },
    )
    broker = _obj(
        Broker,
        metadata=_meta(o.broker, o, **{"eventing.knative.dev/broker.class": "Kafka"}),
        spec={
            "config": _obj(Ref, apiVersion="v1", kind="ConfigMap", name=config.metadata.name),
            "delivery": delivery,
        },
    )
    out["eventing/broker.yaml"] += [config, broker]
    out["eventing/dead-letter.yaml"].append(
        _obj(
            KafkaSink,
            metadata=_meta(dead, o),
            spec={
                "topic": catalog[DEAD_LETTER_TYPE].topic(),
                "bootstrapServers": [o.bootstrap_servers],
            },
        )
    )
    broker_ref = _obj(
        Destination,
        ref=_obj(Ref, apiVersion="eventing.knative.dev/v1", kind="Broker", name=o.broker),
    )
    out["eventing/sources.yaml"].append(
        _obj(
            KafkaSource,
            metadata=_meta("loom-ingest-topics", o),
            spec={
                "consumerGroup": "loom-broker-source",
                "bootstrapServers": [o.bootstrap_servers],
                "topics": [t.topic() for t in catalog.ingestable()],
                "sink": broker_ref,
            },
        )
    )
    for spec in sorted(registry.functions.values(), key=lambda s: s.name):
        order = "ordered" if spec.ordered else "unordered"
        for consumed in spec.consumes:
            out["eventing/triggers.yaml"].append(
                _obj(
                    Trigger,
                    metadata=_meta(
                        slug(f"{spec.name}-{consumed}"),
                        o,
                        **{"kafka.eventing.knative.dev/delivery.order": order},
                    ),
                    spec={
                        "broker": o.broker,
                        "filter": {"attributes": {"type": consumed}},
                        "subscriber": _service_ref(slug(spec.name)),
                        "delivery": delivery,
                    },
                )
            )
    derived = sorted({p for s in registry.functions.values() for p in s.produces})
    for type_ in derived:
        sink = slug(f"persist-{type_}")
        out["eventing/persist.yaml"] += [
            _obj(
                KafkaSink,
                metadata=_meta(sink, o),
                spec={"topic": catalog[type_].topic(), "bootstrapServers": [o.bootstrap_servers]},
            ),
            _obj(
                Trigger,
                metadata=_meta(sink, o),
                spec={
                    "broker": o.broker,
                    "filter": {"attributes": {"type": type_}},
                    "subscriber": _sink_ref(sink),
                    "delivery": delivery,
                },
            ),
        ]
    from loom.kafka.topics import topic_config

    for t in catalog:
        out["eventing/topics.yaml"].append(
            _obj(
                KafkaTopic,
                metadata={
                    "name": slug(t.type),
                    "namespace": "kafka",
                    "labels": {"strimzi.io/cluster": "loom-kafka"},
                },
                spec={
                    "topicName": t.topic(),
                    "partitions": t.partitions_or(o.default_partitions),
                    "replicas": o.replication_factor,
                    "config": topic_config(t, o.replication_factor),
                },
            )
        )
    out["kserve/runtime.yaml"].append(
        _obj(
            ServingRuntime,
            metadata=_meta("loom-python", o),
            spec={
                "supportedModelFormats": [{"name": "loom", "version": "1"}],
                "protocolVersions": ["v2"],
                "containers": [
                    _container("kserve-container", ["serve-model"], o, cpu="1", memory="4Gi")
                ],
            },
        )
    )
    for m in sorted((models or ModelRegistry()).models.values(), key=lambda m: m.name):
        resources = {
            "requests": {"cpu": "1", "memory": m.memory},
            "limits": {"memory": m.memory},
        }
        if m.gpu:
            resources["limits"]["nvidia.com/gpu"] = "1"
        out[f"kserve/{m.name}.yaml"].append(
            _obj(
                InferenceService,
                metadata=_meta(
                    slug(m.name),
                    o,
                    **{
                        "serving.kserve.io/deploymentMode": "Serverless",
                        "loom.dev/storage-uri-setting": m.storage_uri_env,
                    },
                ),
                spec={
                    "predictor": {
                        "minReplicas": 0,
                        "maxReplicas": m.max_replicas,
                        "model": {
                            "modelFormat": {"name": "loom"},
                            "runtime": "loom-python",
                            "storageUri": m.default_storage_uri,
                            "resources": resources,
                        },
                    }
                },
            )
        )
    return dict(out)


def _prune(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _prune(v) for k, v in node.items() if v not in (None, {}, [])}
    if isinstance(node, list):
        return [_prune(v) for v in node]
    return node


def render(objects: list[Strict]) -> str:
    header = "# Generated by `loom manifests` from the registry and the catalog; do not edit.\n"
    docs = [yaml.safe_dump(_prune(o.model_dump(mode="json")), sort_keys=False) for o in objects]
    return header + "---\n" + "---\n".join(docs)


def write(root: Path, files: dict[str, list[Strict]]) -> list[Path]:
    """Write every file; returns the paths that changed."""
    changed = []
    for rel, objects in sorted(files.items()):
        path = root / rel
        text = render(objects)
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed
