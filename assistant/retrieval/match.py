"""Rank departments for a case: specialty fit, dense and lexical retrieval, and reputation.

Each signal answers a different question. Specialty fit (from the vocabulary): does this
department treat what the patient named? Dense retrieval: does its profile read like the
patient's story? BM25: does it name the same rare words (a drug, a procedure)? Reputation:
do specialists rank it highly for that specialty (Fudan ranking)? The sum is filtered by
audience (a child never gets an adult-only department) and by the widget's hospital.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from assistant.case import Case
from assistant.knowledge import Department, KnowledgeBase, RankingPlace
from assistant.learned import LearnedModels
from assistant.reply import Evidence, Recommendation
from assistant.retrieval.index import DepartmentIndex
from assistant.settings import MatchWeights
from assistant.turn.message import Message
from assistant.turn.understand import Understander

SECONDARY_CODE_FACTOR = 0.85
EVIDENCE_PER_DEPARTMENT = 3
CARDS_SHOWN = 3  # the cards a reply shows; the rest of the list stays for follow-ups


def reputation(place: RankingPlace) -> float:
    """National top 10 outranks an East China top 5, which outranks a nomination."""
    if place.nominated or place.rank is None:
        return 0.15
    if place.list == "national":
        return 1.0 - 0.04 * (place.rank - 1)
    return 0.55 - 0.05 * (place.rank - 1)


def latest_places(places: list[RankingPlace], code: str | None) -> list[RankingPlace]:
    """The newest edition's places for a code: an older rank never speaks for the department today."""
    matching = [place for place in places if code and place.code == code]
    newest = max((place.edition for place in matching), default=None)
    return [place for place in matching if place.edition == newest]


def rank_by_score(scores: dict[str, float]) -> dict[str, int]:
    ordered = sorted(scores, key=scores.get, reverse=True)
    return {key: position for position, key in enumerate(ordered, start=1)}


def describe_place(place: RankingPlace, specialty_name: str) -> str:
    """The list a department is on, national or East China, its rank or "nominated", and the edition, as the
    institute publishes them: a nomination is never turned into a rank, nor an East China place into a national
    one."""
    ranking = ("the Fudan specialty reputation ranking" if place.list == "national"
               else "the Fudan East China specialty reputation ranking")
    if place.nominated or place.rank is None:
        outside = "the top 10" if place.list == "national" else "the East China top 5"
        return (f"nominated (listed outside {outside}) in {specialty_name.lower()} in {ranking} "
                f"({place.edition} edition)")
    scope = "nationally" if place.list == "national" else "in East China"
    joint = "joint " if place.joint else ""
    return (f"ranked {joint}{_ordinal(place.rank)} {scope} in {specialty_name.lower()} in {ranking} "
            f"({place.edition} edition)")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Matcher:
    def __init__(self, kb: KnowledgeBase, index: DepartmentIndex, understander: Understander,
                 weights: MatchWeights, learned: LearnedModels | None = None) -> None:
        self.kb = kb
        self.learned = learned
        self.index = index
        self.understander = understander
        self.weights = weights
        self.departments = kb.departments
        # fixed by the knowledge: worked out once here, not for every department on every turn
        self.standing = {(dept.id, code): max((reputation(p) for p in latest_places(dept.rankings, code)), default=0.0)
                         for dept in self.departments.values() for code in dept.specialties}
        self.claim_chunks = {chunk.id: chunk for chunk in index.chunks if chunk.claim >= 0}

    def eligible(self, dept: Department, audiences: frozenset[str], hospital_id: str | None) -> bool:
        if hospital_id and dept.hospital_id != hospital_id:
            return False
        return dept.audience in audiences

    def specialty_fit(self, dept: Department, scores: dict[str, float]) -> tuple[float, str | None]:
        """Best weighted code overlap, normalised by the case's strongest code, and that code."""
        if not scores:
            return 0.0, None
        top = max(scores.values())
        best, best_code = 0.0, None
        for position, code in enumerate(dept.specialties):
            value = scores.get(code, 0.0) * (1.0 if position == 0 else SECONDARY_CODE_FACTOR)
            if value > best:
                best, best_code = value, code
        return best / top, best_code

    def query_vector(self, case: Case, message: Message) -> np.ndarray:
        """The case's words embedded: on a first message without negations, the message's own vector; else
        encoded once per turn (the dialogue and the ranking both ask: the engine's embedder remembers recent texts)."""
        if case.search_text == message.normalized:
            return message.vector
        return self.index.embedder.embed([case.search_text])[0]

    def routing_confidence(self, case: Case, message: Message) -> float:
        """How sure the routing classifier is of one specialty (0 for Chinese, which the model cannot read)."""
        if self.learned is None:
            return 0.0
        probabilities = self.learned.specialty.probabilities(self.query_vector(case, message))[0]
        return float(probabilities.max()) * (1 - case.chinese_share)

    def code_scores(self, case: Case, query_vector: np.ndarray) -> dict[str, float]:
        """The vocabulary's codes (scaled so the strongest is 1) plus the routing classifiers' probabilities.

        The vocabulary is precise on the words it lists; the classifiers read the words it does not: for the English
        share of the case one over the embedding (meaning) and one over word n-grams (the lay words the embedding
        blurs), for the Chinese share one over character n-grams."""
        vocabulary = self.understander.specialty_scores(case)
        top = max(vocabulary.values(), default=0.0)
        scores = {code: weight / top for code, weight in vocabulary.items()} if top > 0 else {}
        if self.learned is None or not (self.weights.learned or self.weights.learned_words):
            return scores
        # beside the vocabulary's strongest code (1) the classifiers break ties; alone they rank (fit is relative)
        english, chinese = 1 - case.chinese_share, self.weights.learned * case.chinese_share
        learned = [(self.learned.specialty, self.learned.specialty.probabilities(query_vector)[0],
                    self.weights.learned * english),
                   (self.learned.specialty_words, self.learned.specialties_from_words(case.search_text),
                    self.weights.learned_words * english)]
        if chinese:
            learned.append((self.learned.chinese_specialty, self.learned.chinese_specialties(case.search_text),
                            chinese))
        for model, probabilities, weight in learned:
            for code, probability in zip(model.labels, probabilities, strict=True):
                scores[code] = scores.get(code, 0.0) + weight * float(probability)
        return {code: value for code, value in scores.items() if value > 0}

    def rank(self, case: Case, message: Message, hospital_id: str | None = None,
             limit: int = 10) -> list[Recommendation]:
        query_vector = self.query_vector(case, message)
        scores = self.code_scores(case, query_vector)
        audiences = self.understander.audiences(case)
        eligible = [d for d in self.departments.values() if self.eligible(d, audiences, hospital_id)]
        if not eligible:
            return []
        where = {"hospital_id": hospital_id} if hospital_id else None
        dense_chunks = self.index.dense(query_vector, k=min(len(self.index.chunks), self.weights.dense_k),
                                        where=where)
        lexical_chunks = self.index.lexical(case.search_text)
        claim_relevance = self._claim_relevance(dense_chunks)
        dense = self._best_per_department(dense_chunks)
        lexical = self._best_per_department(lexical_chunks)
        dense_rank, lexical_rank = rank_by_score(dense), rank_by_score(lexical)
        k = self.weights.rrf_k
        # the packaged embedding model reads English only: a Chinese message's dense scores are noise
        dense_weight = self.weights.dense * (1 - case.chinese_share)

        candidates = []
        for dept in eligible:
            fit, code = self.specialty_fit(dept, scores)
            rrf_dense = (k + 1) / (k + dense_rank[dept.id]) if dept.id in dense_rank else 0.0
            rrf_lexical = (k + 1) / (k + lexical_rank[dept.id]) if dept.id in lexical_rank else 0.0
            prior = self.standing.get((dept.id, code), 0.0) * fit
            total = (self.weights.specialty * fit + dense_weight * rrf_dense
                     + self.weights.lexical * rrf_lexical + self.weights.reputation * prior)
            signals = {"specialty": fit, "dense": rrf_dense, "lexical": rrf_lexical, "reputation": prior}
            candidates.append((total, dept, code, signals))

        candidates.sort(key=lambda item: item[0], reverse=True)
        floor = self.weights.relevance_floor * candidates[0][0]
        ranked = [
            self._candidate(dept, total, code, signals, case, claim_relevance)
            for total, dept, code, signals in [c for c in candidates if c[0] >= floor][:limit * 3]
        ]
        ranked = diversify(ranked, top=3 if hospital_id is None else 0)
        likely = likely_specialties(scores, ranked[0].specialties[0], self.weights.runner_up_share, CARDS_SHOWN - 1)
        # a likely specialty gets its best department even when the relevance floor dropped it
        below_floor = [next(c for c in candidates if c[2] == code) for code in likely
                       if all(card.specialties[0] != code for card in ranked) and any(c[2] == code for c in candidates)]
        pool = ranked + [self._candidate(dept, total, code, signals, case, claim_relevance)
                         for total, dept, code, signals in below_floor]
        return with_likely_specialties(ranked, likely, pool)[:limit]

    def _best_per_department(self, chunk_scores: dict[str, float]) -> dict[str, float]:
        best: dict[str, float] = {}
        for chunk_id, score in chunk_scores.items():
            department_id = chunk_id.split("#", 1)[0]
            if score > best.get(department_id, float("-inf")):
                best[department_id] = score
        return best

    def _claim_relevance(self, dense_chunks: dict[str, float]) -> dict[str, dict[int, float]]:
        """The dense scores of the claims found, by department and claim number."""
        relevance: dict[str, dict[int, float]] = defaultdict(dict)
        for chunk_id, score in dense_chunks.items():
            if (chunk := self.claim_chunks.get(chunk_id)) is not None:
                relevance[chunk.department_id][chunk.claim] = score
        return relevance

    def _candidate(self, dept: Department, total: float, code: str | None, signals: dict[str, float],
                   case: Case, claim_relevance: dict[str, dict[int, float]]) -> Recommendation:
        return Recommendation(
            hospital_id=dept.hospital_id,
            department_id=dept.id,
            specialties=[code, *(c for c in dept.specialties if c != code)] if code else list(dept.specialties),
            score=round(total, 4),
            why=self.why(dept, code, case),
            evidence=self.evidence(dept, code, claim_relevance.get(dept.id, {})),
            signals={name: round(value, 4) for name, value in signals.items()},
        )

    def why(self, dept: Department, code: str | None, case: Case) -> str:
        """One sentence built only from the case's own words and the department's data; what is behind the patient
        ("the Kasai failed") is named only when nothing current matched."""
        hospital = self.kb.hospitals[dept.hospital_id]
        specialty = self.kb.specialties[code or dept.specialties[0]].name
        matched = case.terms_for(code)
        short = hospital.aliases[0] if hospital.aliases else hospital.name
        if matched:
            reason = f"{specialty} at {short} for {', '.join(matched[:3])}"
        else:
            reason = f"{specialty} at {short}, whose profile is close to what you described"
        places = sorted(latest_places(dept.rankings, code), key=reputation, reverse=True)
        standing = f"; {describe_place(places[0], specialty)}" if places else ""
        return f"{reason}{standing}."

    def evidence(self, dept: Department, code: str | None, found: dict[int, float]) -> list[Evidence]:
        """The department's claims most relevant to this case (`found`: the dense scores of its claims the search
        returned, by claim number), each with its first source."""
        claims = dept.claims()
        relevance = {i: found.get(i, 0.0) for i in range(len(claims))}
        chosen = sorted(relevance, key=relevance.get, reverse=True)[:EVIDENCE_PER_DEPARTMENT]
        evidence = [Evidence(source_id=claims[i].sources[0], quote=claims[i].text) for i in sorted(chosen)]
        places = latest_places(dept.rankings, code)
        cited = {item.source_id for item in evidence}
        if places and not cited.intersection(source for place in places for source in place.sources):
            best = max(places, key=reputation)
            evidence.append(Evidence(source_id=best.sources[0],
                                     quote=describe_place(best, self.kb.specialties[best.code].name)))
        if not evidence:
            evidence.append(Evidence(source_id=dept.sources[0], quote=dept.summary))
        return evidence


def likely_specialties(scores: dict[str, float], first: str, share: float, most: int) -> list[str]:
    """Other specialties at least `share` of the first card's specialty score, most likely first."""
    if share <= 0 or not scores:
        return []
    bar = share * scores.get(first, 0.0)
    others = sorted((code for code in scores if code != first and scores[code] >= bar), key=scores.get, reverse=True)
    return others[:most]


def with_likely_specialties(ranked: list[Recommendation], likely: list[str], pool: list[Recommendation],
                            shown: int = CARDS_SHOWN) -> list[Recommendation]:
    """Each likely specialty not yet on a shown card takes the place of the last card whose specialty repeats.

    Symptoms alone often fit two or three specialties ("swollen ankles, needs pillows to breathe": the heart or the
    kidneys); three hospitals of one guess hide the others. A named diagnosis leaves the others far behind, and
    its three cards stay three hospitals of one specialty. Moved cards stay in the list, after the shown ones."""
    head = list(ranked[:shown])
    for code in likely:
        if any(card.specialties[0] == code for card in head):
            continue
        on_show = {card.department_id for card in head}
        best = next((card for card in pool if card.specialties[0] == code and card.department_id not in on_show), None)
        if best is None:
            continue
        if len(head) >= shown:
            counts = Counter(card.specialties[0] for card in head)
            repeats = [i for i in range(len(head) - 1, 0, -1) if counts[head[i].specialties[0]] > 1]
            if not repeats:
                break
            head.pop(repeats[0])
        head.append(best)
    on_show = {card.department_id for card in head}
    return head + [card for card in ranked if card.department_id not in on_show]


def diversify(ranked: list[Recommendation], top: int) -> list[Recommendation]:
    """At most one department per hospital in the first `top` places; the rest keep their order."""
    if top <= 0:
        return ranked
    head: list[Recommendation] = []
    rest: list[Recommendation] = []
    seen: set[str] = set()
    for candidate in ranked:
        if len(head) < top and candidate.hospital_id not in seen:
            head.append(candidate)
            seen.add(candidate.hospital_id)
        else:
            rest.append(candidate)
    return head + rest
