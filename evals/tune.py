"""`python -m evals tune`: choose the classifiers' decision values on the dev cases, and nothing else.

The emergency thresholds give the dev cases at least `RECALL_TARGET` emergency recall together with the rules and
numbers, and as much more as `FALSE_ALARM_BUDGET` allows: a missed emergency is the worst error, and every blind set
so far fell short of its dev recall (the rules were written on dev) while its false alarms stayed well under the
issue's ceiling of 8%. Among equal recall, the classifier's own recall counts next: the rules were written on these
cases, so their recall here flatters them, and on words nobody here wrote the classifier is what is left, so the
budget goes to its sensitivity even where the rules already catch a case. Then the fewest false alarms, then the
most sensitive sentence threshold (never below the whole message's: one sentence must be as sure as the message) and
then the least sensitive message threshold;
the urgent threshold best separates urgent-or-worse from routine. The blind set is never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from assistant.engine import Engine
from assistant.reply import SEVERITY
from evals.cases import EvalCase

RECALL_TARGET = 0.98  # issue 12: the threshold is chosen on dev for at least 0.98 emergency recall
# False alarms on dev the thresholds may spend on more recall: blind sets ran up to 3.3 points above dev, and the
# issue allows 8% (dev 1,586 cases at 2026-12-03: recall 98.0% at 1.8% false alarms, 99.5% at 2.5%). Lowered
# from 3% to 2% on 2026-12-04: with 600 more hard emergencies in training, 3% let the message threshold fall to
# -0.4, where the safety tests' own near-misses (6.9%, ceiling 6%) and urgent messages (7 of 61, ceiling 10%)
# failed; at 2% (-0.15) both hold, for one dev emergency of 580 (recall 99.5% to 99.3%). Raised to 3% on 2026-12-04
# (session 8): with blind7 read into dev (2,866 cases), 2% bought only 98.3% recall (message threshold 0.3), and 2.5%
# 99.0%, 3% 99.2%; the rules now read who the patient is and what is over, and the safety tests' near-misses stay
# far under their ceiling at 3% (checked by `make test`). Lowered to 1.5% on 2026-12-05 (session 9): with the four
# oldest blind sets and 1,000 new lines learned from, tuning on the 1,591 cases left gives 100% recall at every
# budget from 1.5% to 3%, so the budget only buys classifier sensitivity; at 2.5% and 3% (message threshold -0.45,
# -0.5) the safety tests' urgent messages called emergencies rose from 3 of 61 to 6 and 8, and at 2% (-0.25) the
# safety test's "saved up my tablets so I don't run out while travelling, and I wrote a letter to my kids about the
# trip" (-0.16) became a crisis.
FALSE_ALARM_BUDGET = 0.015
MESSAGE_GRID = np.round(np.arange(-1.0, 2.01, 0.05), 2)
SENTENCE_GRID = np.round(np.arange(0.0, 3.01, 0.05), 2)
PROBABILITY_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)
MISS_COST = 5


@dataclass
class Scored:
    """One dev case as the three triage readers see it, the classifier as raw decision values."""

    gold: str
    without_classifier: str  # the rules' and numbers' highest level over the case's turns
    whole: float  # the highest whole-message emergency value over the turns (-inf when not read)
    sentence: float  # the highest sentence-about-now emergency value
    urgent: float
    chinese: float  # the Chinese model's highest emergency probability over the case's Chinese turns


def score_case(engine: Engine, case: EvalCase) -> Scored:
    safety = engine.safety
    level, whole, sentence, urgent, chinese = "routine", -np.inf, -np.inf, -np.inf, -np.inf
    learned, thresholds = safety.learned, safety.thresholds
    safety.learned = None  # the rules and numbers alone
    try:
        for turn in case.turns:
            message = engine.read(turn)
            found = safety.triage(message).level
            level = found if SEVERITY[found] > SEVERITY[level] else level
            if message.is_chinese:
                about_now = [clause.text for clause in safety.clauses(message.normalized) if clause.counts]
                if about_now:
                    chinese = max(chinese, float(learned.chinese_emergency_probability(about_now).max()))
                continue
            whole = max(whole, float(learned.emergency_values(message.vector, [message.normalized])[0]))
            urgent = max(urgent, float(learned.urgent.decision(message.vector)[0]))
            about_now = [i for i, text in enumerate(message.sentences)
                         if any(clause.counts for clause in safety.clauses(text))]
            if about_now:
                values = learned.emergency_values(message.sentence_vectors[about_now],
                                                  [message.sentences[i] for i in about_now])
                sentence = max(sentence, float(values.max()))
    finally:
        safety.learned, safety.thresholds = learned, thresholds
    return Scored(case.expect.triage, level, whole, sentence, urgent, chinese)


def choose(scored: list[Scored]) -> dict[str, float]:
    gold = np.array([s.gold == "emergency" for s in scored])
    ruled = np.array([s.without_classifier == "emergency" for s in scored])
    chinese = np.array([s.chinese for s in scored])
    t_chinese = chinese_threshold(chinese, ruled, gold)
    ruled = ruled | (chinese >= t_chinese)  # the English thresholds answer for what rules and Chinese leave
    whole = np.array([s.whole for s in scored])
    sentence = np.array([s.sentence for s in scored])
    best: tuple | None = None
    for t_message in MESSAGE_GRID:
        for t_sentence in SENTENCE_GRID[t_message <= SENTENCE_GRID]:
            by_classifier = (whole >= t_message) | (sentence >= t_sentence)
            called = ruled | by_classifier
            recall = called[gold].mean()
            false_alarms = called[~gold].mean()
            if recall >= RECALL_TARGET:
                over_budget = max(false_alarms - FALSE_ALARM_BUDGET, 0.0)
                classifier_recall = by_classifier[gold].mean()
                key = (over_budget, -recall, -classifier_recall, false_alarms, t_sentence, -t_message)
                if best is None or key < best[0]:
                    best = (key, t_message, t_sentence, recall, false_alarms)
    if best is None:
        raise SystemExit(f"no thresholds reach {RECALL_TARGET:.1%} emergency recall on the dev cases")
    _, t_message, t_sentence, recall, false_alarms = best

    needs_doctor = np.array([s.gold != "routine" for s in scored])
    not_emergency = ~gold
    urgent = np.array([s.urgent for s in scored])
    ruled_urgent = np.array([s.without_classifier != "routine" for s in scored])
    best_urgent = max(MESSAGE_GRID, key=lambda t: balanced_accuracy(
        (ruled_urgent | (urgent >= t))[not_emergency], needs_doctor[not_emergency]))
    return {"emergency_message": float(t_message), "emergency_sentence": float(t_sentence),
            "urgent_message": float(best_urgent), "emergency_chinese": t_chinese,
            "recall": round(float(recall), 4), "false_alarms": round(float(false_alarms), 4)}


def chinese_threshold(chinese: np.ndarray, ruled: np.ndarray, gold: np.ndarray) -> float:
    """There are too few Chinese dev cases for a recall target: a missed emergency costs `MISS_COST` false alarms,
    and among equal costs the higher threshold wins."""
    read = np.isfinite(chinese)
    def cost(threshold: float) -> float:
        called = ruled | (chinese >= threshold)
        return MISS_COST * float((read & gold & ~called).sum()) + float((read & ~gold & called).sum())
    return float(min(PROBABILITY_GRID[::-1], key=cost))


def balanced_accuracy(predicted: np.ndarray, gold: np.ndarray) -> float:
    positives, negatives = predicted[gold], predicted[~gold]
    return (positives.mean() if len(positives) else 1.0) / 2 + (1 - negatives.mean() if len(negatives) else 1.0) / 2


def tune(engine: Engine, cases: list[EvalCase], case_files: list[str], out: Path) -> dict[str, float]:
    triage_cases = [case for case in cases if case.expect and case.expect.triage]
    chosen = choose([score_case(engine, case) for case in triage_cases])
    document = {
        "models": engine.models.fingerprint,
        "emergency_message": chosen["emergency_message"],
        "emergency_sentence": chosen["emergency_sentence"],
        "urgent_message": chosen["urgent_message"],
        "emergency_chinese": chosen["emergency_chinese"],
        "chosen_on": f"{len(triage_cases)} dev cases with a triage label: {', '.join(case_files)}",
        "dev": {"emergency_recall": chosen["recall"], "false_alarms": chosen["false_alarms"]},
    }
    header = ("# Decision values of the classifiers in assistant/learned.py, chosen on the dev cases by "
              "`python -m evals tune`.\n# They belong to one set of trained models (`models`); changed training "
              "data means tuning again.\n")
    out.write_text(header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return chosen
