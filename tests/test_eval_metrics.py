"""The evaluation arithmetic on small hand-made results, including missing fields and empty denominators."""

from __future__ import annotations

import json

import pytest

from evals.cases import read_cases
from evals.metrics import compute_metrics, passed, percentile, triage_confusion
from evals.tune import FALSE_ALARM_BUDGET, Scored, choose


def result(case_id: str, **fields) -> dict:
    return {"id": case_id, "triage": "routine", "out_of_scope": False, "specialties": [], "hospitals": [],
            "departments": [], "reply": "", "latency_ms": [], **fields}


CASES = {
    "a": {"id": "a", "expect": {"triage": "routine", "specialties": ["hematology"], "hospitals": ["ruijin"]}},
    "b": {"id": "b", "expect": {"specialties": ["neurosurgery", "neurology"], "hospitals": ["huashan"]}},
    "c": {"id": "c", "expect": {"triage": "emergency"}},
    "d": {"id": "d", "expect": {"triage": "emergency"}},
    "e": {"id": "e", "expect": {"out_of_scope": True}},
    "f": {"id": "f"},
}
RESULTS = [
    result("a", specialties=["hematology", "medical_oncology"], hospitals=["zhongshan", "ruijin"], latency_ms=[10, 30]),
    result("b", specialties=["radiation_oncology", "neurology"], hospitals=["fuscc", "sphic", "renji", "huashan"],
           latency_ms=[20]),
    result("c", triage="emergency", latency_ms=[5]),
    result("d", triage="urgent", latency_ms=[5]),
    result("e", out_of_scope=True, latency_ms=[1]),
    result("f", latency_ms=[100]),
]


def test_hit_at_1_and_at_3_count_only_cases_that_expect_specialties():
    metrics = compute_metrics(RESULTS, CASES)
    assert metrics["specialty_hit_at_1"] == 0.5  # a yes, b no
    assert metrics["specialty_hit_at_3"] == 1.0  # b has neurology second


def test_hospital_hit_at_3_ignores_the_fourth_place():
    assert compute_metrics(RESULTS, CASES)["hospital_hit_at_3"] == 0.5  # huashan is 4th for b


def test_emergency_recall_and_false_alarms_use_their_own_denominators():
    metrics = compute_metrics(RESULTS, CASES)
    assert metrics["emergency_recall"] == 0.5
    assert metrics["emergency_false_alarm_rate"] == 0.0  # only "a" states a non-emergency triage


def test_out_of_scope_accuracy_requires_no_recommendation():
    assert compute_metrics(RESULTS, CASES)["out_of_scope_accuracy"] == 1.0
    with_recommendation = [result("e", out_of_scope=True, departments=["ruijin/hematology"])]
    assert compute_metrics(with_recommendation, CASES)["out_of_scope_accuracy"] == 0.0


def test_latency_percentiles_cover_every_turn_of_every_case():
    metrics = compute_metrics(RESULTS, CASES)
    assert metrics["latency_ms_p50"] == 10.0
    assert metrics["latency_ms_p95"] == pytest.approx(percentile([10, 30, 20, 5, 5, 1, 100], 0.95))


def test_empty_denominators_give_none_not_a_number():
    metrics = compute_metrics([result("f")], CASES)
    for name in ("specialty_hit_at_1", "hospital_hit_at_3", "emergency_recall", "emergency_false_alarm_rate",
                 "out_of_scope_accuracy", "latency_ms_p50"):
        assert metrics[name] is None


def test_missing_fields_in_a_result_count_as_misses_not_errors():
    sparse = [{"id": "a"}, {"id": "c"}]
    metrics = compute_metrics(sparse, CASES)
    assert metrics["specialty_hit_at_1"] == 0.0 and metrics["emergency_recall"] == 0.0


def test_a_case_passes_only_when_every_stated_expectation_holds():
    assert passed(RESULTS[0], CASES["a"]["expect"]) is True
    assert passed(RESULTS[3], CASES["d"]["expect"]) is False
    assert passed(RESULTS[5], None) is None


def test_bad_case_lines_are_reported_with_their_line_number_and_skipped(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join([
        json.dumps({"id": "ok", "turns": ["hello"]}),
        "{not json",
        json.dumps({"turns": ["no id"]}),
        json.dumps({"id": "ok", "turns": ["duplicate"]}),
        json.dumps({"id": "fine", "turns": ["x"], "expect": {"triage": "routine"}}),
    ]), encoding="utf-8")
    case_file = read_cases(path)
    assert [c.id for c in case_file.cases] == ["ok", "fine"]
    assert [p.split(":")[1] for p in case_file.problems] == ["2", "3", "4"]


def test_the_report_is_one_self_contained_page_with_failures_and_deltas(tmp_path):
    from evals.report import render

    cases_path = tmp_path / "cases.jsonl"
    cases_path.write_text("\n".join(json.dumps(case | {"turns": [f"turn of {case['id']}"]}) for case in CASES.values()),
                          encoding="utf-8")
    before = {"metrics": {}, "run": {"cases_file": str(cases_path)},
              "cases": [r | {"passed": True} for r in RESULTS]}
    after = {"metrics": {}, "run": {"cases_file": str(cases_path)},
             "cases": [r | {"passed": r["id"] != "d"} for r in RESULTS]}
    (tmp_path / "before.json").write_text(json.dumps(before), encoding="utf-8")
    (tmp_path / "after.json").write_text(json.dumps(after), encoding="utf-8")
    page = render(tmp_path / "after.json", compare=tmp_path / "before.json")
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert page.count('src="data:image/png;base64,') >= 2, "plots are embedded, not linked"
    assert "Pass to fail (1)" in page and "turn of d" in page
    assert "specialty_hit_at_1" in page and "<th>delta</th>" in page


def test_the_triage_confusion_counts_stated_against_given_levels_for_cases_that_state_one():
    table = triage_confusion(RESULTS, CASES)
    assert table["emergency"] == {"emergency": 1, "urgent": 1, "routine": 0}  # c caught, d called urgent
    assert table["routine"] == {"emergency": 0, "urgent": 0, "routine": 1}  # a
    assert sum(sum(row.values()) for row in table.values()) == 3  # b, e and f state no level


def _dev_cases(false_alarms_at_half: int) -> list[Scored]:
    """100 emergencies (rules catch 90; the classifier scores 8 of the rest 1.0 and 2 of them 0.5) and 100 other
    cases, of which `false_alarms_at_half` score 0.5 and the rest -1."""
    inf = float("-inf")
    emergencies = [Scored("emergency", "emergency", inf, inf, 0.0, inf) for _ in range(90)]
    emergencies += [Scored("emergency", "routine", 1.0, inf, 0.0, inf) for _ in range(8)]
    emergencies += [Scored("emergency", "routine", 0.5, inf, 0.0, inf) for _ in range(2)]
    others = [Scored("routine", "routine", 0.5, inf, -1.0, inf) for _ in range(false_alarms_at_half)]
    others += [Scored("routine", "routine", -1.0, inf, -1.0, inf) for _ in range(100 - false_alarms_at_half)]
    return emergencies + others


def test_tuning_spends_the_false_alarm_budget_on_recall_and_no_more():
    affordable = int(FALSE_ALARM_BUDGET * 100)  # false alarms of 100 others the budget pays for
    assert affordable >= 1
    within = choose(_dev_cases(false_alarms_at_half=affordable))
    assert within["recall"] == 1.0 and within["false_alarms"] == affordable / 100 <= FALSE_ALARM_BUDGET
    beyond = choose(_dev_cases(false_alarms_at_half=affordable + 3))
    assert beyond["recall"] == 0.98 and beyond["false_alarms"] == 0.0


def test_tuning_spends_what_the_budget_leaves_on_the_classifiers_own_recall():
    """The rules catch every dev emergency (they were written on them); the classifier's threshold still goes as
    low as the false-alarm budget allows, since on new words it is what is left."""
    inf = float("-inf")
    emergencies = [Scored("emergency", "emergency", value, inf, 0.0, inf) for value in (1.0,) * 60 + (0.4,) * 40]
    within_budget = int(FALSE_ALARM_BUDGET * 100)  # this many of 100 others score 0.4, like 40 emergencies
    others = [Scored("routine", "routine", value, inf, -1.0, inf)
              for value in (0.4,) * within_budget + (-1.0,) * (100 - within_budget)]
    chosen = choose(emergencies + others)
    assert chosen["recall"] == 1.0 and chosen["emergency_message"] <= 0.4
    assert chosen["false_alarms"] == within_budget / 100
