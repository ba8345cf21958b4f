"""Benchmarks (bench/README.md); their own tests are in bench/tests."""
