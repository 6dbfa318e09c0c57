"""Are we better than the obvious alternatives? The same cases, knowledge and model through:

1. dense only: Chroma similarity over department chunks, best chunk per department;
2. lexical only: BM25 over the same chunks;
3. the stock LangChain RAG recipe: `similarity_search` top-k, departments in retrieval order, no safety;
4. dense over specialty descriptions: the message embedded and the specialties of the contract ranked by
   the similarity of their name and scope line (specialties only: it names no department or hospital);
5. ours: the full `Assistant`.

Baselines have no dialogue: all turns of a case are one query, and they never triage or decline.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from assistant.flow import Assistant
from assistant.text import normalize
from evals.cases import EvalCase
from evals.metrics import compute_metrics
from evals.runner import run_cases

RETRIEVAL_K = 10


def departments_in_order(chunk_ids: list[str]) -> list[str]:
    return list(dict.fromkeys(chunk_id.split("#", 1)[0] for chunk_id in chunk_ids))


def result_for(assistant: Assistant, case: EvalCase, department_ids: list[str], latency_ms: float) -> dict:
    departments = [assistant.kb.department(d) for d in department_ids[:3]]
    primary_first = [d.specialties[0] for d in departments] + [c for d in departments for c in d.specialties[1:]]
    return {"id": case.id, "triage": "routine", "out_of_scope": False,
            "specialties": list(dict.fromkeys(primary_first)),
            "hospitals": list(dict.fromkeys(d.hospital_id for d in departments)),
            "departments": [d.id for d in departments], "reply": "", "latency_ms": [latency_ms]}


Ranker = Callable[[str, str | None], list[str]]


def run_baseline(assistant: Assistant, cases: list[EvalCase], rank: Ranker) -> list[dict]:
    results = []
    for case in cases:
        started = time.perf_counter()
        department_ids = rank(" ".join(case.turns), case.widget)
        results.append(result_for(assistant, case, department_ids, (time.perf_counter() - started) * 1000))
    return results


def baselines(assistant: Assistant) -> dict[str, Ranker]:
    index = assistant.engine.index

    def dense(text: str, widget: str | None) -> list[str]:
        where = {"hospital_id": widget} if widget else None
        scores = index.dense(index.embedder.embed([text])[0], k=200, where=where)
        return departments_in_order(sorted(scores, key=scores.get, reverse=True))

    def lexical(text: str, widget: str | None) -> list[str]:
        scores = index.lexical(normalize(text))
        ranked = departments_in_order(sorted(scores, key=scores.get, reverse=True))
        return [d for d in ranked if not widget or d.startswith(f"{widget}/")]

    def langchain_rag(text: str, widget: str | None) -> list[str]:
        documents = index.store.similarity_search(text, k=RETRIEVAL_K,
                                                  filter={"hospital_id": widget} if widget else None)
        return departments_in_order([doc.id for doc in documents])

    return {"dense only": dense, "lexical only (BM25)": lexical, "LangChain RAG recipe": langchain_rag}


def specialty_descriptions(assistant: Assistant, cases: list[EvalCase]) -> list[dict]:
    """The plainest router: which specialty's own description reads most like the message."""
    embedder = assistant.engine.embedder
    specialties = list(assistant.kb.specialties.values())
    descriptions = embedder.embed([f"{spec.name}: {spec.scope}" for spec in specialties])
    results = []
    for case in cases:
        started = time.perf_counter()
        similarity = descriptions @ embedder.embed([" ".join(case.turns)])[0]
        codes = [specialties[i].code for i in similarity.argsort()[::-1][:3]]
        results.append({"id": case.id, "triage": "routine", "out_of_scope": False, "specialties": codes,
                        "hospitals": [], "departments": [], "reply": "",
                        "latency_ms": [(time.perf_counter() - started) * 1000]})
    return results


def compare(assistant: Assistant, cases: list[EvalCase]) -> dict[str, dict]:
    expectations = {case.id: case.model_dump(exclude_none=True) for case in cases}
    table = {name: compute_metrics(run_baseline(assistant, cases, rank), expectations)
             for name, rank in baselines(assistant).items()}
    table["dense over specialty descriptions"] = compute_metrics(specialty_descriptions(assistant, cases),
                                                                 expectations)
    table["ours"] = compute_metrics(run_cases(assistant, cases), expectations)
    return table


COLUMNS = ("specialty_hit_at_1", "specialty_hit_at_3", "hospital_hit_at_3", "emergency_recall",
           "emergency_false_alarm_rate", "latency_ms_p50", "latency_ms_p95")


def markdown_table(table: dict[str, dict]) -> str:
    head = "| system | hit@1 | hit@3 | hospital hit@3 | emergency recall | false alarms | p50 ms | p95 ms |"
    lines = [head, "|" + " --- |" * 8]
    for name, metrics in table.items():
        cells = []
        for column in COLUMNS:
            value = metrics.get(column)
            cells.append("n/a" if value is None else (f"{value:.1%}" if "latency" not in column else f"{value:.1f}"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
