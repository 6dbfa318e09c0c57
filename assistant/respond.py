"""Compose what the user reads from facts the engine already holds.

Templates live in prompts/ and render strictly: a missing variable is an error, never a blank.
Every hospital fact in a reply comes from a candidate's evidence, numbered against its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from assistant.knowledge import KnowledgeBase
from assistant.match import Candidate


@dataclass(frozen=True)
class NumberedSource:
    number: int
    source_id: str
    citation: str


class Templates:
    def __init__(self, prompts_dir: Path) -> None:
        self.environment = Environment(
            loader=FileSystemLoader(str(prompts_dir)),
            undefined=StrictUndefined,
            autoescape=False,  # markdown, not HTML; user text is never rendered into these templates raw
            keep_trailing_newline=True,
        )

    def render(self, name: str, **variables: object) -> str:
        return self.environment.get_template(name).render(**variables).strip()


def recommendation_cards(kb: KnowledgeBase, candidates: list[Candidate]) -> tuple[list[dict], list[NumberedSource]]:
    """Cards for the template plus the numbered source list their citations point to."""
    numbers: dict[str, int] = {}
    sources: list[NumberedSource] = []
    cards = []
    for position, candidate in enumerate(candidates, start=1):
        dept = kb.department(candidate.department_id)
        hospital = kb.hospitals[candidate.hospital_id]
        evidence = []
        for item in candidate.evidence:
            if item.source_id not in numbers:
                numbers[item.source_id] = len(numbers) + 1
                sources.append(NumberedSource(numbers[item.source_id], item.source_id,
                                              kb.sources[item.source_id].citation))
            evidence.append({"quote": item.quote, "number": numbers[item.source_id]})
        cards.append({"position": position, "department": dept.name, "hospital": hospital.name,
                      "why": candidate.why, "evidence": evidence})
    return cards, sources
