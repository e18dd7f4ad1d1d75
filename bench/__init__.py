"""Benchmarks. Run each as a module from the project root (``python -m bench.speedup``) or all of
them with ``make bench``; they share the test support package :mod:`tests.support`."""
