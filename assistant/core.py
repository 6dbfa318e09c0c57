"""The assistant of the design: one answer path for the web page, the API, the widget and the evaluations.

    assistant = Assistant.from_settings()
    conv = assistant.start(widget_hospital=None)
    reply = assistant.reply(conv, "user text")

A turn runs safety -> understand -> dialogue -> match -> respond. `stream` yields the reply text
in pieces and then the whole `Reply`; `reply` is `stream` run to the end, so both share one path.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from assistant.dialogue import Dialogue, Intent
from assistant.engine import Engine
from assistant.knowledge import KnowledgeBase
from assistant.match import Candidate
from assistant.reply import EvidenceItem, IntakeItem, Recommendation, ReferralSummary, Reply
from assistant.respond import Composer
from assistant.safety import SEVERITY, SafetyChecker, Triage
from assistant.settings import Settings
from assistant.text import normalize
from assistant.understand import Case


@dataclass
class Turn:
    user: str
    reply: str
    triage: str
    latency_ms: float


@dataclass
class Conversation:
    """One person's conversation; all state lives here, never on the shared Assistant."""

    id: str
    widget_hospital: str | None = None
    language: str | None = None  # the language the page or widget asked for; the text's own wins
    case: Case = field(default_factory=Case)
    turns: list[Turn] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    shortlist: list[Recommendation] = field(default_factory=list)
    focus: int | None = None  # the recommendation the user last asked about
    chosen: int | None = None
    in_shanghai: bool = False
    language_note_given: bool = False
    highest_triage: str = "routine"
    referral: ReferralSummary | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


def recommendation_from(candidate: Candidate) -> Recommendation:
    return Recommendation(
        hospital_id=candidate.hospital_id,
        department_id=candidate.department_id,
        specialties=candidate.specialties,
        score=candidate.score,
        why=candidate.why,
        evidence=[EvidenceItem(source_id=e.source_id, quote=e.quote) for e in candidate.evidence],
    )


class Assistant:
    def __init__(self, engine: Engine, safety: SafetyChecker, dialogue: Dialogue, composer: Composer,
                 settings: Settings | None = None) -> None:
        self.engine = engine
        self.settings = settings or engine.settings
        self.safety = safety
        self.dialogue = dialogue
        self.composer = composer

    @classmethod
    def from_settings(cls, settings: Settings | None = None, engine: Engine | None = None) -> Assistant:
        settings = settings or (engine.settings if engine else Settings())
        engine = engine or Engine.load(settings)
        knowledge_dir = settings.knowledge_dir
        safety = SafetyChecker.from_dir(knowledge_dir / "safety", embed=engine.embeddings.encode)
        dialogue = Dialogue(knowledge_dir / "dialogue" / "intents.yaml", settings.prompts_dir / "questions.yaml")
        composer = Composer.from_settings(settings, engine.kb)
        return cls(engine, safety, dialogue, composer, settings)

    @property
    def kb(self) -> KnowledgeBase:
        return self.engine.kb

    def start(self, widget_hospital: str | None = None, language: str | None = None) -> Conversation:
        if widget_hospital is not None and widget_hospital not in self.kb.hospitals:
            raise ValueError(f"unknown hospital id '{widget_hospital}'")
        return Conversation(id=uuid.uuid4().hex, widget_hospital=widget_hospital, language=language)

    def reply(self, conv: Conversation, text: str) -> Reply:
        final = None
        for event in self.stream(conv, text):
            if isinstance(event, Reply):
                final = event
        assert final is not None
        return final

    def stream(self, conv: Conversation, text: str) -> Iterator[TextDelta | Reply]:
        started = time.perf_counter()
        reply = self._turn(conv, text)
        reply = self.composer.phrase(reply, conv, text)
        for piece in self.composer.pieces(reply.text):
            yield TextDelta(piece)
        if text.strip():
            conv.turns.append(Turn(text, reply.text, reply.triage, (time.perf_counter() - started) * 1000))
        yield reply

    # --- one turn, step by step ------------------------------------------------------------------
    def _turn(self, conv: Conversation, text: str) -> Reply:
        text = text[: self.settings.max_message_chars]  # the API refuses longer text before it gets here
        if not text.strip():
            return self._reply(self.composer.render("empty.md.j2"))

        vector = np.asarray(self.engine.embed(normalize(text)))
        triage = self.safety.triage(text, vector)
        if SEVERITY[triage.level] > SEVERITY[conv.highest_triage]:
            conv.highest_triage = triage.level
        if triage.is_emergency:
            conv.shortlist = []
            template = "crisis.md.j2" if triage.is_crisis else "emergency.md.j2"
            return self._reply(self.composer.render(template, family=triage.family or ""), triage="emergency")
        if self.safety.is_injection(text):
            return self._reply(self.composer.render("decline_injection.md.j2"), out_of_scope=True)

        update = self.engine.understander.update(Case(), text)
        if self.safety.is_off_topic(text, has_medical_terms=bool(update.terms), vector=vector):
            return self._reply(self.composer.render("decline_off_topic.md.j2"), out_of_scope=True)
        intent = self.dialogue.intent(text)
        new_facts = bool(update.terms) or update.age_years is not None or update.who not in (None, "self")

        if intent.name == "restart":
            conv.case, conv.asked, conv.shortlist = Case(), [], []
            conv.focus = conv.chosen = None
            conv.referral = None
            return self._reply(self.composer.render("restart.md.j2"))
        if intent.name == "in_shanghai" or (update.location or "").lower().startswith("shanghai"):
            conv.in_shanghai = True
        if new_facts or (intent.name is None and not conv.shortlist):
            self.engine.understander.update(conv.case, text)
            return self._recommend_or_ask(conv, triage)
        return self._follow_up(conv, intent, triage)

    def _recommend_or_ask(self, conv: Conversation, triage: Triage) -> Reply:
        question = self.dialogue.question_to_ask(conv.case, self.engine.understander, conv.asked)
        if question is not None:
            conv.asked.append(question)
            text = self.dialogue.question_text(question)
            return self._reply(self.composer.render("question.md.j2", question=text, **self._notes(conv, triage)),
                               triage=triage.level, question=text)
        lacking = self._specialty_the_widget_lacks(conv)
        if lacking is not None:
            conv.shortlist = []
            hospital = self.kb.hospitals[conv.widget_hospital]
            return self._reply(
                self.composer.render("widget_lacks.md.j2", hospital=hospital.name,
                                     specialty=self.kb.specialties[lacking].name, **self._notes(conv, triage)),
                triage=triage.level,
            )
        top = self.engine.rank(conv.case, conv.widget_hospital)[: self.settings.top_k]
        conv.shortlist = [recommendation_from(c) for c in top]
        conv.focus = conv.chosen = None
        text = self.composer.recommendations(conv.shortlist, notes=self._notes(conv, triage),
                                             in_shanghai=conv.in_shanghai)
        return self._reply(text, triage=triage.level, recommendations=conv.shortlist)

    def _follow_up(self, conv: Conversation, intent: Intent, triage: Triage) -> Reply:
        notes = self._notes(conv, triage)
        keep = {"triage": triage.level, "recommendations": conv.shortlist}
        if intent.name in ("greeting", "thanks"):
            return self._reply(self.composer.render(f"{intent.name}.md.j2", has_shortlist=bool(conv.shortlist)), **keep)
        if intent.name == "referral":
            conv.referral = self.composer.referral(conv.case, self._pointed(conv, intent), conv.widget_hospital)
            return self._reply(self.composer.referral_text(conv.referral), **keep)
        if not conv.shortlist:
            return self._reply(self.composer.render("need_case.md.j2", **notes), triage=triage.level)
        pointed = self._pointed(conv, intent)
        if intent.name in ("detail", "children"):
            conv.focus = conv.shortlist.index(pointed)
            template = "detail.md.j2" if intent.name == "detail" else "children.md.j2"
            return self._reply(self.composer.department(template, pointed, notes), **keep)
        if intent.name == "choose":
            conv.chosen = conv.focus = conv.shortlist.index(pointed)
        topics = self.dialogue.intake_topics(intent) or (["pre_consultation", "first_visit"]
                                                         if intent.name == "in_shanghai" else [])
        if not topics:
            return self._reply(self.composer.render("need_case.md.j2", **notes), **keep)
        chosen = conv.shortlist[conv.chosen] if conv.chosen is not None else None
        items = self.composer.intake_items(topics, chosen, skip_visa=conv.in_shanghai)
        text = self.composer.intake_text(items, chosen, notes, in_shanghai=conv.in_shanghai,
                                         just_arrived=intent.name == "in_shanghai")
        return self._reply(text, intake=items, **keep)

    # --- helpers ---------------------------------------------------------------------------------
    def _pointed(self, conv: Conversation, intent: Intent) -> Recommendation | None:
        if not conv.shortlist:
            return None
        if intent.ordinal is not None and -len(conv.shortlist) <= intent.ordinal < len(conv.shortlist):
            return conv.shortlist[intent.ordinal]
        for index in (conv.focus, conv.chosen, 0):
            if index is not None:
                return conv.shortlist[index]
        return conv.shortlist[0]

    def _notes(self, conv: Conversation, triage: Triage) -> dict[str, bool]:
        """Banners that sit above any reply: urgent care first, then the language note (once)."""
        wants_chinese = "zh" in (conv.case.language, conv.language)
        language_note = wants_chinese and not conv.language_note_given and not self.composer.multilingual
        if language_note:
            conv.language_note_given = True
        return {"urgent": triage.level == "urgent", "language_note": language_note}

    def _specialty_the_widget_lacks(self, conv: Conversation) -> str | None:
        """The case's strongest specialty when the widget's hospital has no department for it."""
        if conv.widget_hospital is None:
            return None
        scores = self.engine.understander.specialty_scores(conv.case)
        if not scores:
            return None
        top = max(scores, key=scores.get)
        offered = {code for dept in self.kb.hospitals[conv.widget_hospital].departments for code in dept.specialties}
        return None if top in offered else top

    @staticmethod
    def _reply(text: str, triage: str = "routine", out_of_scope: bool = False,
               recommendations: list[Recommendation] | None = None, question: str | None = None,
               intake: list[IntakeItem] | None = None) -> Reply:
        return Reply(text=text, triage=triage, out_of_scope=out_of_scope, recommendations=recommendations or [],
                     question=question, intake=intake)


# --- persistence: a conversation as plain JSON, so any copy of the web app can continue it ----------

def conversation_to_dict(conv: Conversation) -> dict:
    case = conv.case
    return {
        "id": conv.id,
        "widget_hospital": conv.widget_hospital,
        "language": conv.language,
        "case": {"texts": case.texts, "hits": [vars(hit) for hit in case.hits], "who": case.who,
                 "age_years": case.age_years, "goals": sorted(case.goals), "language": case.language,
                 "location": case.location},
        "turns": [vars(turn) for turn in conv.turns],
        "asked": conv.asked,
        "shortlist": [rec.model_dump() for rec in conv.shortlist],
        "focus": conv.focus,
        "chosen": conv.chosen,
        "in_shanghai": conv.in_shanghai,
        "language_note_given": conv.language_note_given,
        "highest_triage": conv.highest_triage,
        "referral": conv.referral.model_dump() if conv.referral else None,
    }


def conversation_from_dict(data: dict) -> Conversation:
    from assistant.understand import TermHit

    case_data = data["case"]
    case = Case(texts=list(case_data["texts"]), hits=[TermHit(**hit) for hit in case_data["hits"]],
                who=case_data["who"], age_years=case_data["age_years"], goals=set(case_data["goals"]),
                language=case_data["language"], location=case_data.get("location"))
    return Conversation(
        id=data["id"], widget_hospital=data["widget_hospital"], language=data.get("language"), case=case,
        turns=[Turn(**turn) for turn in data["turns"]], asked=list(data["asked"]),
        shortlist=[Recommendation.model_validate(rec) for rec in data["shortlist"]],
        focus=data["focus"], chosen=data["chosen"], in_shanghai=data["in_shanghai"],
        language_note_given=data["language_note_given"], highest_triage=data["highest_triage"],
        referral=ReferralSummary.model_validate(data["referral"]) if data["referral"] else None,
    )
