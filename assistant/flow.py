"""The assistant of the design: one answer path for the web page, the API, the widget and the evaluations.

    assistant = build_assistant(settings)           # assistant.build: the one place that wires things
    conv = assistant.start(widget_hospital=None)
    reply = assistant.reply(conv, "user text")

A turn reads the message once (`Message`), then runs safety -> understand -> dialogue -> match ->
respond. `answer` runs it; `reply` is its `Reply` and `stream` yields that reply's text in pieces and then
the whole `Reply`, so all three share one path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from assistant.compose.templates import Composer
from assistant.conversation import Conversation, Turn
from assistant.engine import Engine
from assistant.knowledge import KnowledgeBase
from assistant.reply import IntakeItem, Level, Recommendation, Reply
from assistant.settings import Settings
from assistant.turn.dialogue import Intent
from assistant.turn.message import Message
from assistant.turn.safety import Triage

# Questions about a department on the shortlist, answered from the knowledge (or honestly, where no source states
# a price or a wait): intent name -> the question the answer template words
ANSWERED_QUESTIONS = {"ask_cost": "cost", "ask_wait": "wait", "ask_donor": "donor", "ask_eligibility": "eligibility"}


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Answer:
    """One answered message (conversation.Turn is the history entry). The pieces a stream sends are cut from the
    reply only when a caller streams: a JSON answer never pays for the ~500 words of a long reply one by one."""

    reply: Reply

    @property
    def deltas(self) -> list[str]:
        return list(Composer.pieces(self.reply.text))


def reply_language(message: Message, asked_for: str | None) -> str:
    """The language of the message wins; one with no letters ("1", "?") is answered in the language the page or
    widget asked for."""
    return message.language or asked_for or "en"


class Assistant:
    def __init__(self, engine: Engine, composer: Composer, settings: Settings) -> None:
        self.engine = engine
        self.composer = composer
        self.settings = settings

    @property
    def kb(self) -> KnowledgeBase:
        return self.engine.kb

    def start(self, widget_hospital: str | None = None, language: str | None = None) -> Conversation:
        if widget_hospital is not None:
            self.kb.hospital(widget_hospital)  # raises UnknownHospital
        return Conversation(widget_hospital=widget_hospital, language=language)

    def reply(self, conv: Conversation, text: str) -> Reply:
        return self.answer(conv, text).reply

    def stream(self, conv: Conversation, text: str) -> Iterator[TextDelta | Reply]:
        """The answer's text in pieces, then the whole reply; the turn is in the history before the first piece."""
        answer = self.answer(conv, text)
        yield from (TextDelta(piece) for piece in answer.deltas)
        yield answer.reply

    def answer(self, conv: Conversation, text: str) -> Answer:
        started = time.perf_counter()
        text = text[: self.settings.max_message_chars]  # the API refuses longer text before it gets here
        if not text.strip():  # an empty message changes nothing, not even the history
            return Answer(self._reply(self.composer.speaking(conv.language or "en").render("empty.md.j2")))
        message = self.engine.read(text)
        composer = self.composer.speaking(reply_language(message, conv.language))
        phrased = composer.phrase(self._turn(conv, message, composer), composer.language)
        reply = phrased.reply
        conv.turns.append(Turn(user=text, reply=reply.text, triage=reply.triage, phrasing=phrased.phrasing,
                               latency_ms=(time.perf_counter() - started) * 1000))
        return Answer(reply)

    # --- one turn, step by step ------------------------------------------------------------------
    def _turn(self, conv: Conversation, message: Message, composer: Composer) -> Reply:
        engine = self.engine
        triage = engine.safety.triage(message)
        if engine.safety.is_an_animals_emergency(message, triage):
            return self._reply(composer.render("animal_emergency.md.j2"), out_of_scope=True)
        conv.note_triage(triage.level)
        if triage.is_emergency:
            conv.shortlist = []
            template = "crisis.md.j2" if triage.is_crisis else "emergency.md.j2"
            return self._reply(composer.render(template, family=triage.family or ""), triage="emergency")
        if engine.safety.is_injection(message):
            return self._reply(composer.render("decline_injection.md.j2"), out_of_scope=True)

        reading = engine.understander.read(message)
        if engine.safety.is_off_topic(message, has_medical_terms=bool(reading.terms), in_a_case=bool(conv.case.texts)):
            if message.language in composer.templates.others:  # not off topic: not understood, and it may be urgent
                return self._reply(composer.render("unread_language.md.j2"))
            return self._reply(composer.render("decline_off_topic.md.j2"), out_of_scope=True)
        intent = engine.dialogue.intent(message)

        if intent.name == "restart":
            conv.start_over()
            return self._reply(composer.render("restart.md.j2"))
        if intent.name == "in_shanghai" or (reading.location or "").lower().startswith("shanghai"):
            conv.in_shanghai = True
        if reading.has_new_facts or (intent.name is None and not conv.shortlist):
            another_patient = engine.dialogue.is_another_patient(conv.case, reading)
            if another_patient:
                conv.start_over()
            conv.case.add(reading)
            if another_patient or not (intent.name in ANSWERED_QUESTIONS and conv.shortlist):
                return self._recommend_or_ask(conv, message, triage, composer, new_case=another_patient)
        return self._follow_up(conv, intent, triage, composer)

    def _recommend_or_ask(self, conv: Conversation, message: Message, triage: Triage, composer: Composer,
                          new_case: bool = False) -> Reply:
        engine = self.engine
        notes = self._notes(conv, triage, new_case)
        question = engine.dialogue.question_to_ask(conv.case, engine.understander, conv.asked,
                                                   engine.matcher.routing_confidence(conv.case, message))
        if question is not None:
            conv.asked.append(question)
            text = engine.dialogue.question_text(question, composer.language)
            return self._reply(composer.render("question.md.j2", question=text, **notes),
                               triage=triage.level, question=text)
        lacking = self._specialty_the_widget_lacks(conv)
        if lacking is not None and conv.widget_hospital is not None:
            conv.shortlist = []
            hospital = self.kb.hospitals[conv.widget_hospital]
            return self._reply(
                composer.render("widget_lacks.md.j2", hospital=hospital.name, hospital_zh=hospital.name_zh,
                                specialty=self.kb.specialties[lacking].name,
                                specialty_zh=self.kb.language.specialty_names_zh[lacking], **notes),
                triage=triage.level,
            )
        conv.shortlist = engine.rank(conv.case, message, conv.widget_hospital)[: self.settings.top_k]
        conv.focus = conv.chosen = None
        text = composer.recommendations(conv.shortlist, conv.case, notes=notes, in_shanghai=conv.in_shanghai)
        return self._reply(text, triage=triage.level, recommendations=conv.shortlist)

    def _follow_up(self, conv: Conversation, intent: Intent, triage: Triage, composer: Composer) -> Reply:
        notes = self._notes(conv, triage)
        keep = {"triage": triage.level, "recommendations": conv.shortlist}
        if intent.name in ("greeting", "thanks"):
            return self._reply(composer.render(f"{intent.name}.md.j2", has_shortlist=bool(conv.shortlist)), **keep)
        if intent.name == "referral":
            conv.referral = composer.referral(conv.case, self._pointed(conv, intent), conv.widget_hospital)
            return self._reply(composer.referral_text(conv.referral), **keep)
        pointed = self._pointed(conv, intent)
        if pointed is None:
            return self._reply(composer.render("need_case.md.j2", **notes), triage=triage.level)
        if intent.name in ("detail", "children"):
            conv.focus = conv.shortlist.index(pointed)
            template = "detail.md.j2" if intent.name == "detail" else "children.md.j2"
            return self._reply(composer.department(template, pointed, notes), **keep)
        if intent.name in ANSWERED_QUESTIONS:
            conv.focus = conv.shortlist.index(pointed)
            items = composer.intake_items(self.engine.dialogue.intake_topics(intent), None,
                                               skip_visa=conv.in_shanghai)
            return self._reply(composer.answer(ANSWERED_QUESTIONS[intent.name], items, pointed, notes),
                               intake=items, **keep)
        if intent.name == "choose":
            conv.chosen = conv.focus = conv.shortlist.index(pointed)
        topics = self.engine.dialogue.intake_topics(intent) or (["pre_consultation", "first_visit"]
                                                                if intent.name == "in_shanghai" else [])
        if not topics:
            return self._reply(composer.render("need_case.md.j2", **notes), **keep)
        chosen = conv.shortlist[conv.chosen] if conv.chosen is not None else None
        items = composer.intake_items(topics, chosen, skip_visa=conv.in_shanghai)
        text = composer.intake_text(items, chosen, notes, in_shanghai=conv.in_shanghai,
                                         just_arrived=intent.name == "in_shanghai")
        return self._reply(text, intake=items, **keep)

    # --- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _pointed(conv: Conversation, intent: Intent) -> Recommendation | None:
        if not conv.shortlist:
            return None
        if intent.ordinal is not None and -len(conv.shortlist) <= intent.ordinal < len(conv.shortlist):
            return conv.shortlist[intent.ordinal]
        for index in (conv.focus, conv.chosen, 0):
            if index is not None:
                return conv.shortlist[index]
        return conv.shortlist[0]

    @staticmethod
    def _notes(conv: Conversation, triage: Triage, new_case: bool = False) -> dict[str, bool]:
        """Banners that sit above any reply: an emergency described earlier in the conversation (however the
        user asks to move on, "stop with the emergency stuff"), urgent care, a new patient's case started."""
        return {"earlier_emergency": conv.highest_triage == "emergency", "urgent": triage.level == "urgent",
                "new_case": new_case}

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
    def _reply(text: str, triage: Level = "routine", out_of_scope: bool = False,
               recommendations: list[Recommendation] | None = None, question: str | None = None,
               intake: list[IntakeItem] | None = None) -> Reply:
        return Reply(text=text, triage=triage, out_of_scope=out_of_scope, recommendations=recommendations or [],
                     question=question, intake=intake)
