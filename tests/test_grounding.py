"""Every hospital fact in a reply is traceable to its evidence, over all replies to the dev cases.

A cited line ("... [3]") must be one of: a recommendation's evidence quote, an intake step, or a
sourced sentence of a shortlisted department (the detail view). A hospital named in a reply must
be one the reply recommends (or the widget's own hospital).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.build import build_assistant
from assistant.flow import Assistant
from evals.cases import read_cases

DEV = Path(__file__).parent.parent / "evals" / "cases" / "dev.jsonl"
CITED_LINE = re.compile(r"^(?:[-\d.]+\s+)?(?:\*\*[^*]+\*\*:\s*)?(.+?)((?:\s\[\d+\])+)\s*$")


@pytest.fixture(scope="module")
def assistant(engine) -> Assistant:
    return build_assistant(engine=engine)


def allowed_facts(assistant: Assistant, reply) -> set[str]:
    facts = {item.quote for rec in reply.recommendations for item in rec.evidence}
    facts |= {item.text for item in reply.intake or []}
    for rec in reply.recommendations:
        dept = assistant.kb.department(rec.department_id)
        hospital = assistant.kb.hospitals[rec.hospital_id]
        facts |= {dept.summary} | {claim.text for claim in dept.claims()}
        facts |= {claim.text for claim in hospital.international_service}
    return facts


def test_every_cited_fact_in_every_dev_reply_comes_from_its_evidence(assistant):
    cases = read_cases(DEV).cases
    assert len(cases) >= 300
    hospital_names = {h.id: [h.name, h.name_zh] for h in assistant.kb.hospitals.values()}
    problems = []
    replies = 0
    for case in cases:
        conv = assistant.start(widget_hospital=case.widget)
        for turn in case.turns:
            reply = assistant.reply(conv, turn)
            replies += 1
            facts = allowed_facts(assistant, reply)
            for line in reply.text.splitlines():
                found = CITED_LINE.match(line.strip())
                if found and found.group(1).strip() not in facts and not line.startswith("["):
                    problems.append(f"{case.id}: uncited fact: {line.strip()[:120]}")
            named = {hid for hid, names in hospital_names.items() if any(n and n in reply.text for n in names)}
            allowed = {rec.hospital_id for rec in reply.recommendations} | {case.widget} - {None}
            if named - allowed:
                problems.append(f"{case.id}: names hospitals {sorted(named - allowed)} it does not recommend")
    print(f"\ngrounding: {replies} replies checked, {len(problems)} problems")
    assert problems == [], "\n".join(problems[:30])
