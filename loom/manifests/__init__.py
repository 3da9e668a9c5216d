"""Generated deployment manifests (Knative Serving and Eventing, Kafka, KServe)."""

from loom.manifests.generate import check_graph, generate, render, write
from loom.manifests.options import ManifestOptions
from loom.manifests.workloads import config_defaults

__all__ = ["ManifestOptions", "check_graph", "config_defaults", "generate", "render", "write"]
