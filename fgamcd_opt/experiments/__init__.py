"""Batch experiments: sweep specs, a crash-safe results store, executors, reports, the paper's
figures and the benchmark suite (docs/experiments.md).

Imports are kept light (no numpy here) so that a worker process can cap its BLAS threads before
numpy is loaded.
"""
