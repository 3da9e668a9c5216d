"""Loom functions: one sub-package per function (ingest, store, vad, georegion, motion, ...)."""
