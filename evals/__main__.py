"""`python -m evals run --cases FILE --out RESULTS.json`: score the assistant on a case file."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from assistant.datafile import START_REFUSED_EXIT_CODE, DataFileError, first_line
from assistant.settings import Settings, set_offline_environment
from evals.cases import read_cases
from evals.metrics import compute_metrics, confusion_table, triage_confusion


def summary_table(metrics: dict) -> str:
    lines = ["metric                          value", "-" * 40]
    for name, value in metrics.items():
        shown = "n/a" if value is None else (f"{value:.1%}" if isinstance(value, float) and name[:7] != "latency"
                                            and value <= 1 else f"{value}")
        lines.append(f"{name:32}{shown}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from assistant.build import build_assistant
    from evals.runner import progress_bar, run_cases

    case_file = read_cases(Path(args.cases))
    for problem in case_file.problems:
        print(problem, file=sys.stderr)
    settings = Settings()
    assistant = build_assistant(settings)
    results = run_cases(assistant, case_file.cases, progress=progress_bar)
    cases = {case.id: case.model_dump(exclude_none=True) for case in case_file.cases}
    metrics = compute_metrics(results, cases)
    confusion = triage_confusion(results, cases)
    output = {"metrics": metrics, "triage_confusion": confusion, "cases": results,
              "run": {"cases_file": str(args.cases), "date": datetime.now(UTC).isoformat(timespec="seconds"),
                      "settings_fingerprint": settings.fingerprint(), "knowledge": assistant.kb.fingerprint,
                      "skipped_lines": case_file.problems}}
    Path(args.out).write_text(json.dumps(output, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(summary_table(metrics))
    print(confusion_table(confusion))
    failed = [r["id"] for r in results if r["passed"] is False]
    print(f"{len(results)} cases, {len(failed)} failed" + (f": {', '.join(failed[:20])}" if failed else ""))
    return 1 if case_file.problems else 0


def cmd_report(args: argparse.Namespace) -> int:
    from evals.report import render

    page = render(Path(args.results), Path(args.compare) if args.compare else None)
    Path(args.html).write_text(page, encoding="utf-8")
    print(f"wrote {args.html}")
    return 0


def cmd_baselines(args: argparse.Namespace) -> int:
    from assistant.build import build_assistant
    from evals.baselines import compare, markdown_table

    case_file = read_cases(Path(args.cases))
    for problem in case_file.problems:
        print(problem, file=sys.stderr)
    table = markdown_table(compare(build_assistant(), case_file.cases))
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    return 1 if case_file.problems else 0


# The blind sets were each scored once and then read: they are development data now. The four oldest moved on to
# training data (knowledge/training/cases/): the thresholds are chosen on cases the models did not learn from.
DEV_CASES = ["evals/cases/dev.jsonl", "evals/cases/holdout.jsonl", "evals/cases/blind5.jsonl",
             "evals/cases/blind6.jsonl", "evals/cases/blind7.jsonl"]


def cmd_tune(args: argparse.Namespace) -> int:
    from assistant.build import build_engine
    from evals.tune import tune

    settings = Settings()
    cases = [case for path in args.cases for case in read_cases(Path(path)).cases]
    chosen = tune(build_engine(settings), cases, args.cases, settings.knowledge_dir / "training" / "thresholds.yaml")
    print(chosen)
    return 0


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m evals")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a case file and write results")
    run.add_argument("--cases", required=True)
    run.add_argument("--out", required=True)
    report = commands.add_parser("report", help="write one self-contained HTML page from a results file")
    report.add_argument("results")
    report.add_argument("--compare", help="another results file to diff against")
    report.add_argument("--html", default="report.html")
    baselines = commands.add_parser("baselines", help="compare with dense-only, BM25-only and LangChain RAG")
    baselines.add_argument("--cases", required=True)
    baselines.add_argument("--out", help="also write the Markdown table here")
    tune = commands.add_parser("tune", help="choose the classifiers' thresholds on the dev cases")
    tune.add_argument("--cases", nargs="+", default=DEV_CASES)
    args = parser.parse_args(argv)
    commands_by_name = {"run": cmd_run, "report": cmd_report, "baselines": cmd_baselines, "tune": cmd_tune}
    try:
        return commands_by_name[args.command](args)
    except DataFileError as error:
        print(f"refused: {first_line(error)}", file=sys.stderr)
        return START_REFUSED_EXIT_CODE


if __name__ == "__main__":
    raise SystemExit(main())
