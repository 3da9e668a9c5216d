"""`loom manifests`: Knative, Knative-Kafka, Strimzi and KServe objects from the registry
and the catalog. Never edited by hand; a test regenerates them and fails on drift."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from loom.catalog import DEAD_LETTER_TYPE, Catalog
from loom.manifests.models import (
    Broker,
    ConfigMap,
    Delivery,
    Destination,
    InferenceService,
    KafkaSink,
    KafkaSource,
    KafkaTopic,
    Ref,
    ServingRuntime,
    Strict,
    Trigger,
)
from loom.manifests.options import ManifestOptions, build, meta, slug
from loom.manifests.workloads import container, workloads
from loom.runtime.models import ModelRegistry
from loom.runtime.registry import GraphError, Registry

__all__ = ["check_graph", "generate", "render", "write"]

SERVING = "serving.knative.dev/v1"


def _service_ref(name: str) -> Destination:
    return build(Destination, ref=build(Ref, apiVersion=SERVING, kind="Service", name=name))


def _sink_ref(name: str) -> Destination:
    return build(
        Destination,
        ref=build(Ref, apiVersion="eventing.knative.dev/v1alpha1", kind="KafkaSink", name=name),
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
    out.update(workloads(registry, o, (models or ModelRegistry()).models))
    dead = "loom-dead-letter"
    delivery = build(
        Delivery,
        retry=o.retries,
        backoffPolicy="exponential",
        backoffDelay=o.backoff,
        deadLetterSink=_sink_ref(dead),
    )
    config = build(
        ConfigMap,
        metadata=meta("loom-kafka-broker-config", o),
        data={
            "bootstrap.servers": o.bootstrap_servers,
            "default.topic.partitions": str(o.default_partitions),
            "default.topic.replication.factor": str(o.replication_factor),
        },
    )
    broker = build(
        Broker,
        metadata=meta(o.broker, o, **{"eventing.knative.dev/broker.class": "Kafka"}),
        spec={
            "config": build(Ref, apiVersion="v1", kind="ConfigMap", name=config.metadata.name),
            "delivery": delivery,
        },
    )
    out["eventing/broker.yaml"] += [config, broker]
    out["eventing/dead-letter.yaml"].append(
        build(
            KafkaSink,
            metadata=meta(dead, o),
            spec={
                "topic": catalog[DEAD_LETTER_TYPE].topic(),
                "bootstrapServers": [o.bootstrap_servers],
            },
        )
    )
    broker_ref = build(
        Destination,
        ref=build(Ref, apiVersion="eventing.knative.dev/v1", kind="Broker", name=o.broker),
    )
    out["eventing/sources.yaml"].append(
        build(
            KafkaSource,
            metadata=meta("loom-ingest-topics", o),
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
        patient = spec.retries is not None  # waits out an outage: 1 s, doubling, N times
        delivery_of = build(
            Delivery,
            retry=spec.retries if patient else o.retries,
            backoffPolicy="exponential",
            backoffDelay="PT1S" if patient else o.backoff,
            deadLetterSink=_sink_ref(dead),
        )
        for consumed in spec.consumes:
            out["eventing/triggers.yaml"].append(
                build(
                    Trigger,
                    metadata=meta(
                        slug(f"{spec.name}-{consumed}"),
                        o,
                        **{"kafka.eventing.knative.dev/delivery.order": order},
                    ),
                    spec={
                        "broker": o.broker,
                        "filter": {"attributes": {"type": consumed}},
                        "subscriber": _service_ref(slug(spec.name)),
                        "delivery": delivery_of,
                    },
                )
            )
    derived = sorted({p for s in registry.functions.values() for p in s.produces})
    for type_ in derived:
        sink = slug(f"persist-{type_}")
        out["eventing/persist.yaml"] += [
            build(
                KafkaSink,
                metadata=meta(sink, o),
                spec={"topic": catalog[type_].topic(), "bootstrapServers": [o.bootstrap_servers]},
            ),
            build(
                Trigger,
                metadata=meta(sink, o),
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
            build(
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
        build(
            ServingRuntime,
            metadata=meta("loom-python", o),
            spec={
                "supportedModelFormats": [{"name": "loom", "version": "1"}],
                "protocolVersions": ["v2"],
                "containers": [
                    container(
                        "kserve-container",
                        ["serve-model", "--model-name={{.Name}}"],
                        o,
                        cpu="1",
                        memory="4Gi",
                        serves=False,
                    )
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
            build(
                InferenceService,
                metadata=meta(
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
