"""Compose what the user reads from facts the engine already holds.

Templates live in prompts/ and render strictly: a missing variable is an error, never a blank.
Every hospital fact in a reply comes from a recommendation's evidence or an intake guide, each
numbered against its source. User text is never put into a template except in the referral
summary, where it is escaped so that it shows as text, never as markup.
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from assistant.case import Case, age_in_words
from assistant.knowledge import KnowledgeBase
from assistant.reply import IntakeItem, Recommendation, ReferralSummary, Reply
from assistant.turn.language import OtherLanguage
from assistant.turn.safety import EmergencyNumbers

PIECE = re.compile(r"\S+\s*|\s+")
INTAKE_ORDER = ("records", "translation", "imaging", "pre_consultation", "first_visit", "visa", "payment",
                "insurance", "data_protection", "donation")
REFERRAL_TEXT_CHARS = 12_000  # what the user wrote, in a referral: three long messages' worth
CUT_TEXT_MIN_CHARS = 200
TEAM_QUESTIONS = (
    "Is this case suitable for evaluation by your department, and which records do you need first?",
    "Can the first assessment be done by online consultation before travel?",
    "What would the first evaluation visit involve, and how long should we plan to stay?",
)


@dataclass(frozen=True)
class NumberedSource:
    number: int
    source_id: str
    citation: str
    url: str | None


class Templates:
    def __init__(self, prompts_dir: Path, numbers: EmergencyNumbers, others: dict[str, OtherLanguage]) -> None:
        self.numbers = numbers
        self.others = others  # prompts/languages.yaml: what a model may write in besides English and Chinese
        self.environment = Environment(
            loader=FileSystemLoader(str(prompts_dir)),
            undefined=StrictUndefined,
            autoescape=False,  # markdown, not HTML; user text only reaches templates escaped
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.globals["emergency_numbers"] = numbers  # every template words them the same way
        self.names = frozenset(self.environment.list_templates())

    def render(self, name: str, language: str = "en", **variables: object) -> str:
        """The template in the reader's language where one is written (prompts/zh/), else the English one."""
        localized = f"{language}/{name}"
        if language != "en" and localized in self.names:
            name = localized
        text = self.environment.get_template(name).render(**variables)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


class Citations:
    """Numbers sources in the order a reply first cites them."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.numbers: dict[str, int] = {}
        self.sources: list[NumberedSource] = []

    def number(self, source_id: str) -> int:
        if source_id not in self.numbers:
            source = self.kb.sources[source_id]
            self.numbers[source_id] = len(self.numbers) + 1
            self.sources.append(NumberedSource(self.numbers[source_id], source_id, source.citation, source.url))
        return self.numbers[source_id]


@dataclass(frozen=True)
class Phrased:
    """A reply as the user will see it, and who phrased it: kept with the turn, never on the composer."""

    reply: Reply
    phrasing: str  # "template" | "model" | why the model's answer was not used ("timeout", "guard: ...")


class Composer:
    """The template composer: the default, and the fallback whenever a language model's answer fails."""

    multilingual = False
    language = "en"  # the language this composer writes in: `speaking` gives one per turn

    def __init__(self, templates: Templates, kb: KnowledgeBase) -> None:
        self.templates = templates
        self.kb = kb

    def speaking(self, language: str) -> Self:
        """This composer writing in `language`, for one turn: the shared one is never changed, so concurrent
        conversations in two languages cannot swap replies."""
        if language == self.language:
            return self
        view = copy.copy(self)
        view.language = language
        return view

    def render(self, name: str, **variables: object) -> str:
        return self.templates.render(name, self.language, **variables)

    def phrase(self, reply: Reply, language: str) -> Phrased:
        """The template text is final here; a language model composer rephrases it."""
        return Phrased(self.in_english_for(reply, language), "template")

    def in_english_for(self, reply: Reply, language: str) -> Reply:
        """A reader of another language gets the English reply under one line in their own language that says so,
        and says to call for help in an emergency: their message may hold danger signs we could not read."""
        other = self.templates.others.get(language)
        return reply if other is None else reply.model_copy(update={"text": f"_{other.note}_\n\n{reply.text}"})

    @staticmethod
    def pieces(text: str) -> Iterator[str]:
        """Words with their trailing space: what streaming sends, joined back exactly into the text."""
        yield from PIECE.findall(text)

    # --- recommendations -----------------------------------------------------------------------
    def card(self, position: int, rec: Recommendation, citations: Citations, detailed: bool = False,
             case: Case | None = None) -> dict:
        dept = self.kb.department(rec.department_id)
        hospital = self.kb.hospitals[rec.hospital_id]
        evidence = [] if detailed else [{"quote": e.quote, "number": citations.number(e.source_id)}
                                        for e in rec.evidence]
        card = {
            "position": position,
            "department": dept.name,
            "department_zh": dept.name_zh or "",
            "hospital": hospital.name,
            "hospital_zh": hospital.name_zh,
            "why": rec.why,
            "specialty_zh": self.kb.language.specialty_names_zh[rec.specialties[0]],
            "matched": case.terms_for(rec.specialties[0])[:3] if case else [],
            "evidence": evidence,
            "audience": dept.audience,
        }
        if detailed:
            card["summary"] = dept.summary
            card["summary_number"] = citations.number(dept.sources[0])
            card["claims"] = [{"quote": c.text, "number": citations.number(c.sources[0])} for c in dept.claims()]
            card["international"] = [
                {"quote": c.text, "number": citations.number(c.sources[0])} for c in hospital.international_service
            ]
            card["conditions"] = ", ".join(dept.conditions)
        return card

    def recommendations(self, shortlist: list[Recommendation], case: Case, notes: dict[str, bool],
                        in_shanghai: bool) -> str:
        citations = Citations(self.kb)
        cards = [self.card(i, rec, citations, case=case) for i, rec in enumerate(shortlist, start=1)]
        return self.render("recommendations.md.j2", cards=cards, sources=citations.sources,
                           in_shanghai=in_shanghai, **notes)

    def department(self, template: str, rec: Recommendation | None, notes: dict[str, bool]) -> str:
        citations = Citations(self.kb)
        card = self.card(1, rec, citations, detailed=True)
        return self.render(template, card=card, sources=citations.sources, **notes)

    # --- intake ---------------------------------------------------------------------------------
    def intake_items(self, topics: list[str], chosen: Recommendation | None, skip_visa: bool) -> list[IntakeItem]:
        items = []
        for topic in INTAKE_ORDER:
            if topic not in topics or topic not in self.kb.intake or (skip_visa and topic == "visa"):
                continue
            guide = self.kb.intake[topic]
            items.extend(IntakeItem(topic=topic, title=step.title, text=step.text, sources=step.sources)
                         for step in guide.steps)
        if chosen is not None:
            dept = self.kb.department(chosen.department_id)
            items.extend(IntakeItem(topic="department", title=dept.name, text=note.text, sources=note.sources)
                         for note in dept.intake_notes)
        return items

    def intake_text(self, items: list[IntakeItem], chosen: Recommendation | None, notes: dict[str, bool],
                    in_shanghai: bool, just_arrived: bool) -> str:
        citations = Citations(self.kb)
        steps = self._steps(items, citations)
        department = department_zh = None
        if chosen is not None:
            dept, hospital = self.kb.department(chosen.department_id), self.kb.hospitals[chosen.hospital_id]
            department = f"{dept.name}, {hospital.name}"
            department_zh = f"{dept.chinese_name}，{hospital.name_zh}"
        return self.render("intake.md.j2", steps=steps, department=department, department_zh=department_zh,
                           sources=citations.sources, in_shanghai=in_shanghai, just_arrived=just_arrived, **notes)

    def answer(self, question: str, items: list[IntakeItem], about: Recommendation, notes: dict[str, bool]) -> str:
        """A question about one department on the shortlist: what the sources say, and for a price or a wait,
        which no source states, who gives one and when."""
        citations = Citations(self.kb)
        dept, hospital = self.kb.department(about.department_id), self.kb.hospitals[about.hospital_id]
        international = [{"quote": c.text, "number": citations.number(c.sources[0])}
                         for c in hospital.international_service] if question == "eligibility" else []
        research = [{"name": p.name, "number": citations.number(p.sources[0])}
                    for p in dept.programmes if p.status == "research"]
        return self.render("answer.md.j2", question=question, department=dept.name, hospital=hospital.name,
                           department_zh=dept.chinese_name, hospital_zh=hospital.name_zh,
                           international=international, research=research, steps=self._steps(items, citations),
                           sources=citations.sources, **notes)

    @staticmethod
    def _steps(items: list[IntakeItem], citations: Citations) -> list[dict]:
        return [{"title": item.title, "text": item.text, "topic": item.topic,
                 "numbers": [citations.number(s) for s in item.sources]} for item in items]

    # --- referral -------------------------------------------------------------------------------
    def referral(self, case: Case, pointed: Recommendation | None, widget_hospital: str | None) -> ReferralSummary:
        age = None if case.age_years is None or case.age_assumed else case.age_years
        who = case.who or ("child" if age is not None and case.is_child else None)  # "our 8 month old": a child
        patient: dict[str, str | float | None] = {"who": who, "age_years": age,
                                                  "age": age_in_words(age) if age is not None else None,
                                                  "location": case.location}
        return ReferralSummary(
            patient=patient,
            what_they_wrote=within_budget(case.texts, REFERRAL_TEXT_CHARS),
            conditions_mentioned=[t for t in dict.fromkeys(case.terms)
                                  if t not in {*case.treatments, *case.history, *case.tests}],
            treatments_mentioned=case.treatments,
            history_mentioned=case.history,
            tests_mentioned=case.tests,
            goals=sorted(case.goals),
            hospital_id=pointed.hospital_id if pointed else widget_hospital,
            department_id=pointed.department_id if pointed else None,
            questions_for_the_team=list(TEAM_QUESTIONS),
        )

    def referral_text(self, summary: ReferralSummary) -> str:
        dept = self.kb.department(summary.department_id) if summary.department_id else None
        hospital = self.kb.hospitals[summary.hospital_id] if summary.hospital_id else None
        return self.render(
            "referral.md.j2",
            summary=summary,
            wrote=[escape_markdown(text) for text in summary.what_they_wrote],
            department=dept.name if dept else None,
            hospital=hospital.name if hospital else None,
            department_zh=dept.chinese_name if dept else None,
            hospital_zh=hospital.name_zh if hospital else None,
        )


def within_budget(texts: list[str], budget: int) -> list[str]:
    """The user's messages, first ones first, up to `budget` characters in all: a referral a team can read,
    never a conversation's whole size. What is cut is said."""
    kept: list[str] = []
    used = 0
    for number, text in enumerate(texts):
        if used + len(text) > budget:
            room = budget - used
            if room > CUT_TEXT_MIN_CHARS:
                kept.append(text[:room].rstrip() + " [...]")
            kept.append(f"({len(texts) - number} message(s) shortened or left out here; the patient can send "
                        "them on request.)")
            break
        kept.append(text)
        used += len(text)
    return kept


def escape_markdown(text: str) -> str:
    """User text shown back as plain text: HTML escaped and markdown control characters neutralised.

    Quotes stay as typed: the text never lands in an attribute, and "&#x27;" would have its "#"
    escaped below and show literally."""
    escaped = html.escape(text, quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|>~])", r"\\\1", escaped).replace("\n", " ")
