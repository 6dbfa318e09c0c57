"""Evaluation runner: case files in, results and scores out (format: evals/FORMAT.md)."""
