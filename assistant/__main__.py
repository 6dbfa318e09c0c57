"""Command line: `python -m assistant validate | index | match "text" | settings`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from assistant.knowledge import (
    KnowledgeError,
    coverage_exceptions,
    coverage_problems,
    load_knowledge,
    unsourced_sensitive_text,
)
from assistant.settings import PROJECT_ROOT, Settings, set_offline_environment


def cmd_validate(settings: Settings) -> int:
    try:
        kb = load_knowledge(settings.knowledge_dir, settings.shared_dir)
    except KnowledgeError as error:
        print(f"invalid knowledge:\n{error}", file=sys.stderr)
        return 1
    exceptions = coverage_exceptions(settings.knowledge_dir)
    problems = coverage_problems(kb, exceptions) + unsourced_sensitive_text(kb)
    for code, reason in exceptions.items():
        print(f"note: '{code}' is below the two-hospital rule: {' '.join(reason.split())}")
    claims = sum(len(d.claims()) + len(d.rankings) for d in kb.departments.values())
    claims += sum(len(h.about) + len(h.international_service) for h in kb.hospitals.values())
    print(f"hospitals {len(kb.hospitals)}, departments {len(kb.departments)}, claims {claims}, "
          f"sources {len(kb.sources)}, intake guides {len(kb.intake)}, vocabulary entries {len(kb.vocabulary)}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_index(settings: Settings) -> int:
    from assistant.engine import Engine

    engine = Engine.load(settings)
    stats = engine.index_stats
    print(f"{stats.collection}: {stats.chunks} chunks, {'reused' if stats.reused else 'built'} in {stats.seconds:.2f}s")
    return 0


def cmd_match(settings: Settings, text: str, hospital: str | None, as_json: bool) -> int:
    from assistant.engine import Engine

    engine = Engine.load(settings)
    result = engine.match(text, hospital)
    if as_json:
        print(json.dumps([candidate.__dict__ for candidate in result.candidates], default=lambda o: o.__dict__,
                         ensure_ascii=False, indent=2))
        return 0
    case = result.case
    print(f"terms: {', '.join(case.terms) or '-'} | child: {engine.understander.patient_is_child(case)} | "
          f"codes: {engine.understander.specialty_scores(case)} | {result.seconds * 1000:.1f} ms")
    for position, candidate in enumerate(result.candidates, start=1):
        signals = " ".join(f"{name}={value:.2f}" for name, value in candidate.signals.items())
        print(f"{position:2}. {candidate.department_id:45} {candidate.score:.3f}  [{signals}]")
        print(f"    why: {candidate.why}")
        for evidence in candidate.evidence:
            print(f"    - [{evidence.source_id}] {evidence.quote}")
    return 0


def cmd_settings() -> int:
    """Print the settings table that the README shows."""
    print("| variable | default | meaning |\n| --- | --- | --- |")
    for name, info in Settings.model_fields.items():
        env = f"CARE_{name.upper()}"
        if info.validation_alias is not None:
            env = " / ".join(str(choice) for choice in info.validation_alias.choices)
        default = info.get_default(call_default_factory=True)
        shown = str(default).replace(str(PROJECT_ROOT), ".").replace(str(PROJECT_ROOT.parent), "..")
        print(f"| `{env}` | `{shown}` | {info.description or ''} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    set_offline_environment()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m assistant")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("validate", help="check the knowledge base and exit non-zero on a problem")
    commands.add_parser("index", help="build the index, or reuse it when the knowledge is unchanged")
    match = commands.add_parser("match", help="rank departments for one message")
    match.add_argument("text")
    match.add_argument("--hospital", help="scope to one hospital id, as the widget does")
    match.add_argument("--json", action="store_true")
    commands.add_parser("settings", help="print the settings table for the README")
    args = parser.parse_args(argv)

    if args.command == "settings":
        return cmd_settings()
    settings = Settings()
    started = time.perf_counter()
    if args.command == "validate":
        return cmd_validate(settings)
    if args.command == "index":
        code = cmd_index(settings)
        print(f"total {time.perf_counter() - started:.1f}s")
        return code
    return cmd_match(settings, args.text, args.hospital, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
