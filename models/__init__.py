"""Loom KServe predictors: one sub-package per model (stt, vad, vlm, llm, ...)."""
