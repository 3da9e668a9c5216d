"""Loom's benchmarks: `make bench` (or `python -m bench [NAME…]`) runs them.

Each module in this package defines ``run(services) -> list[dict]`` (rows of one
table, measured side by side in one run) and a ``TITLE``. Results are printed and
written to ``bench/results/<name>.json``.
"""
