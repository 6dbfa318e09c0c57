"""Emergency triage, scope and injection checks: the first step of every turn, deterministic.

Three readers, and the highest level any of them gives wins (a later one may raise a level, never lower it):
1. rules (knowledge/safety/red_flags.yaml), each family sourced in knowledge/safety/guidance.yaml. A rule
   fires when all of its terms appear in clauses that speak about now: a negated term ("no chest pain"), a
   clause about the past ("I had a stroke in 2019"), a hypothetical ("what if I get chest pain on the
   flight?") or a general question ("what is a heart attack?") does not count;
2. numbers: vital signs in those clauses against the guidance's thresholds (`assistant.turn.vitals`);
3. a classifier over the shared embedding (`assistant.learned`) on the whole message and on each sentence
   about now, trained on messages others wrote, for the words no rule lists. The packaged model reads
   English only, so a Chinese message is read by character n-grams instead (see `LearnedModels`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from assistant.datafile import DataFileError, Strict, load_yaml
from assistant.embedder import Embedder
from assistant.knowledge import Language, Source
from assistant.learned import LearnedModels, Thresholds
from assistant.recent import RECENT_TEXTS, Recent
from assistant.reply import SEVERITY, Level
from assistant.text import has_cjk, simplified
from assistant.turn.message import Message
from assistant.turn.vitals import AgeGroup, Threshold, VitalThresholds, read_vitals

CRISIS_FAMILIES = frozenset({"suicide", "self_harm", "harm_others", "self_harm_suicide", "mental_health_acute"})
# Clause ends: sentence marks (not a decimal point: "38.2"), "but", ", now" and "and now" ("a stent last year and
# now the same chest pain is back"), and a comma in Chinese, where one sentence runs on through commas ("以前有高血压"
# is past; "半小时前开始胸口..." is not).
CLAUSE_SPLIT = re.compile(
    r"(?<![0-9])\.|\.(?![0-9])|[!?;\n。！？；]+|\bbut\b|\bhowever\b|(,\s*|\band )now\b|但是|可是|不过"
    r"|(?<=[\u4e00-\u9fff]),|,(?=\s*[\u4e00-\u9fff])"
)
WORD_OR_COMMA = re.compile(r"[a-z]+|,")
STORY_SENTENCES = 3  # from this many sentences a message is a story, where an off-topic word can be background


class Rule(Strict):
    family: str
    level: Literal["emergency", "urgent"]
    all: list[str] = Field(min_length=1)


class ChineseRedFlags(Strict):
    """knowledge/safety/red_flags_zh.yaml: Chinese (simplified and traditional) patterns for the same families."""

    terms: dict[str, list[str]]  # more patterns for terms of red_flags.yaml
    new_terms: dict[str, list[str]]  # signs red_flags.yaml has no term for
    rules: list[Rule]


class Context(Strict):
    background: list[str]  # terms for who and the setting, read from any clause about the person
    past: list[str]
    hypothetical: list[str]
    chronic: list[str]
    acute: list[str]
    lasting_deficits: dict[str, list[str]]  # rule family -> the past events whose deficits last
    personal: list[str]
    question_about: list[str]
    question_if_asked: list[str]
    third_party_story: list[str]


class RedFlagFile(Strict):
    terms: dict[str, list[str]]
    rules: list[Rule]
    context: Context
    guidance: dict[str, str]  # rule family -> the guidance family (and so the sources) it follows


class Exemplar(Strict):
    text: str
    family: str


class ExemplarFile(Strict):
    emergency: list[Exemplar]
    calm: list[str]


class AnimalPatient(Strict):
    pet: list[str]
    vet: list[str]
    person: list[str]


class ScopeFile(Strict):
    injection: list[str]
    off_topic: list[str]
    not_about_care: list[str]  # an animal as the patient, or a study question: medical words, no patient of ours
    animal_patient: AnimalPatient
    margin: float
    crisis_guard: float
    in_scope_examples: list[str]
    off_topic_examples: list[str]


class PhoneNumber(Strict):
    number: str
    where: str
    name: str | None = None
    source: str | None = None  # a source id of knowledge/safety/guidance.yaml
    where_zh: str  # the place in Chinese, for the Chinese replies

    def __str__(self) -> str:
        return " ".join(part for part in (self.number, self.name, "in", self.where) if part)

    @property
    def in_chinese(self) -> str:
        return f"{self.where_zh} {self.number}"


class EmergencyNumbers(Strict):
    """knowledge/safety/emergency_numbers.yaml: the one place the numbers are written, in every form we show."""

    emergency: list[PhoneNumber] = Field(min_length=1)
    crisis_lines: list[PhoneNumber] = Field(min_length=1)
    crisis_directory: str

    @property
    def numbers(self) -> tuple[str, ...]:
        """What an emergency reply must still contain after a language model rephrased it."""
        return tuple(line.number for line in self.emergency)

    @property
    def full(self) -> str:
        """120 in mainland China, 112 in Europe, 911 in North America"""
        return ", ".join(str(line) for line in self.emergency)

    @property
    def short(self) -> str:
        """120 in mainland China, 112 or 911 elsewhere"""
        first, *others = self.emergency
        return f"{first}, {' or '.join(line.number for line in others)} elsewhere" if others else str(first)

    @property
    def crisis(self) -> str:
        lines = ", ".join(str(line) for line in self.crisis_lines)
        return f"{lines}; {self.crisis_directory} lists lines for other countries"

    @property
    def full_zh(self) -> str:
        """中国大陆 120，欧洲 112，北美 911"""
        return "，".join(line.in_chinese for line in self.emergency)

    @property
    def elsewhere_zh(self) -> str:
        """欧洲 112，北美 911: the numbers after mainland China's, for the Chinese replies"""
        return "，".join(line.in_chinese for line in self.emergency[1:])

    @property
    def crisis_elsewhere_zh(self) -> str:
        lines = "，".join(line.in_chinese for line in self.crisis_lines[1:])
        return f"{lines}；其他国家的热线见 {self.crisis_directory}"


class GuidanceFamily(Strict):
    id: str
    name: str
    level: Literal["emergency", "urgent"]
    sources: list[str] = Field(min_length=1)
    signs: list[str] = Field(min_length=1)
    signs_zh: list[str] = Field(min_length=1)
    urgent_signs: list[str] = []


class CrisisLine(Strict):
    number: str
    name: str
    hours: str
    source: str


class Guidance(Strict):
    """knowledge/safety/guidance.yaml: the published triage guidance every rule family and threshold comes from."""

    sources: list[Source] = Field(min_length=1)
    families: list[GuidanceFamily] = Field(min_length=1)
    vital_signs: list[Threshold] = Field(min_length=1)
    crisis_lines_china: list[CrisisLine] = Field(min_length=1)

    @property
    def thresholds(self) -> VitalThresholds:
        return VitalThresholds(vital_signs=self.vital_signs)


@dataclass(frozen=True)
class Triage:
    level: Level = "routine"
    family: str | None = None
    terms: tuple[str, ...] = ()
    via: str | None = None  # "rule" | "number" | "classifier"

    @property
    def is_emergency(self) -> bool:
        return self.level == "emergency"

    @property
    def is_crisis(self) -> bool:
        return self.family in CRISIS_FAMILIES


def with_chinese(rules: RedFlagFile, chinese: ChineseRedFlags, safety_dir: Path) -> RedFlagFile:
    """The English rule file with the Chinese file's patterns and rules added."""
    terms = {name: list(patterns) for name, patterns in rules.terms.items()}
    for name, patterns in chinese.terms.items():
        if name not in terms:
            raise DataFileError(f"{safety_dir / 'red_flags_zh.yaml'}: terms: '{name}' is not a term of red_flags.yaml")
        terms[name] += patterns
    for name, patterns in chinese.new_terms.items():
        if name in terms:
            raise DataFileError(f"{safety_dir / 'red_flags_zh.yaml'}: new_terms: '{name}' is already a term")
        terms[name] = list(patterns)
    return rules.model_copy(update={"terms": terms, "rules": [*rules.rules, *chinese.rules]})


def _compile(patterns: list[str]) -> list[re.Pattern[str]]:
    """Letters may not continue a match on either side: 'son' must not fire inside 'person'. Chinese patterns
    are read in simplified characters, as `normalize` writes every message."""
    return [re.compile(rf"(?<![a-z0-9])(?:{simplified(pattern)})(?![a-z0-9])") for pattern in patterns]


def _screen(patterns: list[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern that matches somewhere exactly when one of `patterns` does: a search tries every alternative at
    every position. (Its matches are not theirs, where two overlap: it only tells whether to look further.)"""
    return re.compile("|".join(f"(?:{pattern.pattern})" for pattern in patterns) or "(?!)")


def _any(patterns: list[re.Pattern[str]], text: str) -> bool:
    return any(pattern.search(text) for pattern in patterns)


@dataclass(frozen=True)
class Clause:
    text: str
    counts: bool  # about now: not the past, a chronic state, a hypothetical or a general question
    real: bool  # about the person at all (not a hypothetical, a question or someone else's story)
    over: bool = False  # about the person, but in the past and over ("last year she had a febrile seizure")


@dataclass
class SafetyChecker:
    """Rules, numbers and the classifier; the rules and numbers read files under knowledge/safety/."""

    rules_file: RedFlagFile
    exemplars: ExemplarFile
    numbers: EmergencyNumbers
    language: Language  # shared with understanding: what "no" negates, who is not the patient
    scope: ScopeFile
    guidance: Guidance
    embedder: Embedder | None = None  # None: the rules and numbers alone
    learned: LearnedModels | None = None  # None: no classifier (rules and numbers alone)
    thresholds: Thresholds | None = None
    terms: dict[str, list[re.Pattern[str]]] = field(default_factory=dict)
    background: frozenset[str] = frozenset()
    _exemplar_vectors: np.ndarray | None = None
    _in_scope_vectors: np.ndarray | None = None
    _off_topic_vectors: np.ndarray | None = None
    # what the rules read in texts and clauses seen lately: that reading depends on the text alone, and the same
    # words come back (quick replies, the sentences of a message read again for the classifier)
    _recent_clauses: Recent[str, tuple[Clause, ...]] = field(default_factory=lambda: Recent(RECENT_TEXTS), repr=False)
    _recent_terms: Recent[str, frozenset[str]] = field(default_factory=lambda: Recent(RECENT_TEXTS), repr=False)

    @classmethod
    def load(cls, safety_dir: Path, language: Language, embedder: Embedder | None = None,
             learned: LearnedModels | None = None, thresholds: Thresholds | None = None) -> SafetyChecker:
        checker = cls(
            rules_file=with_chinese(load_yaml(safety_dir / "red_flags.yaml", RedFlagFile),
                                    load_yaml(safety_dir / "red_flags_zh.yaml", ChineseRedFlags), safety_dir),
            exemplars=load_yaml(safety_dir / "exemplars.yaml", ExemplarFile),
            scope=load_yaml(safety_dir / "scope.yaml", ScopeFile),
            numbers=load_yaml(safety_dir / "emergency_numbers.yaml", EmergencyNumbers),
            guidance=load_yaml(safety_dir / "guidance.yaml", Guidance),
            language=language,
            embedder=embedder,
            learned=learned,
            thresholds=thresholds,
        )
        checker._compile_all(safety_dir)
        checker._check_sources(safety_dir)
        return checker

    def use_classifier(self, learned: LearnedModels, thresholds: Thresholds) -> None:
        """The classifier trains on the safety files' examples too, so it joins after they are loaded."""
        self.learned = learned
        self.thresholds = thresholds

    def _check_sources(self, safety_dir: Path) -> None:
        """Every rule follows a guidance family, every family and crisis line cites a source in the guidance."""
        families = {family.id: family for family in self.guidance.families}
        source_ids = {source.id for source in self.guidance.sources}
        for rule in self.rules_file.rules:
            if self.rules_file.guidance.get(rule.family) not in families:
                raise DataFileError(f"{safety_dir / 'red_flags.yaml'}: rule family '{rule.family}' names no family "
                                    "of guidance.yaml under `guidance`")
        cited = [(f"family '{family.id}'", source) for family in families.values() for source in family.sources]
        cited += [(f"crisis line {line.number}", line.source) for line in self.guidance.crisis_lines_china]
        cited += [(f"vital sign {threshold.measure}", threshold.source) for threshold in self.guidance.vital_signs]
        cited += [(f"crisis line {line.number}", line.source) for line in self.numbers.crisis_lines if line.source]
        for what, source in cited:
            if source not in source_ids:
                raise DataFileError(f"{safety_dir / 'guidance.yaml'}: {what} cites unknown source '{source}'")

    def _compile_all(self, safety_dir: Path) -> None:
        try:
            self.terms = {name: _compile(patterns) for name, patterns in self.rules_file.terms.items()}
            self._latin_terms = {name: [p for p in patterns if not has_cjk(p.pattern)]
                                 for name, patterns in self.terms.items()}
            self._screens = {name: _screen(patterns) for name, patterns in self.terms.items()}
            self._latin_screens = {name: _screen(patterns) for name, patterns in self._latin_terms.items()}
            context = self.rules_file.context
            self._past = _compile(context.past)
            self._hypothetical = _compile(context.hypothetical)
            self._chronic = _compile(context.chronic)
            self._acute = _compile(context.acute)
            self._lasting_deficits = {family: _compile(events) for family, events in context.lasting_deficits.items()}
            self._personal = _compile(context.personal)
            self._question = _compile(context.question_about)
            self._question_if_asked = _compile(context.question_if_asked)
            self._story = _compile(context.third_party_story)
            self._injection = _compile(self.scope.injection)
            self._off_topic = _compile(self.scope.off_topic)
            self._not_about_care = _compile(self.scope.not_about_care)
            animal = self.scope.animal_patient
            self._animal = (_compile(animal.pet), _compile(animal.vet), _compile(animal.person))
        except re.error as error:
            raise DataFileError(f"{safety_dir / 'red_flags.yaml'}: bad pattern: {error}") from error
        self.background = frozenset(context.background)
        for unknown in self.background - self.terms.keys():
            raise DataFileError(f"{safety_dir / 'red_flags.yaml'}: context.background names unknown term '{unknown}'")
        for rule in self.rules_file.rules:
            for term in rule.all:
                if term not in self.terms:
                    raise DataFileError(
                        f"{safety_dir / 'red_flags.yaml'}: rule '{rule.family}' uses unknown term '{term}'"
                    )
        if self.embedder is not None:
            self._exemplar_vectors = self.embedder.embed([e.text for e in self.exemplars.emergency])
            self._in_scope_vectors = self.embedder.embed(self.scope.in_scope_examples)
            self._off_topic_vectors = self.embedder.embed(self.scope.off_topic_examples)

    # --- reading a message --------------------------------------------------------------------
    def clauses(self, normalized: str) -> tuple[Clause, ...]:
        if (known := self._recent_clauses.get(normalized)) is None:
            known = tuple(self._split(normalized))
            self._recent_clauses.put(normalized, known)
        return known

    def _split(self, normalized: str) -> list[Clause]:
        clauses = []
        start = 0
        for end_mark in [*CLAUSE_SPLIT.finditer(normalized), None]:
            end = end_mark.start() if end_mark else len(normalized)
            part = normalized[start:end].strip(" ,")
            asked = bool(end_mark and "?" in end_mark.group(0))
            start = end_mark.end() if end_mark else len(normalized)
            if part:
                real = self._about_the_person(part, asked)
                clauses.append(Clause(part, real and self._about_now(part), real, real and self._over(part)))
        return clauses

    def _about_the_person(self, clause: str, asked: bool) -> bool:
        if _any(self._hypothetical, clause) or _any(self._story, clause):
            return False
        general_question = _any(self._question, clause) or (asked and _any(self._question_if_asked, clause))
        return not (general_question and not _any(self._personal, clause))

    def _about_now(self, clause: str) -> bool:
        return not ((_any(self._past, clause) or _any(self._chronic, clause)) and not _any(self._acute, clause))

    def _over(self, clause: str) -> bool:
        return _any(self._past, clause) and not _any(self._chronic, clause) and not _any(self._acute, clause)

    def _negated(self, clause: str, start: int) -> bool:
        before = clause[:start]
        negation = self.language.negation
        return negation.negates_chinese(before) or negation.negates(WORD_OR_COMMA.findall(before))

    def present_terms(self, clauses: Sequence[Clause]) -> set[str]:
        """Terms found, not negated, in any of the clauses."""
        return set().union(*(self._terms_in(clause.text) for clause in clauses))

    def _terms_in(self, clause: str) -> frozenset[str]:
        """A clause without Chinese letters skips the Chinese patterns (most of the patterns, and most of the
        time a turn spends here). A term's screen finds nothing in most clauses, and then no pattern of it can."""
        if (known := self._recent_terms.get(clause)) is not None:
            return known
        chinese = has_cjk(clause)
        terms, screens = (self.terms, self._screens) if chinese else (self._latin_terms, self._latin_screens)
        found = frozenset(name for name, patterns in terms.items() if screens[name].search(clause)
                          and any(not self._negated(clause, m.start()) for p in patterns for m in p.finditer(clause)))
        self._recent_terms.put(clause, found)
        return found

    def danger_words(self, normalized: str) -> set[str]:
        """Terms of the emergency rules found, not negated, in clauses about the person, now or in the past
        ("no chest pain" has none; "he had chest pain in 2019" has one)."""
        emergency_terms = {term for rule in self.rules_file.rules if rule.level == "emergency" for term in rule.all}
        real = [clause for clause in self.clauses(normalized) if clause.real]
        return self.present_terms(real) & (emergency_terms - self.background)

    def triage(self, message: Message) -> Triage:
        """Emergency rules read clauses about now; who the patient is (child, pregnant) counts from any clause;
        urgent rules also read chronic clauses, since "coughing for 3 weeks" needs a doctor soon, but not what is
        over ("last year she had a febrile seizure").
        Numbers and the classifier may only raise what the rules said."""
        clauses = self.clauses(message.normalized)
        found = [self._terms_in(clause.text) for clause in clauses]

        def terms_of(wanted: Callable[[Clause], bool]) -> set[str]:
            return set().union(*(terms for clause, terms in zip(clauses, found, strict=True) if wanted(clause)))

        now = terms_of(lambda c: c.counts)
        real = terms_of(lambda c: c.real)
        not_over = terms_of(lambda c: c.real and not c.over)
        not_the_patient = self._not_the_patient(message.normalized)
        present = (now | (real & self.background)) - not_the_patient
        after_event = self._families_after_a_past_event(clauses)
        present_after_event = present  # what the event left is not new: only clauses with a sign of now count
        if after_event:
            plainly_now = terms_of(lambda c: c.counts and _any(self._acute, c.text))
            present_after_event = (plainly_now | (real & self.background)) - not_the_patient
        best = Triage()
        for rule in self.rules_file.rules:
            if rule.level == "urgent":
                terms = not_over | (real & self.background)
            elif rule.family in after_event:
                terms = present_after_event
            else:
                terms = present
            if all(term in terms for term in rule.all) and SEVERITY[rule.level] > SEVERITY[best.level]:
                best = Triage(rule.level, rule.family, tuple(rule.all), "rule")
        for other in (self.by_numbers(clauses, present), self.by_classifier(message)):
            if other is not None and SEVERITY[other.level] > SEVERITY[best.level]:
                best = other
        return best

    def _not_the_patient(self, normalized: str) -> frozenset[str]:
        """Who-terms that name someone other than the patient: the baby a mother feeds, when she writes about
        her own breast ("breastfeeding my 3 week old, my left breast is red and hot, 38.1" is her fever), and
        the grown child of a writer who gives their own age ("I'm 70 ... my daughter wants me to get it checked"),
        unless someone else is the one ill ("he has a fever")."""
        patient = self.language.patient
        if patient.is_nursing_mother(normalized):
            return frozenset({"infant", "child"})
        without_company = patient.without_child_company(normalized)
        if without_company != normalized and not _any(self.terms["child"], without_company) \
                and not patient.names_someone_else_ill(normalized):
            return frozenset({"child"})
        return frozenset()

    def _families_after_a_past_event(self, clauses: Sequence[Clause]) -> set[str]:
        """Families whose lasting event ("he had a stroke 4 months ago") a clause about the past names."""
        past = [clause.text for clause in clauses if clause.real and not clause.counts]
        return {family for family, events in self._lasting_deficits.items()
                if any(_any(events, text) for text in past)}

    def by_numbers(self, clauses: Sequence[Clause], present: set[str]) -> Triage | None:
        """Vital signs in the clauses about now, held against the guidance's thresholds for this age group."""
        vitals = [vital for clause in clauses if clause.counts for vital in read_vitals(clause.text)]
        if not vitals:
            return None
        age: AgeGroup = "infant_under_3_months" if "infant" in present else "child_1_5" if "child" in present \
            else "adult"
        level, vital, _ = self.guidance.thresholds.judge(vitals, age)
        if vital is None:
            return None
        return Triage(level, "vital_signs", (vital.said,), "number")

    def by_classifier(self, message: Message) -> Triage | None:
        """The learned reader: the whole message, or one sentence about now sure enough on its own."""
        if self.learned is None or self.thresholds is None:
            return None
        limits = self.thresholds
        if message.is_chinese:
            about_now = [c.text for c in self.clauses(message.normalized) if c.counts]
            if about_now and self.learned.chinese_emergency_probability(about_now).max() >= limits.emergency_chinese:
                return Triage("emergency", None, (), "classifier")
            return None
        about_now = [i for i, sentence in enumerate(message.sentences)
                     if any(clause.counts for clause in self.clauses(sentence))]
        sentence_vectors = message.sentence_vectors[about_now]
        if len(message.sentences) == 1:  # the message is its one sentence (same vector, same words): scored once
            whole_value = self.learned.emergency_values(message.vector, [message.normalized])
            whole, sentences = float(whole_value[0]), whole_value[: len(about_now)]
        else:  # scored together: one pass over the support vectors
            values = self.learned.emergency_values(np.vstack([message.vector[None, :], sentence_vectors]),
                                                   [message.normalized, *(message.sentences[i] for i in about_now)])
            whole, sentences = float(values[0]), values[1:]
        if whole >= limits.emergency_message or (len(sentences) and sentences.max() >= limits.emergency_sentence):
            vector = sentence_vectors[int(np.argmax(sentences))] if whole < limits.emergency_message \
                else message.vector
            return Triage("emergency", self.learned.family.best(vector), (), "classifier")
        if self.learned.urgent_value(message.vector, message.normalized) >= limits.urgent_message:
            return Triage("urgent", None, (), "classifier")
        return None

    # --- scope ----------------------------------------------------------------------------------
    def is_an_animals_emergency(self, message: Message, triage: Triage) -> bool:
        """A pet and a vet named, no person and no crisis: what reads like an emergency is the animal's."""
        return triage.is_emergency and not triage.is_crisis and self._is_about_an_animal(message)

    def _is_about_an_animal(self, message: Message) -> bool:
        pet, vet, person = self._animal
        text = message.normalized
        return _any(pet, text) and _any(vet, text) and not _any(person, text)

    def is_injection(self, message: Message) -> bool:
        return any(p.search(message.normalized) for p in self._injection)

    def is_off_topic(self, message: Message, has_medical_terms: bool, in_a_case: bool = False) -> bool:
        """Off-topic only when nothing medical is in it: 'weather in Shanghai for my surgery' stays in scope;
        an animal's symptoms ("which vet for my cat's eyes?") and homework about insulin are not ours to route.

        The patterns catch the common topics, unless a story of several sentences reads more like a patient's
        than like the off-topic examples; the examples catch the rest by meaning, but not once a case is under
        way, where "he'd prefer a weekend if possible" is about the patient whatever it resembles.
        """
        if self._is_about_an_animal(message):
            return True  # triage has read it first: a person's emergency or crisis never gets here
        if has_medical_terms and not _any(self._not_about_care, message.normalized):
            return False
        named_topic = _any(self._off_topic, message.normalized)
        if self._off_topic_vectors is None or message.is_chinese or in_a_case:
            return named_topic  # the packaged model reads English only
        vector = message.vector
        if float(np.max(self._exemplar_vectors @ vector)) >= self.scope.crisis_guard:
            return False  # when in doubt about a crisis, keep talking rather than decline
        off_topic = float(np.max(self._off_topic_vectors @ vector))
        in_scope = float(np.max(self._in_scope_vectors @ vector))
        if named_topic:  # a short request names its topic; in a story ("I work as an accountant, so typing is a
            # problem", among swollen knuckles) the topic is background and the meaning decides
            return len(message.sentences) < STORY_SENTENCES or off_topic >= in_scope
        return off_topic - in_scope >= self.scope.margin
