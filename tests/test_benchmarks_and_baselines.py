"""The benchmark and baseline commands run end to end on small inputs (their numbers are never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from assistant.build import build_assistant
from assistant.flow import Assistant
from assistant.settings import PROJECT_ROOT
from evals.baselines import compare, markdown_table
from evals.cases import read_cases


@pytest.fixture(scope="module")
def assistant(engine) -> Assistant:
    return build_assistant(engine=engine)


def test_baselines_score_every_system_on_the_same_cases(assistant):
    cases = read_cases(PROJECT_ROOT / "evals" / "cases" / "dev.jsonl").cases[:12]
    table = compare(assistant, cases)
    assert list(table) == ["dense only", "lexical only (BM25)", "LangChain RAG recipe",
                           "dense over specialty descriptions", "ours"]
    assert table["dense over specialty descriptions"]["hospital_hit_at_3"] in (0.0, None), "it names no hospital"
    assert all(metrics["cases"] == len(cases) for metrics in table.values())
    assert table["dense only"]["emergency_recall"] in (0.0, None), "baselines have no safety layer"
    assert markdown_table(table).count("\n") == len(table) + 1


def test_the_scale_benchmark_starts_and_stops_its_own_chroma_server(tmp_path):
    """The hashing embedder: this checks the benchmark's plumbing, whose vectors need no meaning."""
    env = {**os.environ, "BENCH_RESULTS_DIR": str(tmp_path), "CARE_DATA_DIR": str(tmp_path / "data"),
           "CARE_EMBEDDER": "hashing"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.scale", "--sizes", "300", "--queries", "3"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "scale.json").read_text())["results"]
    assert {row["store"] for row in results} == {"embedded", "server"}
    assert (tmp_path / "scale.md").read_text().count("| 300 |") == 2
