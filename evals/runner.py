"""Run cases through the same `Assistant` the web app uses, turn by turn, and score them."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from assistant.flow import Assistant
from assistant.reply import SEVERITY, Reply
from evals.cases import EvalCase
from evals.metrics import passed


def shortlist_fields(reply: Reply) -> dict[str, list[str]]:
    """Specialties, hospitals and departments of the standing shortlist, best first, without repeats."""
    recs = reply.recommendations
    primary_first = [rec.specialties[0] for rec in recs] + [code for rec in recs for code in rec.specialties[1:]]
    specialties = list(dict.fromkeys(primary_first))
    return {
        "specialties": specialties,
        "hospitals": list(dict.fromkeys(rec.hospital_id for rec in recs)),
        "departments": [rec.department_id for rec in recs],
    }


def run_case(assistant: Assistant, case: EvalCase) -> dict:
    conv = assistant.start(widget_hospital=case.widget)
    latencies: list[float] = []
    highest = "routine"
    replies = []
    for turn in case.turns:
        started = time.perf_counter()
        replies.append(assistant.reply(conv, turn))
        latencies.append(round((time.perf_counter() - started) * 1000, 2))
        if SEVERITY[replies[-1].triage] > SEVERITY[highest]:
            highest = replies[-1].triage
    reply = replies[-1]  # a case has at least one turn (EvalCase)
    result = {"id": case.id, "triage": highest, "out_of_scope": reply.out_of_scope, **shortlist_fields(reply),
              "reply": reply.text, "latency_ms": latencies}
    expect = case.expect.model_dump(exclude_none=True) if case.expect else None
    result["passed"] = passed(result, expect)
    return result


def run_cases(assistant: Assistant, cases: list[EvalCase],
              progress: Callable[[int, int], None] | None = None) -> list[dict]:
    results = []
    for number, case in enumerate(cases, start=1):
        results.append(run_case(assistant, case))
        if progress:
            progress(number, len(cases))
    return results


def progress_bar(done: int, total: int) -> None:
    if not sys.stderr.isatty() and done % max(1, total // 10) and done != total:
        return  # in a log, a line every tenth of the run is enough
    width = 30
    filled = int(width * done / total) if total else width
    end = "\r" if sys.stderr.isatty() else "\n"
    sys.stderr.write(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    if done == total and sys.stderr.isatty():
        sys.stderr.write("\n")
    sys.stderr.flush()
