"""What we know about the patient, built up over the turns of a conversation.

`Reading` is what understanding found in one message; `Case.add` folds it into the case, so a message
is understood once per turn whether or not it ends up changing the case.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pydantic import BaseModel, Field, model_validator

from assistant.text import letter_counts, normalize, search_tokens, share_of_chinese

ADULT_WRITERS = (None, "self", "adult")  # who, when "I'm 40" is the patient's own age
INFANT_AGE_YEARS = 0.5  # "baby", "newborn" with no age given


def age_in_words(years: float) -> str:
    """An age as a parent gives it: weeks under two months, months under a year ("8 months", never "age 0")."""
    if years < 2 / 12:
        weeks = max(1, round(years * 52))
        return f"{weeks} week{'s' if weeks != 1 else ''}"
    if years < 1:
        return f"{round(years * 12)} months"
    return f"{round(years, 1):g} years"
ADULT_AGE = 18


class TermHit(BaseModel):
    term: str
    codes: dict[str, float]
    kind: str
    negated: bool = False
    past: bool = False  # "after a transplant", "the Kasai failed": history, not what is asked for


def without_negated_terms(normalized: str, hits: list[TermHit]) -> str:
    """Lexical search must not find "diabetes" in "no diabetes"."""
    for hit in hits:
        if hit.negated:
            normalized = normalized.replace(normalize(hit.term), " ")
    return normalized


@dataclass(frozen=True)
class Reading:
    """One message, understood: its terms, who and how old the patient is, goals, place, language."""

    text: str
    hits: list[TermHit]
    who: str | None  # self | child | adult | adult_relative
    stated_age: float | None  # "my 6 week old son", "she is 4 years old"
    own_age: float | None  # the stated age, or the writer's own "I'm 40" when there is none
    infant: bool
    pregnancy: bool  # the message is about a pregnancy, wanted or under way
    child_only_by_a_baby_word: bool  # "our baby is not moving much": a child, unless a pregnancy says otherwise
    goals: set[str]
    location: str | None
    language: str
    search_text: str  # normalised, without the terms this message negated ("no diabetes")
    content_tokens: int  # words (and Chinese bigrams) that are not stopwords
    cjk_letters: int
    latin_letters: int

    @property
    def terms(self) -> list[str]:
        return [hit.term for hit in self.hits if not hit.negated]

    def age_for(self, who: str | None) -> float | None:
        """The writer's own age counts only when they write for themselves."""
        return self.own_age if who in ADULT_WRITERS else self.stated_age

    @property
    def has_new_facts(self) -> bool:
        """A term, an age or a patient other than the writer: the message adds to the case."""
        age = self.age_for(self.who)
        return bool(self.terms) or age is not None or self.infant or self.who not in (None, "self")


class Case(BaseModel):
    texts: list[str] = Field(default_factory=list)
    search_texts: list[str] = Field(default_factory=list)
    hits: list[TermHit] = Field(default_factory=list)
    who: str | None = None  # self | child | adult | adult_relative
    age_years: float | None = None
    age_assumed: bool = False  # "a baby" routes as an infant, but a summary never states an age nobody gave
    child_only_by_a_baby_word: bool = False  # the case's child is "our baby" so far, with no age and no "my son"
    goals: set[str] = Field(default_factory=set)
    language: str = "en"
    location: str | None = None  # where the patient is now, in their words
    content_tokens: int = 0
    cjk_letters: int = 0
    latin_letters: int = 0

    @model_validator(mode="before")
    @classmethod
    def _from_a_stored_case_of_an_older_version(cls, data: object) -> object:
        """Cases saved before search texts and letter counts were kept: derive them from the texts."""
        if isinstance(data, dict) and data.get("texts") and "search_texts" not in data:
            counts = [letter_counts(text) for text in data["texts"]]
            hits = [TermHit.model_validate(hit) for hit in data.get("hits", [])]
            data = {**data, "search_texts": [without_negated_terms(normalize(text), hits) for text in data["texts"]],
                    "content_tokens": sum(len(search_tokens(text)) for text in data["texts"]),
                    "cjk_letters": sum(c for c, _ in counts), "latin_letters": sum(n for _, n in counts)}
        return data

    def add(self, reading: Reading) -> None:
        """Later, clearer statements of age or who win over earlier ones."""
        self.texts.append(reading.text)
        self.search_texts.append(reading.search_text)
        self.hits.extend(reading.hits)
        if reading.pregnancy and self.child_only_by_a_baby_word:
            # "our baby is not moving much", then "I'm 34 weeks pregnant": that baby is unborn, not the patient
            self.who, self.age_years, self.age_assumed = None, None, False
        if reading.who in ("child", "adult") or self.who in (None, "self"):
            self.who = reading.who or self.who
        if reading.who == "child" or reading.infant or reading.pregnancy or reading.stated_age is not None:
            self.child_only_by_a_baby_word = reading.child_only_by_a_baby_word and not reading.pregnancy
        age = reading.age_for(self.who)
        if age is not None:
            self.age_years, self.age_assumed = age, False
        elif reading.infant and self.age_years is None:
            self.age_years, self.age_assumed = INFANT_AGE_YEARS, True
        self.goals |= reading.goals
        if reading.location:
            self.location = reading.location
        self.language = reading.language
        self.content_tokens += reading.content_tokens
        self.cjk_letters += reading.cjk_letters
        self.latin_letters += reading.latin_letters

    def terms_for(self, code: str | None) -> list[str]:
        """The case's own words for a specialty, as a card's reason names them: what the patient has now, or what
        is behind them when nothing current matched."""
        hits = [hit for hit in self.hits if not hit.negated and code in hit.codes]
        return list(dict.fromkeys(hit.term for hit in hits if not hit.past)) \
            or list(dict.fromkeys(hit.term for hit in hits))

    @property
    def search_text(self) -> str:
        """The words for retrieval: each message without the terms it negated."""
        return " ".join(self.search_texts)

    @property
    def chinese_share(self) -> float:
        """Share of the case's letters that are Chinese: the packaged model reads English only."""
        return share_of_chinese(self.cjk_letters, self.latin_letters)

    @property
    def treatments(self) -> list[str]:
        """Treatments and procedures the user named as current or wanted ("looking for CAR-T", "on tamoxifen")."""
        return self._named(("drug", "procedure"), past=False)

    @property
    def history(self) -> list[str]:
        """Treatments and procedures already behind the patient ("relapsed after a transplant", "Kasai failed")."""
        return self._named(("drug", "procedure"), past=True)

    @property
    def tests(self) -> list[str]:
        """Scans, biopsies and other tests the user named: what to send, not a treatment."""
        return list(dict.fromkeys(hit.term for hit in self.hits if not hit.negated and hit.kind == "test"))

    def _named(self, kinds: tuple[str, ...], past: bool) -> list[str]:
        named = (hit.term for hit in self.hits if not hit.negated and hit.kind in kinds and hit.past == past)
        return list(dict.fromkeys(named))

    @property
    def terms(self) -> list[str]:
        return [hit.term for hit in self.hits if not hit.negated]

    @property
    def is_child(self) -> bool | None:
        """True / False when the text tells us, None when it does not."""
        if self.age_years is not None:
            return self.age_years < ADULT_AGE
        if self.who == "child":
            return True
        if self.who in ("self", "adult", "adult_relative"):
            return False
        return None

    def raw_scores(self) -> dict[str, float]:
        scores: dict[str, float] = defaultdict(float)
        for hit in self.hits:
            if hit.negated:
                continue
            for code, weight in hit.codes.items():
                scores[code] += weight
        return dict(scores)
