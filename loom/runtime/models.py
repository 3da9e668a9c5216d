"""Model servers (KServe predictors) as the graph knows them: name, where the weights
live, and what hardware they need. ``models/<name>/predictor.py`` registers one with
``@model(...)`` on its predictor class; functions ask ``ctx.model(name)`` for a client."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loom.errors import LoomError

__all__ = ["MODELS", "ModelRegistry", "ModelSpec", "discover_models", "model"]


@dataclass(frozen=True)
class ModelSpec:
    """One model server: ``storage_uri_env`` names the setting that holds its weights' URI."""

    name: str
    predictor: Any
    storage_uri_env: str
    default_storage_uri: str
    gpu: bool = True
    memory: str = "16Gi"
    max_replicas: int = 4
    description: str = ""


@dataclass
class ModelRegistry:
    models: dict[str, ModelSpec] = field(default_factory=dict)

    def add(self, spec: ModelSpec) -> None:
        known = self.models.get(spec.name)
        if known is not None and known.predictor is not spec.predictor:
            raise LoomError(f"two models are named {spec.name!r}")
        self.models[spec.name] = spec

    def find(self, name: str) -> ModelSpec | None:
        """The model called ``name``, or whose InferenceService is called ``name`` (the
        DNS-1123 form the manifests give it: ``face-emotion`` for ``face_emotion``)."""
        from loom.manifests.options import slug

        return self.models.get(name) or next(
            (m for m in self.models.values() if slug(m.name) == name), None
        )


MODELS = ModelRegistry()


def model(
    *,
    name: str,
    storage_uri_env: str,
    default_storage_uri: str,
    gpu: bool = True,
    memory: str = "16Gi",
    max_replicas: int = 4,
    registry: ModelRegistry = MODELS,
) -> Callable[[Any], Any]:
    """Register a predictor class as the model server ``name``."""

    def register(predictor: Any) -> Any:
        registry.add(ModelSpec(
            name=name, predictor=predictor, storage_uri_env=storage_uri_env,
            default_storage_uri=default_storage_uri, gpu=gpu, memory=memory,
            max_replicas=max_replicas,
            description=(predictor.__doc__ or "").strip().split("\n")[0],
        ))  # fmt: skip
        return predictor

    return register


def discover_models(package: str = "models", registry: ModelRegistry = MODELS) -> ModelRegistry:
    """Import ``<package>.<name>.predictor`` for every sub-package that has one (on disk)."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        if info.ispkg and any(
            (Path(p) / info.name / "predictor.py").exists() for p in root.__path__
        ):
            importlib.import_module(f"{package}.{info.name}.predictor")
    return registry
