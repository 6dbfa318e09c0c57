"""Load and validate the knowledge base: hospitals, sources, intake guides, vocabulary.

Everything the assistant says about a hospital comes from here, so loading is strict:
a file that does not match the schema stops the start with the file and field named,
never a half-loaded assistant.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, RootModel, field_validator

from assistant.datafile import DataFileError, Strict, load_yaml

PUBLISHED_PATTERN = re.compile(r"^(\d{4}(-\d{2}(-\d{2})?)?|undated)$")
CHECKED_PATTERN = re.compile(r"^\d{4}-\d{2}$")
CONTRACTS = "contracts"  # the project's own copies of the shared contracts: specialty codes, hospital ids


class Source(Strict):
    id: str
    url: str | None = None
    publication: str | None = None
    title: str
    publisher: str
    published: str
    checked: str
    kind: Literal["hospital", "government", "news", "journal", "reference", "ranking", "university", "law"]
    via: str | None = None  # where a mirrored article was read

    @field_validator("published", mode="before")
    @classmethod
    def _published_format(cls, value: object) -> str:
        text = str(value)
        if not PUBLISHED_PATTERN.match(text):
            raise ValueError("must be YYYY-MM-DD, YYYY-MM, YYYY or 'undated'")
        return text

    @field_validator("checked", mode="before")
    @classmethod
    def _checked_format(cls, value: object) -> str:
        text = str(value)
        if not CHECKED_PATTERN.match(text):
            raise ValueError("must be YYYY-MM")
        return text

    def model_post_init(self, __context: object) -> None:
        if not (self.url or self.publication):
            raise ValueError("a source needs a url or a publication")

    @property
    def citation(self) -> str:
        where = self.url or self.publication or ""
        return f"{self.title} ({self.publisher}, {self.published}) {where}".strip()


class Claim(Strict):
    text: str
    sources: list[str] = Field(min_length=1)
    quote: str | None = None  # the source's exact words, required for numbers that need them


class Campus(Strict):
    name: str
    address: str | None = None
    sources: list[str] = Field(min_length=1)


class RankingPlace(Strict):
    code: str
    list: Literal["national", "east_china"]
    rank: int | None = None
    joint: bool = False
    nominated: bool = False
    edition: int
    sources: list[str] = Field(min_length=1)

    def model_post_init(self, __context: object) -> None:
        if self.rank is None and not self.nominated:
            raise ValueError("a ranking place needs a rank or nominated: true")


class Programme(Strict):
    name: str
    status: Literal["available", "research"]
    text: str
    sources: list[str] = Field(min_length=1)
    quote: str | None = None


class Department(Strict):
    id: str
    name: str
    name_zh: str | None = None
    specialties: list[str] = Field(min_length=1)
    audience: Literal["adult", "pediatric", "both"]
    summary: str
    sources: list[str] = Field(min_length=1)
    known_for: list[Claim] = Field(default_factory=list)
    rankings: list[RankingPlace] = Field(default_factory=list)
    programmes: list[Programme] = Field(default_factory=list)
    conditions: list[str] = Field(default_factory=list)
    intake_notes: list[Claim] = Field(default_factory=list)

    @property
    def hospital_id(self) -> str:
        return self.id.split("/", 1)[0]

    def claims(self) -> list[Claim | Programme]:
        """Every sourced sentence of the department, in the order a reader meets them."""
        return [*self.known_for, *self.programmes, *self.intake_notes]


class Hospital(Strict):
    id: str
    name: str
    name_zh: str
    aliases: list[str] = Field(default_factory=list)
    treats_children: bool
    summary: str
    about: list[Claim] = Field(default_factory=list)
    campuses: list[Campus] = Field(default_factory=list)
    international_service: list[Claim] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    departments: list[Department] = Field(min_length=1)


class IntakeStep(Strict):
    title: str
    text: str
    sources: list[str] = Field(min_length=1)
    quote: str | None = None


class IntakeGuide(Strict):
    topic: Literal[
        "records", "translation", "imaging", "pre_consultation", "first_visit",
        "visa", "payment", "insurance", "data_protection",
    ]
    title: str
    steps: list[IntakeStep] = Field(min_length=1)
    sources: list[Source] = Field(default_factory=list)


class VocabularyEntry(Strict):
    term: str
    codes: dict[str, float] = Field(min_length=1)
    kind: Literal["diagnosis", "symptom", "procedure", "drug", "abbreviation", "lay", "organ", "goal"]
    lang: Literal["en", "zh"] = "en"

    @field_validator("codes")
    @classmethod
    def _weights_in_range(cls, codes: dict[str, float]) -> dict[str, float]:
        for code, weight in codes.items():
            if not 0 < weight <= 1:
                raise ValueError(f"weight of {code} must be in (0, 1], got {weight}")
        return codes


class VocabularyFile(Strict):
    entries: list[VocabularyEntry] = Field(min_length=1)


class ChildCodes(Strict):
    """Adult code -> the pediatric codes a child with the same problem is routed to."""

    child_codes: dict[str, dict[str, float]]


class Negation(Strict):
    """language/negation.yaml: the one list of negating words that understanding and safety share."""

    words: frozenset[str] = Field(min_length=1)
    phrases: tuple[str, ...]
    chinese: tuple[str, ...]

    @field_validator("words")
    @classmethod
    def _single_words(cls, words: frozenset[str]) -> frozenset[str]:
        several = sorted(word for word in words if " " in word)
        if several:
            raise ValueError(f"put {several} under phrases")
        return words


class CoverageExceptions(Strict):
    hospitals_per_code: dict[str, str] = Field(default_factory=dict)


class SharedSources(Strict):
    sources: list[Source]


class Specialty(Strict):
    code: str
    name: str
    scope: str = ""
    pediatric: bool = False


class SpecialtiesFile(Strict):
    """contracts/specialties.yaml: the codes every department, vocabulary entry and eval case routes to."""

    adult: list[Specialty] = Field(min_length=1)
    pediatric: list[Specialty] = Field(min_length=1)


class HospitalId(Strict):
    id: str
    name: str
    zh: str = ""
    seed: bool = False


class HospitalsFile(RootModel[list[HospitalId]]):
    """contracts/hospitals.yaml: the hospital ids the knowledge must cover, a list at the top level."""


class UnknownHospital(ValueError):
    """A hospital id that is not in the knowledge (a widget's data-hospital, a conversation's scope)."""

    def __init__(self, hospital_id: str) -> None:
        super().__init__(f"unknown hospital id '{hospital_id}'")


@dataclass
class KnowledgeBase:
    """The whole reviewed knowledge, loaded once per process."""

    hospitals: dict[str, Hospital]
    sources: dict[str, Source]
    intake: dict[str, IntakeGuide]
    vocabulary: list[VocabularyEntry]
    child_codes: dict[str, dict[str, float]]
    specialties: dict[str, Specialty]
    hospital_ids: dict[str, HospitalId]
    negation: Negation
    fingerprint: str

    @cached_property
    def departments(self) -> dict[str, Department]:
        return {dept.id: dept for hospital in self.hospitals.values() for dept in hospital.departments}

    def hospital(self, hospital_id: str) -> Hospital:
        if hospital_id not in self.hospitals:
            raise UnknownHospital(hospital_id)
        return self.hospitals[hospital_id]

    def department(self, department_id: str) -> Department:
        return self.departments[department_id]


def load_specialties(knowledge_dir: Path) -> dict[str, Specialty]:
    path = knowledge_dir / CONTRACTS / "specialties.yaml"
    contract = load_yaml(path, SpecialtiesFile)
    specialties: dict[str, Specialty] = {}
    for group, rows in (("adult", contract.adult), ("pediatric", contract.pediatric)):
        for i, row in enumerate(rows):
            if row.code in specialties:
                raise DataFileError(f"{path}: field '{group}.{i}.code': '{row.code}' is defined twice")
            specialties[row.code] = row
    return specialties


def load_hospital_ids(knowledge_dir: Path) -> dict[str, HospitalId]:
    path = knowledge_dir / CONTRACTS / "hospitals.yaml"
    rows = load_yaml(path, HospitalsFile).root
    ids = [row.id for row in rows]
    for i, row in enumerate(rows):
        if ids.index(row.id) != i:
            raise DataFileError(f"{path}: field '{i}.id': '{row.id}' is listed twice")
    return {row.id: row for row in rows}


def fingerprint_files(paths: Iterable[Path], root: Path) -> str:
    """A content hash of the knowledge: the index is rebuilt exactly when this changes."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def index_inputs(knowledge_dir: Path) -> list[Path]:
    """The files the department index is built from; other knowledge (safety, dialogue, intake) can change freely."""
    return sorted([*(knowledge_dir / "hospitals").glob("*.yaml"), *(knowledge_dir / "vocabulary").glob("*.yaml"),
                   *(knowledge_dir / CONTRACTS).glob("*.yaml"), knowledge_dir / "sources.yaml"])


def load_knowledge(knowledge_dir: Path) -> KnowledgeBase:
    """Read every file and cross-check references; raise DataFileError on the first bad file."""
    specialties = load_specialties(knowledge_dir)
    hospital_ids = load_hospital_ids(knowledge_dir)

    sources: dict[str, Source] = {}
    source_files: dict[str, Path] = {}

    def register(new_sources: list[Source], path: Path) -> None:
        for source in new_sources:
            if source.id in sources:
                raise DataFileError(
                    f"{path}: field 'sources.{source.id}': id already defined in {source_files[source.id]}"
                )
            sources[source.id] = source
            source_files[source.id] = path

    shared_path = knowledge_dir / "sources.yaml"
    if shared_path.exists():
        register(load_yaml(shared_path, SharedSources).sources, shared_path)

    hospitals: dict[str, Hospital] = {}
    hospital_files: dict[str, Path] = {}
    for path in sorted((knowledge_dir / "hospitals").glob("*.yaml")):
        hospital = load_yaml(path, Hospital)
        if hospital.id != path.stem:
            raise DataFileError(f"{path}: field 'id': '{hospital.id}' does not match the file name")
        register(hospital.sources, path)
        hospitals[hospital.id] = hospital
        hospital_files[hospital.id] = path

    intake: dict[str, IntakeGuide] = {}
    intake_files: dict[str, Path] = {}
    for path in sorted((knowledge_dir / "intake").glob("*.yaml")):
        guide = load_yaml(path, IntakeGuide)
        register(guide.sources, path)
        intake[guide.topic] = guide
        intake_files[guide.topic] = path

    vocabulary: list[VocabularyEntry] = []
    vocab_dir = knowledge_dir / "vocabulary"
    child_codes: dict[str, dict[str, float]] = {}
    for path in sorted(vocab_dir.glob("*.yaml")):
        if path.name == "child_codes.yaml":
            child_codes = load_yaml(path, ChildCodes).child_codes
            continue
        vocabulary.extend(load_yaml(path, VocabularyFile).entries)

    base = KnowledgeBase(
        hospitals=hospitals,
        sources=sources,
        intake=intake,
        vocabulary=vocabulary,
        child_codes=child_codes,
        specialties=specialties,
        hospital_ids=hospital_ids,
        negation=load_yaml(knowledge_dir / "language" / "negation.yaml", Negation),
        fingerprint=fingerprint_files(index_inputs(knowledge_dir), knowledge_dir),
    )
    _check_references(base, hospital_files, intake_files, vocab_dir)
    return base


def _check_references(
    base: KnowledgeBase,
    hospital_files: dict[str, Path],
    intake_files: dict[str, Path],
    vocab_dir: Path,
) -> None:
    """Cross-file rules pydantic cannot see: ids, codes and source references exist."""

    def check_sources(path: Path, where: str, ids: list[str]) -> None:
        for source_id in ids:
            if source_id not in base.sources:
                raise DataFileError(f"{path}: field '{where}.sources': unknown source id '{source_id}'")

    for hospital_id, hospital in base.hospitals.items():
        path = hospital_files[hospital_id]
        if hospital_id not in base.hospital_ids:
            raise DataFileError(f"{path}: field 'id': '{hospital_id}' is not in contracts/hospitals.yaml")
        for i, claim in enumerate(hospital.about):
            check_sources(path, f"about.{i}", claim.sources)
        for i, campus in enumerate(hospital.campuses):
            check_sources(path, f"campuses.{i}", campus.sources)
        for i, claim in enumerate(hospital.international_service):
            check_sources(path, f"international_service.{i}", claim.sources)
        seen: set[str] = set()
        for d, dept in enumerate(hospital.departments):
            where = f"departments.{d}"
            if not dept.id.startswith(f"{hospital_id}/") or dept.id in seen:
                raise DataFileError(
                    f"{path}: field '{where}.id': '{dept.id}' must be unique and start with '{hospital_id}/'"
                )
            seen.add(dept.id)
            for code in dept.specialties:
                if code not in base.specialties:
                    raise DataFileError(f"{path}: field '{where}.specialties': unknown code '{code}'")
                if base.specialties[code].pediatric and not hospital.treats_children:
                    raise DataFileError(
                        f"{path}: field '{where}.specialties': pediatric code '{code}' "
                        "in a hospital that does not treat children"
                    )
                if base.specialties[code].pediatric and dept.audience == "adult":
                    raise DataFileError(
                        f"{path}: field '{where}.audience': pediatric code '{code}' on an adult department"
                    )
            if dept.audience != "adult" and not hospital.treats_children:
                raise DataFileError(f"{path}: field '{where}.audience': hospital does not treat children")
            check_sources(path, where, dept.sources)
            for kind, items in (("known_for", dept.known_for), ("programmes", dept.programmes),
                                ("intake_notes", dept.intake_notes), ("rankings", dept.rankings)):
                for i, item in enumerate(items):
                    check_sources(path, f"{where}.{kind}.{i}", item.sources)
            for i, place in enumerate(dept.rankings):
                if place.code not in base.specialties:
                    raise DataFileError(f"{path}: field '{where}.rankings.{i}.code': unknown code '{place.code}'")

    for topic, guide in base.intake.items():
        for i, step in enumerate(guide.steps):
            check_sources(intake_files[topic], f"steps.{i}", step.sources)

    for entry in base.vocabulary:
        for code in entry.codes:
            if code not in base.specialties:
                raise DataFileError(f"{vocab_dir}: term '{entry.term}': unknown code '{code}'")
    for adult_code, targets in base.child_codes.items():
        for code in [adult_code, *targets]:
            if code not in base.specialties:
                raise DataFileError(f"{vocab_dir / 'child_codes.yaml'}: field '{adult_code}': unknown code '{code}'")


# --- review rules beyond the schema: what `python -m assistant validate` checks ---------------

SEED_MIN_DEPARTMENTS = 5
OTHER_MIN_DEPARTMENTS = 3
TOTAL_MIN_DEPARTMENTS = 100
HOSPITALS_PER_CODE = 2
VOCABULARY_MIN_ENTRIES = 800
VOCABULARY_MIN_PER_CODE = 12

SENSITIVE_PATTERNS = {
    "phone number": re.compile(r"(?<![\w.])\+?\(?\d{2,4}\)?[\s-]?\d{3,4}[\s-]?\d{3,4}(?![\w.])"),
    "e-mail address": re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    "price": re.compile(
        r"(?:CNY|RMB|USD|US\$|\$|¥|€|EUR|£)\s?\d|\d[\d,.]*\s?(?:yuan|dollars|euros|CNY|RMB|USD|元)", re.IGNORECASE
    ),
    "rate": re.compile(r"\d+(?:\.\d+)?\s?(?:%|percent\b)", re.IGNORECASE),
    "waiting time": re.compile(
        r"\b(?:wait(?:ing)?|queue|within)\b[^.]{0,30}\b(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten)"
        r"\s(?:hour|day|week|month)s?\b",
        re.IGNORECASE,
    ),
}


def sourced_texts(kb: KnowledgeBase) -> list[tuple[str, str, str | None]]:
    """(where, text, quote) for every sentence a patient may read."""
    texts: list[tuple[str, str, str | None]] = []
    for hospital in kb.hospitals.values():
        texts.append((f"{hospital.id}.summary", hospital.summary, None))
        for kind, claims in (("about", hospital.about), ("international_service", hospital.international_service)):
            texts.extend((f"{hospital.id}.{kind}.{i}", c.text, c.quote) for i, c in enumerate(claims))
        for dept in hospital.departments:
            texts.append((f"{dept.id}.summary", dept.summary, None))
            texts.extend((f"{dept.id}.known_for.{i}", c.text, c.quote) for i, c in enumerate(dept.known_for))
            texts.extend((f"{dept.id}.programmes.{i}", p.text, p.quote) for i, p in enumerate(dept.programmes))
            texts.extend((f"{dept.id}.intake_notes.{i}", c.text, c.quote) for i, c in enumerate(dept.intake_notes))
    for topic, guide in kb.intake.items():
        texts.extend((f"intake/{topic}.steps.{i}", s.text, s.quote) for i, s in enumerate(guide.steps))
    return texts


def unsourced_sensitive_text(kb: KnowledgeBase) -> list[str]:
    """Phone numbers, e-mails, prices, rates or waits that the cited source does not state verbatim."""
    problems = []
    for where, text, quote in sourced_texts(kb):
        for label, pattern in SENSITIVE_PATTERNS.items():
            for found in pattern.finditer(text):
                if quote is None or found.group(0) not in quote:
                    problems.append(f"{where}: {label} '{found.group(0)}' without a verbatim quote from its source")
    return problems


def coverage_exceptions(knowledge_dir: Path) -> dict[str, str]:
    """Codes allowed fewer hospitals than the rule, each with the reason the sources give."""
    path = knowledge_dir / "coverage_exceptions.yaml"
    return dict(load_yaml(path, CoverageExceptions).hospitals_per_code) if path.exists() else {}


def coverage_problems(kb: KnowledgeBase, exceptions: dict[str, str] | None = None) -> list[str]:
    """The coverage the product promises: every hospital, enough departments, every code twice."""
    exceptions = exceptions or {}
    problems = []
    for hospital_id, info in kb.hospital_ids.items():
        hospital = kb.hospitals.get(hospital_id)
        if hospital is None:
            problems.append(f"hospital '{hospital_id}' has no file in knowledge/hospitals/")
            continue
        needed = SEED_MIN_DEPARTMENTS if info.seed else OTHER_MIN_DEPARTMENTS
        if len(hospital.departments) < needed:
            problems.append(f"hospital '{hospital_id}' has {len(hospital.departments)} departments, needs {needed}")
    if len(kb.departments) < TOTAL_MIN_DEPARTMENTS:
        problems.append(f"{len(kb.departments)} departments in all, needs {TOTAL_MIN_DEPARTMENTS}")
    hospitals_by_code: dict[str, set[str]] = {code: set() for code in kb.specialties}
    for dept in kb.departments.values():
        for code in dept.specialties:
            hospitals_by_code[code].add(dept.hospital_id)
    for code, hospitals in hospitals_by_code.items():
        if len(hospitals) < HOSPITALS_PER_CODE and not (hospitals and code in exceptions):
            problems.append(
                f"specialty '{code}' is offered by {len(hospitals)} hospital(s), needs {HOSPITALS_PER_CODE}"
            )
    if len(kb.vocabulary) < VOCABULARY_MIN_ENTRIES:
        problems.append(f"vocabulary has {len(kb.vocabulary)} entries, needs {VOCABULARY_MIN_ENTRIES}")
    per_code: dict[str, int] = {code: 0 for code in kb.specialties}
    for entry in kb.vocabulary:
        for code in entry.codes:
            per_code[code] += 1
    for code, count in per_code.items():
        if count < VOCABULARY_MIN_PER_CODE:
            problems.append(f"vocabulary maps {count} terms to '{code}', needs {VOCABULARY_MIN_PER_CODE}")
    terms: dict[tuple[str, str], int] = {}
    for entry in kb.vocabulary:
        key = (entry.term.lower(), entry.lang)
        terms[key] = terms.get(key, 0) + 1
    problems += [f"vocabulary term '{term}' ({lang}) is defined {n} times; keep one"
                 for (term, lang), n in terms.items() if n > 1]
    for hospital in kb.hospitals.values():
        for dept in hospital.departments:
            for programme in dept.programmes:
                if programme.status == "research" and "research" not in programme.text.lower():
                    problems.append(f"{dept.id}: research programme '{programme.name}' must say it is research")
    return problems
