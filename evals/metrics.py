"""The metrics of eval-format.md, each over the cases whose `expect` has the field it needs.

An empty denominator gives None (no such cases), never a division error or a fake 0 or 1.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def share(hits: Iterable[bool]) -> float | None:
    values = list(hits)
    return round(sum(values) / len(values), 4) if values else None


def percentile(values: list[float], fraction: float) -> float | None:
    """The one percentile of the project (evaluations and benchmarks): linear interpolation between ranks,
    numpy's default, so a p95 in the README means the same statistic wherever it was measured."""
    if not values:
        return None
    return round(float(np.percentile(values, fraction * 100, method="linear")), 2)


def compute_metrics(results: list[dict], cases: dict[str, dict]) -> dict[str, float | None]:
    """`results`: result entries; `cases`: id -> case as read (with its optional `expect`)."""

    def expect(result: dict) -> dict:
        return (cases.get(result["id"]) or {}).get("expect") or {}

    with_specialties = [r for r in results if expect(r).get("specialties")]
    with_hospitals = [r for r in results if expect(r).get("hospitals")]
    emergencies = [r for r in results if expect(r).get("triage") == "emergency"]
    non_emergencies = [r for r in results if expect(r).get("triage") not in (None, "emergency")]
    scoped = [r for r in results if expect(r).get("out_of_scope") is not None]
    latencies = [ms for r in results for ms in r.get("latency_ms") or []]

    def hit(result: dict, key: str, field: str, top: int) -> bool:
        return bool(set((result.get(key) or [])[:top]) & set(expect(result)[field]))

    return {
        "cases": len(results),
        "specialty_hit_at_1": share(hit(r, "specialties", "specialties", 1) for r in with_specialties),
        "specialty_hit_at_3": share(hit(r, "specialties", "specialties", 3) for r in with_specialties),
        "hospital_hit_at_3": share(hit(r, "hospitals", "hospitals", 3) for r in with_hospitals),
        "emergency_recall": share(r.get("triage") == "emergency" for r in emergencies),
        "emergency_false_alarm_rate": share(r.get("triage") == "emergency" for r in non_emergencies),
        "out_of_scope_accuracy": share(
            bool(r.get("out_of_scope")) == bool(expect(r)["out_of_scope"])
            and (not expect(r)["out_of_scope"] or not r.get("departments"))
            for r in scoped
        ),
        "latency_ms_p50": percentile(latencies, 0.5),
        "latency_ms_p95": percentile(latencies, 0.95),
    }


LEVELS = ("emergency", "urgent", "routine")


def triage_confusion(results: list[dict], cases: dict[str, dict]) -> dict[str, dict[str, int]]:
    """Stated triage level (rows) against the level the assistant gave (columns), over cases that state one."""
    table = {gold: dict.fromkeys(LEVELS, 0) for gold in LEVELS}
    for result in results:
        gold = ((cases.get(result["id"]) or {}).get("expect") or {}).get("triage")
        if gold in table and result.get("triage") in LEVELS:
            table[gold][result["triage"]] += 1
    return table


def confusion_table(table: dict[str, dict[str, int]]) -> str:
    lines = ["| stated \\ given | " + " | ".join(LEVELS) + " |", "| --- |" + " --- |" * len(LEVELS)]
    lines += [f"| {gold} | " + " | ".join(str(row[level]) for level in LEVELS) + " |" for gold, row in table.items()]
    return "\n".join(lines)


def passed(result: dict, expect: dict | None) -> bool | None:
    """A case passes when every expectation it states holds (specialty and hospital within the top 3)."""
    if not expect:
        return None
    checks = []
    if expect.get("triage"):
        wanted, got = expect["triage"], result.get("triage")
        checks.append(got == "emergency" if wanted == "emergency" else got != "emergency")
    if expect.get("specialties"):
        checks.append(bool(set(expect["specialties"]) & set((result.get("specialties") or [])[:3])))
    if expect.get("hospitals"):
        checks.append(bool(set(expect["hospitals"]) & set((result.get("hospitals") or [])[:3])))
    if expect.get("out_of_scope") is not None:
        checks.append(bool(result.get("out_of_scope")) == bool(expect["out_of_scope"])
                      and (not expect["out_of_scope"] or not result.get("departments")))
    return all(checks)
