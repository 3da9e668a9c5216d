"""What runs Loom's image: a Knative Service for ingest and for each function, the
CronJobs of `loom db maintain` and of each fetcher, and the ConfigMap of defaults every
container reads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from loom.manifests.models import (
    ConfigMap,
    Container,
    CronJob,
    EnvFromSource,
    EnvVar,
    KnativeService,
    Strict,
)
from loom.manifests.options import ManifestOptions, build, meta, slug
from loom.runtime.registry import GraphError, Registry

__all__ = ["CONFIG", "DEFAULTS", "config_defaults", "container", "workloads"]

PORT = 8080  # what `loom serve` listens on in a container (LOOM_PORT)
CONCURRENCY = 20  # deliveries one replica of a function takes at once, unless it says
CONFIG = "loom-config"  # the operators' ConfigMap: never generated, wins over the defaults
DEFAULTS = "loom-config-defaults"  # generated: what every container gets unless CONFIG says


def _env(o: ManifestOptions) -> list[EnvVar]:
    """What the manifests themselves depend on (the port, Kafka, the database secret): set
    explicitly, so no ConfigMap can override it."""
    return [
        EnvVar(name="LOOM_PORT", value=str(PORT)),
        EnvVar(name="LOOM_KAFKA_BOOTSTRAP_SERVERS", value=o.bootstrap_servers),
        EnvVar(name="LOOM_KAFKA_DEFAULT_PARTITIONS", value=str(o.default_partitions)),
        EnvVar(name="LOOM_KAFKA_DEFAULT_REPLICATION_FACTOR", value=str(o.replication_factor)),
        build(
            EnvVar,
            name="LOOM_DATABASE_URL",
            valueFrom={"secretKeyRef": {"name": o.database_secret, "key": "url"}},
        ),
    ]


def config_defaults(o: ManifestOptions, models: Iterable[str] = ()) -> dict[str, str]:
    """What operators may change without editing the manifests (in ConfigMap loom-config):
    among them where each model's InferenceService answers inside the cluster."""
    urls = {name: f"http://{slug(name)}-predictor.{o.namespace}.svc.cluster.local"
            for name in sorted(models)}  # fmt: skip
    defaults = {
        "LOOM_ENVIRONMENT": o.environment,
        "LOOM_LOG_LEVEL": o.log_level,
        "LOOM_STORE_BACKEND": o.store_backend,
        "LOOM_STORE_BLOB_URL": o.blob_url,
    }
    if urls:
        defaults["LOOM_MODEL_URLS"] = json.dumps(urls, separators=(",", ":"))
    fixed = sorted(set(defaults) & {e.name for e in _env(o)})
    if fixed:  # an explicit env entry would silently win over the ConfigMaps
        raise ValueError(f"set both explicitly and in {DEFAULTS}: {fixed}")
    return defaults


def container(
    name: str, args: list[str], o: ManifestOptions, *, cpu: str, memory: str, serves: bool = True
) -> Container:
    """Loom's image running ``loom <args>``; ``serves`` adds the HTTP port and probes.
    Later ``envFrom`` sources win, and ``env`` wins over both."""
    http: dict[str, Any] = {}
    if serves:
        http = {
            "ports": [{"containerPort": PORT, "name": "http1"}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": PORT}},
        }
    return build(
        Container,
        name=name,
        image=o.image,
        args=args,
        env=_env(o),
        envFrom=[
            {"configMapRef": {"name": DEFAULTS}},
            {"configMapRef": {"name": CONFIG, "optional": True}},
        ],
        resources={"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}},
        **http,
    )


def _knative(
    name: str, args: list[str], o: ManifestOptions, *, min_scale: int, concurrency: int, why: str,
    memory: str = "256Mi",
) -> KnativeService:  # fmt: skip
    """``concurrency`` caps the deliveries one replica takes at once; the autoscaler aims at
    half of it, so a burst has room while new replicas start."""
    annotations = {
        "autoscaling.knative.dev/min-scale": str(min_scale),
        "autoscaling.knative.dev/target": str(max(1, concurrency // 2)),
        "autoscaling.knative.dev/metric": "concurrency",
    }
    return build(
        KnativeService,
        metadata=meta(name, o, **{"loom.dev/why": why}),
        spec={
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {
                    "containerConcurrency": concurrency,
                    "timeoutSeconds": 300,
                    "containers": [container("loom", args, o, cpu="250m", memory=memory)],
                },
            }
        },
    )


def _cronjob(
    name: str, args: list[str], schedule: str, o: ManifestOptions, *, why: str,
    secret: str | None = None, deadline: int = 1800,
) -> CronJob:  # fmt: skip
    """``loom <args>`` on ``schedule``; ``secret`` (optional) adds its keys to the env."""
    labels = {"app.kubernetes.io/part-of": "loom", "app.kubernetes.io/name": name}
    job = container("loom", args, o, cpu="100m", memory="256Mi", serves=False)
    if secret is not None:
        job = job.model_copy(update={"envFrom": [*job.envFrom, build(
            EnvFromSource, secretRef={"name": secret, "optional": True})]})  # fmt: skip
    return build(
        CronJob,
        metadata=meta(name, o, **{"loom.dev/why": why}),
        spec={
            "schedule": schedule,
            "concurrencyPolicy": "Forbid",  # a slow run is never doubled
            "startingDeadlineSeconds": 600,  # a missed run is skipped, the next one catches up
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": deadline,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"restartPolicy": "OnFailure", "containers": [job]},
                    },
                },
            },
        },
    )


def _maintenance(o: ManifestOptions) -> CronJob:
    """`loom db maintain` every hour: partitions ahead, retention, TimescaleDB policies;
    a run ends (1800 s) well before the next one is due."""
    return _cronjob("loom-db-maintain", ["db", "maintain"], o.maintain_schedule, o,
                    why="retention and partitions ahead of time for the event tables")  # fmt: skip


def _fetchers(registry: Registry, o: ManifestOptions) -> list[CronJob]:
    """`loom fetch NAME` on each fetcher's schedule. Accounts and passwords come from the
    optional Secret ``loom-fetcher-NAME`` (e.g. key ``LOOM_CALENDAR_ACCOUNTS``)."""
    return [
        _cronjob(
            f"loom-fetch-{slug(spec.name)}",
            ["fetch", spec.name],
            spec.schedule,
            o,
            why=spec.description or "a scheduled fetcher",
            secret=f"loom-fetcher-{slug(spec.name)}",
            # accounts run one after another, each cut off after LOOM_FETCH_TIMEOUT_SECONDS
            # (900); a run still going when the next is due makes that one wait (Forbid)
            deadline=3 * 3600,
        )
        for spec in sorted(registry.fetchers.values(), key=lambda s: s.name)
    ]


def workloads(
    registry: Registry, o: ManifestOptions, models: Iterable[str] = ()
) -> dict[str, list[Strict]]:
    """``knative/``: the defaults, maintenance, ingest, then one file per function."""
    out: dict[str, list[Strict]] = {}
    out["knative/config.yaml"] = [
        build(
            ConfigMap,
            metadata=meta(
                DEFAULTS,
                o,
                **{
                    "loom.dev/why": f"defaults of every Loom container; ConfigMap {CONFIG} "
                    "(yours, never generated) overrides them, key by key"
                },
            ),
            data=config_defaults(o, models),
        )
    ]
    out["knative/maintenance.yaml"] = [_maintenance(o)]
    if registry.fetchers:
        out["knative/fetchers.yaml"] = list(_fetchers(registry, o))
    out["knative/ingest.yaml"] = [
        _knative(
            "ingest",
            ["serve", "ingest"],
            o,
            min_scale=1,
            concurrency=200,
            why="the front door stays up: a device must never meet a cold start",
        )
    ]
    for spec in sorted(registry.functions.values(), key=lambda s: s.name):
        rel = f"knative/{spec.name}.yaml"
        if rel in out:
            raise GraphError(f"function {spec.name!r} would share {rel} with Loom's own objects")
        concurrency = CONCURRENCY if spec.concurrency is None else spec.concurrency
        if not 1 <= concurrency <= 1000:
            raise GraphError(
                f"function {spec.name!r}: concurrency {concurrency} is not within 1..1000"
            )
        out[rel] = [
            _knative(
                slug(spec.name),
                ["serve", spec.name],
                o,
                min_scale=0,
                concurrency=concurrency,
                why=spec.description or "a Loom function",
                memory=spec.memory or "256Mi",
            )
        ]
    return out
