"""Decide the next move: ask the one question that changes the ranking, recommend, or follow up.

Questions are few by design: at most two before the first recommendation, never one whose
answer the user already gave, and only when the answer would change who we recommend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import RootModel

from assistant.case import ADULT_AGE, Case, Reading
from assistant.datafile import DataFileError, Strict, load_yaml
from assistant.text import normalize
from assistant.turn.message import Message
from assistant.turn.understand import Understander

MAX_QUESTIONS_BEFORE_RECOMMENDING = 2
AGE_AMBIGUITY_RATIO = 0.5  # a pediatric and an adult reading this close means age decides
SUBSTANTIVE_TOKENS = 8  # content words a message needs before retrieval alone can rank departments
CONFIDENT_ROUTING = 0.5  # the routing classifier's top probability above which a short message needs no question
QUESTION_KEYS = ("diagnosis", "organ", "age")  # the questions `question_to_ask` can choose
ANOTHER_GENERATION_YEARS = 15  # stated ages this far apart are two people: a baby and a grandfather
NAMED_PATIENTS = ("child", "adult", "adult_relative")  # a reading that names its patient, not the writer


class IntentFile(Strict):
    intents: dict[str, list[str]]
    ordinals: dict[str, int]
    intake_topics: dict[str, list[str]]
    generic_terms: list[str]


class QuestionsFile(RootModel[dict[str, str]]):
    """prompts/questions.yaml: question key -> the words we ask it with."""


@dataclass(frozen=True)
class Intent:
    name: str | None = None
    ordinal: int | None = None  # which recommendation the user points at, 0-based; -1 is the last


class Dialogue:
    def __init__(self, intents_path: Path, questions_path: Path) -> None:
        self.config = load_yaml(intents_path, IntentFile)
        # the English words, and the same questions in each language with a folder beside them (prompts/zh/)
        files = {"en": questions_path, **{translated.parent.name: translated for translated
                                          in sorted(questions_path.parent.glob(f"*/{questions_path.name}"))}}
        self.questions: dict[str, dict[str, str]] = {}
        for language, path in files.items():
            self.questions[language] = load_yaml(path, QuestionsFile).root
            for key in QUESTION_KEYS:
                if key not in self.questions[language]:
                    raise DataFileError(f"{path}: field '{key}': missing; the dialogue asks this question")
        self.patterns: dict[str, list[re.Pattern[str]]] = {}
        for name, patterns in self.config.intents.items():
            for i, pattern in enumerate(patterns):
                try:
                    self.patterns.setdefault(name, []).append(re.compile(pattern))
                except re.error as error:
                    raise DataFileError(f"{intents_path}: field 'intents.{name}.{i}': bad pattern: {error}") from None
        ordinal_words = sorted(self.config.ordinals, key=len, reverse=True)
        alternatives = "|".join(map(re.escape, ordinal_words))
        self.ordinal_pattern = re.compile(rf"(?<![a-z0-9])({alternatives})(?![a-z0-9])")
        self.generic_terms = {normalize(term) for term in self.config.generic_terms}

    def intent(self, message: Message) -> Intent:
        normalized = message.normalized
        for name, patterns in self.patterns.items():
            if any(pattern.search(normalized) for pattern in patterns):
                return Intent(name, self.ordinal(normalized))
        return Intent(None, None)

    def ordinal(self, normalized: str) -> int | None:
        found = self.ordinal_pattern.search(re.sub(r"#", "", normalized))
        return self.config.ordinals[found.group(1)] if found else None

    def intake_topics(self, intent: Intent) -> list[str]:
        return self.config.intake_topics.get(intent.name or "", [])

    @staticmethod
    def is_another_patient(case: Case, reading: Reading) -> bool:
        """A message that names a patient of another age or life stage, with a condition of their own, after a
        case about someone: "my dad is 62, he has myeloma" after a baby's biliary atresia starts a new case
        instead of asking pediatric hematology for a grandfather. A follow-up about the same patient ("she is
        jaundiced again", "I'm her mother, can I be the donor?") names no one new and stays in the case."""
        if not case.terms or not reading.terms or reading.who not in NAMED_PATIENTS:
            return False
        new_age, old_age = reading.stated_age, case.age_years
        if new_age is not None and old_age is not None and not case.age_assumed \
                and abs(new_age - old_age) >= ANOTHER_GENERATION_YEARS:
            return True
        new_is_child = new_age < ADULT_AGE if new_age is not None else reading.who == "child"
        return case.is_child is not None and case.is_child != new_is_child

    def question_to_ask(self, case: Case, understander: Understander, asked: list[str],
                        routing_confidence: float = 0.0) -> str | None:
        """The key of the question whose answer changes the ranking most, or None to recommend now.

        `routing_confidence` is the routing classifier's top probability: a short message in words the vocabulary
        does not list ("Waldenström's, second opinion") is not vague when the classifier is sure of it."""
        if len(asked) >= MAX_QUESTIONS_BEFORE_RECOMMENDING:
            return None
        terms = [normalize(term) for term in case.terms]
        if not terms:
            # a long story without a known term still ranks well by retrieval; a short vague one cannot
            vague = case.content_tokens < SUBSTANTIVE_TOKENS and routing_confidence < CONFIDENT_ROUTING
            return "diagnosis" if vague and "diagnosis" not in asked else None
        if all(term in self.generic_terms for term in terms) and "organ" not in asked:
            return "organ"
        if case.is_child is None and "age" not in asked and self._age_changes_ranking(case, understander):
            return "age"
        return None

    @staticmethod
    def _age_changes_ranking(case: Case, understander: Understander) -> bool:
        scores = case.raw_scores()
        pediatric = max((w for c, w in scores.items() if c in understander.pediatric_codes), default=0.0)
        adult = max((w for c, w in scores.items() if c not in understander.pediatric_codes), default=0.0)
        if not pediatric or not adult:
            return False
        return min(pediatric, adult) / max(pediatric, adult) >= AGE_AMBIGUITY_RATIO

    def question_text(self, key: str, language: str = "en") -> str:
        return self.questions.get(language, self.questions["en"])[key]
