"""Loom KServe predictors: one sub-package per model (stt, vlm, face_emotion, …)."""

from models.kserve_compat import install as _install_kserve_compat

_install_kserve_compat()
