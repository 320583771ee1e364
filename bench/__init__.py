"""Benchmarks: the load harness and per-stage microbenchmarks (see docs/performance.md)."""
