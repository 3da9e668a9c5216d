"""Strict models of every Knative, Kafka and KServe field Loom emits: an unknown or
misspelt field is an error when the manifests are generated, not when they are applied.
Field names follow the upstream CRDs (camelCase)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Broker", "ConfigMap", "Container", "CronJob", "InferenceService", "KafkaSink",
    "KafkaSource", "KafkaTopic", "KnativeService", "ServingRuntime", "Trigger",
]  # fmt: skip


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


DNS1123 = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class Metadata(Strict):
    name: str = Field(pattern=DNS1123, max_length=63)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class TemplateMetadata(Strict):
    """The metadata of a template (a revision, a job, a pod): no name of its own."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Ref(Strict):
    apiVersion: str
    kind: str
    name: str
    namespace: str | None = None


class Destination(Strict):
    ref: Ref


# ── Kubernetes pieces embedded in pod specs ───────────────────────────────
class SecretKeyRef(Strict):
    name: str
    key: str


class EnvVarSource(Strict):
    secretKeyRef: SecretKeyRef


class EnvVar(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class ConfigMapEnvSource(Strict):
    name: str = Field(pattern=DNS1123, max_length=253)
    optional: bool | None = None


class EnvFromSource(Strict):
    configMapRef: ConfigMapEnvSource | None = None
    secretRef: ConfigMapEnvSource | None = None  # same fields: name, optional

    @model_validator(mode="after")
    def _one_source(self) -> EnvFromSource:
        if (self.configMapRef is None) == (self.secretRef is None):
            raise ValueError("envFrom takes exactly one of configMapRef and secretRef")
        return self


class ContainerPort(Strict):
    containerPort: int = Field(ge=1, le=65535)
    name: str | None = None


class Resources(Strict):
    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)


class HTTPGet(Strict):
    path: str
    port: int | None = None


class Probe(Strict):
    httpGet: HTTPGet
    periodSeconds: int | None = Field(default=None, ge=1)
    failureThreshold: int | None = Field(default=None, ge=1)


class Container(Strict):
    name: str | None = Field(default=None, pattern=DNS1123)
    image: str
    args: list[str] = Field(default_factory=list)
    env: list[EnvVar] = Field(default_factory=list)
    envFrom: list[EnvFromSource] = Field(default_factory=list)
    ports: list[ContainerPort] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    readinessProbe: Probe | None = None
    livenessProbe: Probe | None = None


# ── batch/v1 ──────────────────────────────────────────────────────────────
class JobPodSpec(Strict):
    restartPolicy: Literal["OnFailure", "Never"]
    containers: list[Container] = Field(min_length=1, max_length=1)


class JobPodTemplate(Strict):
    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: JobPodSpec


class JobSpec(Strict):
    backoffLimit: int = Field(ge=0)
    activeDeadlineSeconds: int = Field(ge=1)
    template: JobPodTemplate


class JobTemplate(Strict):
    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    spec: JobSpec


class CronJobSpec(Strict):
    schedule: str = Field(pattern=r"^\S+( \S+){4}$")  # five cron fields
    concurrencyPolicy: Literal["Allow", "Forbid", "Replace"]
    startingDeadlineSeconds: int = Field(ge=1)
    successfulJobsHistoryLimit: int = Field(ge=0)
    failedJobsHistoryLimit: int = Field(ge=0)
    jobTemplate: JobTemplate


class CronJob(Strict):
    apiVersion: Literal["batch/v1"] = "batch/v1"
    kind: Literal["CronJob"] = "CronJob"
    metadata: Metadata
    spec: CronJobSpec


# ── serving.knative.dev ───────────────────────────────────────────────────
class RevisionSpec(Strict):
    # Knative refuses more than its container-concurrency-max-limit (1000 by default).
    containerConcurrency: int = Field(ge=0, le=1000)
    timeoutSeconds: int = Field(ge=1, le=3600)
    containers: list[Container] = Field(min_length=1, max_length=1)


class RevisionTemplate(Strict):
    metadata: TemplateMetadata
    spec: RevisionSpec


class ServiceSpec(Strict):
    template: RevisionTemplate


class KnativeService(Strict):
    apiVersion: Literal["serving.knative.dev/v1"] = "serving.knative.dev/v1"
    kind: Literal["Service"] = "Service"
    metadata: Metadata
    spec: ServiceSpec


# ── eventing.knative.dev and the Kafka extensions ─────────────────────────
class BrokerSpec(Strict):
    config: Ref
    delivery: Delivery | None = None


class Broker(Strict):
    apiVersion: Literal["eventing.knative.dev/v1"] = "eventing.knative.dev/v1"
    kind: Literal["Broker"] = "Broker"
    metadata: Metadata
    spec: BrokerSpec


class ConfigMap(Strict):
    apiVersion: Literal["v1"] = "v1"
    kind: Literal["ConfigMap"] = "ConfigMap"
    metadata: Metadata
    data: dict[str, str]


class Delivery(Strict):
    retry: int = Field(ge=0)
    backoffPolicy: Literal["exponential", "linear"]
    backoffDelay: str = Field(pattern=r"^PT[0-9.]+S$")
    deadLetterSink: Destination | None = None


class TriggerFilter(Strict):
    attributes: dict[str, str]


class TriggerSpec(Strict):
    broker: str
    filter: TriggerFilter
    subscriber: Destination
    delivery: Delivery


class Trigger(Strict):
    apiVersion: Literal["eventing.knative.dev/v1"] = "eventing.knative.dev/v1"
    kind: Literal["Trigger"] = "Trigger"
    metadata: Metadata
    spec: TriggerSpec


class KafkaSourceSpec(Strict):
    consumerGroup: str
    bootstrapServers: list[str] = Field(min_length=1)
    topics: list[str] = Field(min_length=1)
    sink: Destination


class KafkaSource(Strict):
    apiVersion: Literal["sources.knative.dev/v1beta1"] = "sources.knative.dev/v1beta1"
    kind: Literal["KafkaSource"] = "KafkaSource"
    metadata: Metadata
    spec: KafkaSourceSpec


class KafkaSinkSpec(Strict):
    topic: str
    bootstrapServers: list[str] = Field(min_length=1)
    contentMode: Literal["binary", "structured"] = "binary"


class KafkaSink(Strict):
    apiVersion: Literal["eventing.knative.dev/v1alpha1"] = "eventing.knative.dev/v1alpha1"
    kind: Literal["KafkaSink"] = "KafkaSink"
    metadata: Metadata
    spec: KafkaSinkSpec


class KafkaTopicSpec(Strict):
    topicName: str
    partitions: int = Field(ge=1)
    replicas: int = Field(ge=1)
    config: dict[str, str]


class KafkaTopic(Strict):
    """Strimzi's topic resource: partitions, replicas and retention from the catalog."""

    apiVersion: Literal["kafka.strimzi.io/v1beta2"] = "kafka.strimzi.io/v1beta2"
    kind: Literal["KafkaTopic"] = "KafkaTopic"
    metadata: Metadata
    spec: KafkaTopicSpec


# ── serving.kserve.io ─────────────────────────────────────────────────────
class SupportedFormat(Strict):
    name: str
    version: str
    autoSelect: bool = True


class ServingRuntimeSpec(Strict):
    supportedModelFormats: list[SupportedFormat]
    protocolVersions: list[Literal["v1", "v2"]]
    containers: list[Container] = Field(min_length=1, max_length=1)


class ServingRuntime(Strict):
    apiVersion: Literal["serving.kserve.io/v1alpha1"] = "serving.kserve.io/v1alpha1"
    kind: Literal["ServingRuntime"] = "ServingRuntime"
    metadata: Metadata
    spec: ServingRuntimeSpec


class ModelFormat(Strict):
    name: str


class ModelSpec(Strict):
    modelFormat: ModelFormat
    runtime: str
    storageUri: str
    protocolVersion: Literal["v2"] = "v2"
    resources: Resources


class PredictorSpec(Strict):
    minReplicas: int = Field(ge=0)
    maxReplicas: int = Field(ge=1)
    model: ModelSpec


class InferenceServiceSpec(Strict):
    predictor: PredictorSpec


class InferenceService(Strict):
    apiVersion: Literal["serving.kserve.io/v1beta1"] = "serving.kserve.io/v1beta1"
    kind: Literal["InferenceService"] = "InferenceService"
    metadata: Metadata
    spec: InferenceServiceSpec


BrokerSpec.model_rebuild()
