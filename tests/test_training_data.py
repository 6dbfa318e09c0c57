"""The training data keeps its promises: valid lines, known codes and labels, enough of each kind."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from assistant.knowledge import load_specialties
from assistant.settings import PROJECT_ROOT

TRAINING = PROJECT_ROOT / "knowledge" / "training"


def rows(name: str) -> list[dict]:
    lines = (TRAINING / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def codes() -> set[str]:
    return set(load_specialties(PROJECT_ROOT / "knowledge"))


def test_routing_data_has_at_least_50_messages_per_code_half_of_them_symptoms_only(codes: set[str]) -> None:
    routing = rows("routing.jsonl")
    assert len(routing) >= 3000
    assert all(row["specialty"] in codes and set(row["also"]) <= codes and row["text"].strip() for row in routing)
    per_code = Counter(row["specialty"] for row in routing)
    assert set(per_code) == codes and min(per_code.values()) >= 50
    styles = Counter(row["style"] for row in routing)
    assert styles["symptoms"] >= len(routing) / 2 and styles["story"] >= len(routing) / 4
    assert Counter(row["lang"] for row in routing)["zh"] >= len(routing) / 10


def test_triage_data_covers_every_level_with_near_misses() -> None:
    triage = rows("triage.jsonl")
    assert len(triage) >= 1500
    assert {row["level"] for row in triage} == {"emergency", "urgent", "routine"}
    near_misses = [row for row in triage if row["kind"] == "near_miss"]
    assert len(near_misses) >= len(triage) / 3 and all(row["level"] != "emergency" for row in near_misses)


def test_no_training_text_is_an_evaluation_turn() -> None:
    """The blind sets still in evals/cases (the unscored one among them) and the tuning cases are never learned
    from: not as training lines, nor as read cases under training/cases/."""
    evaluation = [line for path in sorted((PROJECT_ROOT / "evals" / "cases").glob("*.jsonl"))
                  for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(evaluation) >= 1500  # dev, holdout and the newer blind sets
    turns = {turn.strip().lower() for line in evaluation for turn in json.loads(line)["turns"]}
    texts = {row["text"].strip().lower() for name in ("routing.jsonl", "triage.jsonl") for row in rows(name)}
    read_cases = {turn.strip().lower() for path in sorted((TRAINING / "cases").glob("*.jsonl"))
                  for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
                  for turn in json.loads(line)["turns"]}
    assert len(read_cases) >= 1000
    assert not texts & turns
    assert not read_cases & turns


def test_the_thresholds_are_tuned_on_cases_the_models_did_not_learn_from() -> None:
    from evals.__main__ import DEV_CASES

    learned_from = {path.name for path in (TRAINING / "cases").glob("*.jsonl")}
    assert learned_from and not learned_from & {Path(path).name for path in DEV_CASES}
