"""Generated deployment manifests (Knative Serving and Eventing, Kafka, KServe)."""

from loom.manifests.generate import ManifestOptions, check_graph, generate, render, write

__all__ = ["ManifestOptions", "check_graph", "generate", "render", "write"]
