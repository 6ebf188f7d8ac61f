"""Evals: datasets, metrics, judges, runs and run-vs-run comparison (issue #6)."""
