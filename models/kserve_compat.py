"""Lets kserve run on cloudevents 2.

kserve imports cloudevents' 1.x module paths (``cloudevents.http``,
``cloudevents.conversion`` …); cloudevents 2 keeps that whole API, unchanged, under
``cloudevents.v1``. Importing this module (``models`` does, before any predictor imports
kserve) points the old paths at the new ones.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any

__all__ = ["install"]

_OLD = ("http", "conversion", "exceptions", "sdk", "abstract", "kafka", "pydantic")


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``cloudevents.<old>[.…]`` → ``cloudevents.v1.<old>[.…]``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        parts = name.split(".")
        if len(parts) < 2 or parts[0] != "cloudevents" or parts[1] not in _OLD:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec: Any) -> ModuleType:
        real = importlib.import_module("cloudevents.v1." + spec.name.split(".", 1)[1])
        sys.modules[spec.name] = real
        return real

    def exec_module(self, module: ModuleType) -> None:
        return None


def install() -> None:
    try:
        import cloudevents.v1  # noqa: F401 — cloudevents 2: the old API lives here
    except ImportError:
        return  # cloudevents 1: the old paths are real
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
