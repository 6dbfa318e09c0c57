"""Turn what the user wrote into a case: who, how old, which terms, which specialties.

The vocabulary does the medical reading (terms -> specialty codes with weights); this module
adds the parts around it: negation ("no fever"), who the patient is, their age, their goal,
and the child mapping that routes a child's leukemia to pediatric hematology.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

from assistant.case import ADULT_AGE, Case, Reading, TermHit, without_negated_terms
from assistant.knowledge import HistoryCues, KnowledgeBase, Negation, VocabularyEntry
from assistant.text import APOSTROPHES, CJK_RUN, WORD, normalize, tokens_of_normalized
from assistant.turn.message import Message

MAX_TERM_WORDS = 6
ADOLESCENT_AGE = 14  # Chinese pediatric departments see children up to 14; older teenagers also see adult clinics
# "lump in my breast" is the vocabulary's "lump in breast": these words never decide a match
FILLER_WORDS = frozenset("my his her their our your the a an".split())
CLAUSE_MARK = ","
TOKEN = re.compile(r"[a-z0-9]+(?:[-+][a-z0-9]+)*|[,;:]")

CHILD_WORDS = re.compile(
    r"\b(my|our|her|his|the) (little |baby |newborn |infant |teenage |adopted )?"
    r"(son|daughter|baby|child|kid|kids|boy|girl|toddler|infant|newborn|twins|grandson|granddaughter|nephew|niece)\b"
)
CHILD_STATED = re.compile(
    r"\b(for a|for my|its a|it is a|is a|my) (child|kid|baby|toddler|teenager|teen|minor|infant|newborn)\b"
    r"|^(child|kid|baby)\W*$"
)
# "trying for a baby", "our baby is due": the baby is not the patient yet
PREGNANCY_CONTEXT = re.compile(
    r"\b(pregnan\w*|trying for a baby|trying to conceive|ivf|icsi|deliver\w*|due date|birth plan|"
    r"fertility|infertil\w*|conceiv\w*|(want|wants|wanted|wanting|have|having|make|making|try|tried) (a|another) baby|"
    r"try for a baby)\b"
)
UNBORN_BABY = re.compile(r"\b((a|our|my|the) )?bab(y|ies)\b")
BABY_WORD = re.compile(r"\bbab(y|ies)\b")
ZH_PREGNANCY = ("怀孕", "试管", "孕", "胎动", "产检", "胎儿", "生孩子", "要孩子", "怀不上")
ZH_UNBORN = ("生孩子", "要孩子", "宝宝", "婴儿", "胎儿")  # "想问一下生孩子的事": the child is not born yet
ADULT_STATED = re.compile(r"\b(an adult|adult|grown[- ]up|for me|for myself)\b")
INFANT_WORDS = re.compile(r"\b(baby|newborn|infant|neonate|preemie)\b")
ADULT_RELATIVES = re.compile(  # "my 62-year-old father", "my fathers myeloma" (apostrophes are stripped)
    r"\b(my|our)(?: [\w-]+){0,3}? (dad|father|mum|mom|mother|husband|wife|partner|grandma|grandmother|grandpa|"
    r"grandfather|brother|sister|uncle|aunt|friend|colleague|boss)s?\b"
)
AGE_PATTERNS = (
    # "olds": the possessive "my 14-year-old's asthma" once the apostrophe is gone
    (re.compile(r"\b(\d{1,2}) ?(?:-| )?(day|week|month)s?(?:-| )?olds?\b"), "young"),
    (re.compile(r"\b(\d{1,3}) ?(?:-| )?(?:years?|yrs?)(?:-| )olds?\b"), "years"),
    (re.compile(r"\b(\d{1,3}) ?(?:yo|y/o|y\.o\.)(?![a-z])"), "years"),
    (re.compile(r"\b(\d{2}) ?(?:m|f)\b"), "years"),  # "39F", "60 M"
    (re.compile(r"\b(?:aged|age|he is|she is|hes|shes|son is|daughter is|child is|kid is|(?:dad|father|mum|mom"
                r"|mother|husband|wife|partner|brother|sister|grandma|grandmother|grandpa|grandfather) is)"
                r" (\d{1,3})\b"), "years"),
    (re.compile(r"(\d{1,3}) ?岁"), "years"),
    (re.compile(r"(\d{1,2}) ?(个月|周|天)大"), "young"),
)
UNITS_PER_YEAR = {"day": 365, "week": 52, "month": 12, "天": 365, "周": 52, "个月": 12}
FED_BABY = re.compile(r"\b(?:my|our|the) (?:\d{1,2} ?(?:-| )?(?:day|week|month)s?(?:-| )?old|son|daughter|little one)\b"
                      r"|\b(?:baby|newborn|infant)\b")
ZH_CHILD = ("孩子", "儿子", "女儿", "宝宝", "婴儿", "小孩", "儿童", "新生儿", "孙子", "孙女")
ZH_ADULT_RELATIVE = ("爸爸", "父亲", "妈妈", "母亲", "丈夫", "妻子", "老公", "老婆", "爷爷", "奶奶")
# a place is written with a capital ("living in Jakarta"); "I'm in pain" is not a place
LOCATION = re.compile(
    r"\b(?:[Ii] am|[Ii]m|[Ww]e are|[Ww]ere|[Ii] live|[Ww]e live|living|based|staying|currently|now) (?:in|from) "
    r"([A-Z][A-Za-z .'-]{1,30}?)(?=[,.;!?]|$| and | but | with | for | since )"
)
FIRST_PERSON = re.compile(r"\b(i|im|ive|me|myself|my|mine)\b")

GOALS = {
    "second_opinion": ("second opinion", "another opinion", "review my", "confirm the diagnosis", "第二意见"),
    "surgery": ("surgery", "operation", "operate", "手术"),
    "transplant": ("transplant", "移植"),
    "trial": ("clinical trial", "trial", "research study", "experimental", "临床试验"),
    "checkup": ("check-up", "checkup", "check up", "screening", "体检"),
    "treatment": ("treatment", "therapy", "treat", "治疗"),
}


TYPO_MIN_LETTERS = 5  # shorter words are left alone: "son" must never become "sun"
TYPO_LONG_WORD = 8  # from this length two edits are allowed ("mutliple myloma", "brest cancer": one each)


class TypoCorrector:
    """Medical words misspelt by one or two edits (Damerau-Levenshtein: a swap counts one) back to the vocabulary's.

    Only words nobody here wrote are corrected: a word of the vocabulary or of a department's profile is kept."""

    def __init__(self, vocabulary_words: set[str], known_words: set[str]) -> None:
        self.targets = sorted(word for word in vocabulary_words if len(word) >= TYPO_MIN_LETTERS and word.isalpha())
        self.known = vocabulary_words | known_words

    @lru_cache(maxsize=4096)  # noqa: B019  (one corrector per process, built once with the engine)
    def correct(self, word: str) -> str:
        if len(word) < TYPO_MIN_LETTERS or word in self.known or not word.isalpha():
            return word
        from rapidfuzz import process
        from rapidfuzz.distance import DamerauLevenshtein

        allowed = 2 if len(word) >= TYPO_LONG_WORD else 1
        best = process.extractOne(word, self.targets, scorer=DamerauLevenshtein.distance, score_cutoff=allowed)
        return best[0] if best is not None else word


def term_words(term: str) -> tuple[str, ...]:
    """The words a term is matched by, as a message's words are read (filler words left out)."""
    return tuple(word for word in WORD.findall(normalize(term)) if word not in FILLER_WORDS)


class Vocabulary:
    """Fast lookup of vocabulary terms in a message: n-gram dictionary for words, substrings for Chinese."""

    def __init__(self, entries: list[VocabularyEntry], negation: Negation, history: HistoryCues,
                 known_words: set[str] | None = None, ontology: Sequence[VocabularyEntry] = ()) -> None:
        """`ontology`: ICD-10 and HPO terms, matched where no hand-written term of the same words exists; their
        words are known (never corrected) but never typo targets: "pains" must not become a rare syndrome."""
        self.negation = negation
        self.history = history
        self.by_words: dict[tuple[str, ...], VocabularyEntry] = {}
        self.case_sensitive: dict[str, VocabularyEntry] = {}
        self.chinese: list[VocabularyEntry] = []
        for entry in entries:
            if entry.lang == "zh" or CJK_RUN.search(entry.term):
                self.chinese.append(entry)
            elif entry.kind == "abbreviation" and entry.term.isupper() and len(entry.term) <= 4:
                # short upper-case abbreviations (MM, ALL, AS, MS) collide with words: match them as written
                self.case_sensitive[entry.term] = entry
            else:
                words = term_words(entry.term)
                if words:
                    self.by_words.setdefault(words, entry)
        self.chinese.sort(key=lambda entry: -len(entry.term))
        hand_words = {word for words in self.by_words for word in words}
        ontology_words: set[str] = set()
        for entry in ontology:
            words = term_words(entry.term)
            ontology_words.update(words)
            if words:
                self.by_words.setdefault(words, entry)
        self.typos = TypoCorrector(hand_words, (known_words or set()) | ontology_words)

    def find(self, message: Message) -> list[TermHit]:
        normalized, text = message.normalized, message.raw
        # commas stay as tokens: no term spans them, and "no" does not reach past one
        words = [CLAUSE_MARK if w in ",;:" else self.typos.correct(w) for w in TOKEN.findall(normalized)
                 if w not in FILLER_WORDS]
        hits: list[TermHit] = []
        covered: set[int] = set()
        for size in range(min(MAX_TERM_WORDS, len(words)), 0, -1):
            for start in range(len(words) - size + 1):
                span = range(start, start + size)
                if covered.intersection(span):
                    continue
                entry = self.by_words.get(tuple(words[start : start + size]))
                if entry is None or CLAUSE_MARK in words[start : start + size]:
                    continue
                covered.update(span)
                hits.append(TermHit(term=entry.term, codes=dict(entry.codes), kind=entry.kind,
                                    negated=self.negation.negates(words[:start]),
                                    past=self.history.in_the_past(words[:start], words[start + size :])))
        covered_words = {words[i] for i in covered}
        for token in re.findall(r"[A-Za-z][A-Za-z0-9-]*", text):
            entry = self.case_sensitive.get(token)
            if entry is not None and token.lower() not in covered_words:  # "ACL tear" already counted ACL
                hits.append(TermHit(term=entry.term, codes=dict(entry.codes), kind=entry.kind))
        remaining = normalized
        for entry in self.chinese:
            position = remaining.find(entry.term)
            if position >= 0:
                before, after = remaining[:position], remaining[position + len(entry.term) :]
                hits.append(TermHit(term=entry.term, codes=dict(entry.codes), kind=entry.kind,
                                    negated=self.negation.negates_chinese(before),
                                    past=self.history.in_the_past_chinese(before, after)))
                remaining = remaining.replace(entry.term, " ")  # the longer term wins over its parts
        return hits


def detect_age(normalized: str) -> float | None:
    """The age the message states for the patient ("my 8 month old", "aged 62", "39F")."""
    for pattern, unit in AGE_PATTERNS:
        match = pattern.search(normalized)
        if match:
            value = int(match.group(1))
            if unit == "young":  # "8 month old" is 8/12 of a year: the summary says "8 months", never "age 0"
                return value / UNITS_PER_YEAR[match.group(2)]
            if 0 < value < 120:
                return float(value)
    return None


def is_about_pregnancy(normalized: str, raw: str) -> bool:
    return bool(PREGNANCY_CONTEXT.search(normalized)) or any(word in raw for word in ZH_PREGNANCY)


def without_baby_words(normalized: str, raw: str) -> tuple[str, str]:
    for word in ZH_UNBORN:
        raw = raw.replace(word, " ")
    return UNBORN_BABY.sub(" ", normalized), raw


def without_unborn_baby(normalized: str, raw: str) -> tuple[str, str]:
    """In "trying for a baby", "our baby is due in May" or "20 weeks pregnant, baby moving less" the baby is not
    the patient, and does not make the patient an infant."""
    return without_baby_words(normalized, raw) if is_about_pregnancy(normalized, raw) else (normalized, raw)


def child_only_by_a_baby_word(normalized: str, raw: str, who: str | None, stated_age: float | None) -> bool:
    """"Our baby is not moving much" makes the patient a baby only through the word "baby": a pregnancy told in a
    later message shows that baby is unborn (`Case.add`). A stated age or "my son" is a child for good."""
    if stated_age is not None or (who != "child" and not INFANT_WORDS.search(normalized)):
        return False
    for word in ZH_UNBORN:
        raw = raw.replace(word, " ")
    without_baby = " ".join(BABY_WORD.sub(" ", normalized).split())  # "my baby son" is still "my son"
    return detect_who(without_baby, raw) != "child"


def is_teenager(case: Case) -> bool:
    return case.age_years is not None and ADOLESCENT_AGE <= case.age_years < ADULT_AGE


def without_fed_baby(normalized: str, raw: str) -> tuple[str, str]:
    """A nursing mother writing about her own breast names the baby she feeds: it is not the patient, and its
    age is not hers."""
    for word in ZH_CHILD:
        raw = raw.replace(word, " ")
    return FED_BABY.sub(" ", normalized), raw


def detect_who(normalized: str, raw: str) -> str | None:
    if CHILD_WORDS.search(normalized) or CHILD_STATED.search(normalized) or any(word in raw for word in ZH_CHILD):
        return "child"
    if ADULT_STATED.search(normalized) or "成人" in raw or "成年" in raw:
        return "adult"
    if ADULT_RELATIVES.search(normalized) or any(word in raw for word in ZH_ADULT_RELATIVE):
        return "adult_relative"
    if FIRST_PERSON.search(normalized) or "我" in raw:
        return "self"
    return None


def detect_goals(normalized: str) -> set[str]:
    return {goal for goal, phrases in GOALS.items() if any(phrase in normalized for phrase in phrases)}


def profile_words(kb: KnowledgeBase) -> set[str]:
    """Words the knowledge itself uses (department names, summaries, conditions): real words, never typos."""
    texts = [text for dept in kb.departments.values() for text in (dept.name, dept.summary, *dept.conditions)]
    return {word for text in texts for word in WORD.findall(normalize(text))}


class Understander:
    def __init__(self, kb: KnowledgeBase, everyday_words: set[str] | None = None) -> None:
        """`everyday_words`: words people write often (from the training messages), never corrected as typos."""
        self.vocabulary = Vocabulary(kb.vocabulary, kb.language.negation, kb.language.history,
                                     profile_words(kb) | (everyday_words or set()), kb.ontology)
        self.patient = kb.language.patient
        self.child_codes = kb.child_codes
        self.adolescents_keep = kb.adolescents_keep
        self.pediatric_codes = {code for code, spec in kb.specialties.items() if spec.pediatric}

    def read(self, message: Message) -> Reading:
        """What one message says; `Case.add` folds it into the conversation's case."""
        hits = self.vocabulary.find(message)
        normalized, raw = without_unborn_baby(message.normalized, message.raw)
        normalized = self.patient.without_child_company(normalized)
        if self.patient.is_nursing_mother(normalized):
            normalized, raw = without_fed_baby(normalized, raw)
        location = LOCATION.search(APOSTROPHES.sub("", message.raw))
        stated_age = detect_age(normalized)
        who = detect_who(normalized, raw)
        return Reading(
            text=message.raw,
            hits=hits,
            who=who,
            stated_age=stated_age,
            own_age=stated_age if stated_age is not None else self.patient.writers_age(normalized),
            infant=bool(INFANT_WORDS.search(normalized)),
            pregnancy=is_about_pregnancy(message.normalized, message.raw),
            child_only_by_a_baby_word=child_only_by_a_baby_word(normalized, raw, who, stated_age),
            goals=detect_goals(message.normalized),
            location=location.group(1).strip() if location else None,
            language="zh" if message.is_chinese else "en",
            search_text=without_negated_terms(message.normalized, hits),  # this message's negations only
            content_tokens=len(tokens_of_normalized(message.normalized)),
            cjk_letters=message.cjk_letters,
            latin_letters=message.latin_letters,
        )

    def specialty_scores(self, case: Case) -> dict[str, float]:
        """Specialty code -> weight for this patient, with adult codes moved to pediatric ones for a child."""
        scores = case.raw_scores()
        child = self.patient_is_child(case)
        if child:
            teenager = is_teenager(case)
            mapped: dict[str, float] = defaultdict(float)
            for code, weight in scores.items():
                if code in self.pediatric_codes:
                    mapped[code] += weight
                    continue
                # departments for all ages may still fit (eyes, ENT, protons); a teenager's acne is the skin clinic's
                mapped[code] += weight if teenager and code in self.adolescents_keep else weight * 0.5
                for child_code, factor in self.child_codes.get(code, {}).items():
                    mapped[child_code] += weight * factor
            scores = dict(mapped)
        else:
            scores = {code: weight for code, weight in scores.items() if code not in self.pediatric_codes}
        return scores

    def audiences(self, case: Case) -> frozenset[str]:
        """The departments a patient may be seen in: a teenager of 14 or more in adult and children's alike."""
        if not self.patient_is_child(case):
            return frozenset({"adult", "both"})
        return frozenset({"adult", "pediatric", "both"}) if is_teenager(case) else frozenset({"pediatric", "both"})

    def patient_is_child(self, case: Case) -> bool:
        """Stated age or relation first; failing that, a case whose strongest code is pediatric is a child's."""
        child = case.is_child
        if child is not None:
            return child
        scores = case.raw_scores()
        return bool(scores) and max(scores, key=scores.get) in self.pediatric_codes

