"""One self-contained HTML page from a results file, optionally compared with another run.

Plots are matplotlib PNGs embedded as data URIs, so the page can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from evals.cases import read_cases
from evals.metrics import compute_metrics

TRIAGE_LEVELS = ("emergency", "urgent", "routine")
FAMILIES = {
    "cancer and blood": ["hematology", "medical_oncology", "radiation_oncology"],
    "brain and nerves": ["neurosurgery", "neurology"],
    "heart and chest": ["cardiology", "cardiac_surgery", "thoracic_surgery", "pulmonology"],
    "digestive and liver": ["gastroenterology", "hepatology", "general_surgery", "transplant"],
    "kidney and urology": ["nephrology", "urology"],
    "hormones, immunity, infection": ["endocrinology", "rheumatology", "infectious_disease"],
    "skin, eyes, ENT, teeth": ["dermatology", "ophthalmology", "otolaryngology", "stomatology"],
    "bones and joints": ["orthopedics", "sports_medicine"],
    "women and fertility": ["gynecology", "obstetrics", "reproductive_medicine"],
    "other adult care": ["plastic_surgery", "psychiatry", "rehabilitation", "traditional_chinese_medicine",
                         "health_checkup"],
    "children": ["pediatrics", "pediatric_hematology_oncology", "pediatric_transplant", "pediatric_cardiology",
                 "pediatric_surgery", "pediatric_neurology", "neonatology"],
}


def family_of(code: str) -> str:
    return next((name for name, codes in FAMILIES.items() if code in codes), "other")


def load_results(path: Path) -> tuple[dict, dict[str, dict]]:
    """The results file and its cases (turns and expectations), when the case file can still be read."""
    results = json.loads(path.read_text(encoding="utf-8"))
    cases_file = (results.get("run") or {}).get("cases_file")
    cases: dict[str, dict] = {}
    if cases_file and Path(cases_file).exists():
        cases = {case.id: case.model_dump(exclude_none=True) for case in read_cases(Path(cases_file)).cases}
    return results, cases


def png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def confusion(results: list[dict], cases: dict[str, dict]) -> list[list[int]]:
    matrix = [[0] * 3 for _ in TRIAGE_LEVELS]
    for result in results:
        expected = ((cases.get(result["id"]) or {}).get("expect") or {}).get("triage")
        if expected in TRIAGE_LEVELS and result.get("triage") in TRIAGE_LEVELS:
            matrix[TRIAGE_LEVELS.index(expected)][TRIAGE_LEVELS.index(result["triage"])] += 1
    return matrix


def hits_by_family(results: list[dict], cases: dict[str, dict]) -> dict[str, tuple[int, int, int]]:
    table: dict[str, list[int]] = {}
    for result in results:
        wanted = ((cases.get(result["id"]) or {}).get("expect") or {}).get("specialties")
        if not wanted:
            continue
        row = table.setdefault(family_of(wanted[0]), [0, 0, 0])
        got = result.get("specialties") or []
        row[0] += 1
        row[1] += bool(set(got[:1]) & set(wanted))
        row[2] += bool(set(got[:3]) & set(wanted))
    return {name: (n, at1, at3) for name, (n, at1, at3) in sorted(table.items())}


def plots(results: list[dict], cases: dict[str, dict]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    matrix = confusion(results, cases)
    figure, axes = plt.subplots(figsize=(4.2, 3.6))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(3), TRIAGE_LEVELS)
    axes.set_yticks(range(3), TRIAGE_LEVELS)
    axes.set_xlabel("assistant said")
    axes.set_ylabel("expected")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            axes.text(j, i, str(value), ha="center", va="center")
    images["confusion"] = png(figure)
    plt.close(figure)

    families = hits_by_family(results, cases)
    if families:
        figure, axes = plt.subplots(figsize=(7.5, 3.8))
        names = list(families)
        at1 = [families[n][1] / families[n][0] for n in names]
        at3 = [families[n][2] / families[n][0] for n in names]
        positions = range(len(names))
        axes.barh([p + 0.2 for p in positions], at3, height=0.4, label="hit@3")
        axes.barh([p - 0.2 for p in positions], at1, height=0.4, label="hit@1")
        axes.set_yticks(list(positions), names)
        axes.set_xlim(0, 1)
        axes.legend(loc="lower right")
        images["families"] = png(figure)
        plt.close(figure)

    latencies = [ms for r in results for ms in r.get("latency_ms") or []]
    if latencies:
        figure, axes = plt.subplots(figsize=(6, 3))
        axes.hist(latencies, bins=40)
        axes.set_xlabel("turn latency (ms)")
        axes.set_ylabel("turns")
        images["latency"] = png(figure)
        plt.close(figure)
    return images


def metric_rows(metrics: dict, other: dict | None) -> str:
    rows = []
    for name, value in metrics.items():
        cell = "n/a" if value is None else f"{value}"
        delta = ""
        if other is not None:
            before = other.get(name)
            if isinstance(value, int | float) and isinstance(before, int | float):
                delta = f"{value - before:+.4g}"
            delta = f"<td>{delta}</td>"
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{cell}</td>{delta}</tr>")
    return "\n".join(rows)


def case_block(result: dict, case: dict | None) -> str:
    turns = "".join(f"<li>{html.escape(turn)}</li>" for turn in (case or {}).get("turns", []))
    expected = html.escape(json.dumps((case or {}).get("expect"), ensure_ascii=False))
    got = html.escape(json.dumps({k: result.get(k) for k in ("triage", "out_of_scope", "specialties", "hospitals")},
                                 ensure_ascii=False))
    return (f"<details><summary>{html.escape(result['id'])}</summary><ol>{turns}</ol>"
            f"<p><b>expected</b> {expected}<br><b>got</b> {got}</p>"
            f"<pre>{html.escape(result.get('reply') or '')}</pre></details>")


def render(path: Path, compare: Path | None = None) -> str:
    results, cases = load_results(path)
    entries = results["cases"]
    metrics = compute_metrics(entries, cases) if cases else results["metrics"]
    other_metrics = None
    changes = ""
    if compare is not None:
        other, other_cases = load_results(compare)
        other_metrics = compute_metrics(other["cases"], other_cases or cases) if (other_cases or cases) \
            else other["metrics"]
        before = {r["id"]: r.get("passed") for r in other["cases"]}
        now_failing = [r for r in entries if r.get("passed") is False and before.get(r["id"]) is True]
        now_passing = [r for r in entries if r.get("passed") is True and before.get(r["id"]) is False]
        changes = (f"<h2>Changed since {html.escape(str(compare))}</h2>"
                   f"<h3>Pass to fail ({len(now_failing)})</h3>" + "".join(case_block(r, cases.get(r["id"]))
                                                                       for r in now_failing)
                   + f"<h3>Fail to pass ({len(now_passing)})</h3>"
                   + "".join(f"<div>{html.escape(r['id'])}</div>" for r in now_passing))
    images = plots(entries, cases)
    failed = [r for r in entries if r.get("passed") is False]
    family_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{n}</td><td>{at1 / n:.0%}</td><td>{at3 / n:.0%}</td></tr>"
        for name, (n, at1, at3) in hits_by_family(entries, cases).items()
    )
    delta_head = "<th>delta</th>" if compare else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation report</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:8px}}details{{margin:4px 0}}</style></head><body>
<h1>Evaluation report</h1>
<p>{html.escape(str(path))}: {len(entries)} cases, {len(failed)} failed.
Run: {html.escape(json.dumps(results.get("run", {}), ensure_ascii=False))}</p>
<h2>Metrics</h2><table><tr><th>metric</th><th>value</th>{delta_head}</tr>{metric_rows(metrics, other_metrics)}</table>
<h2>Triage</h2>{images.get("confusion", "")}
<h2>Specialty hit@1 / hit@3 by family</h2>
<table><tr><th>family</th><th>cases</th><th>hit@1</th><th>hit@3</th></tr>{family_rows}</table>
{images.get("families", "")}
<h2>Latency</h2>{images.get("latency", "")}
{changes}
<h2>Failed cases ({len(failed)})</h2>
{"".join(case_block(r, cases.get(r["id"])) for r in failed)}
</body></html>"""
