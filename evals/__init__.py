"""Evaluation runner: case files in, results and scores out (format: ../shared/eval-format.md)."""
