"""Benchmarks (性能基准): speed and memory, always reported as ratios against a baseline of the same run.

``python -m bench.run [--quick] [--out PATH]``; the figures and how to read them are in
``docs/benchmarks.md``.
"""
