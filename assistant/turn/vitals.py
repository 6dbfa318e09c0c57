"""Vital signs read from the words of a message and held against published thresholds.

Why: a number can decide alone ("sats 86%", "BP 78/40", "fever 105F") where no word sounds alarming,
and a classifier over sentence meaning does not read numbers. The thresholds, each with its source,
live in knowledge/safety/guidance.yaml (NEWS2, NICE NG51 and NG143, ESI, NHS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from assistant.datafile import Strict

Measure = Literal["spo2", "respiratory_rate", "systolic_bp", "diastolic_bp", "pulse", "temperature_c",
                  "blood_glucose_mmol"]
AgeGroup = Literal["adult", "child_1_5", "child_under_1", "infant_under_3_months", "any"]

_NUMBER = r"(\d{1,3}(?:\.\d+)?)"
_GAP = r"[^0-9.,;]{0,18}?"  # a few words between a measure's name and its number ("sats were down to"), one clause
PATTERNS: dict[str, list[re.Pattern[str]]] = {
    "temperature": [
        re.compile(rf"(?:temp\w*|fever|febrile|体温|发烧|发热|高烧){_GAP}{_NUMBER}\s*(°\s*[cf]|℃|℉|degrees?\s*[cf]?\w*|度|c\b|f\b)?"),
        re.compile(rf"{_NUMBER}\s*(°\s*[cf]|℃|℉|degrees? (?:celsius|centigrade|fahrenheit|c|f)\b|°)"),
    ],
    "spo2": [re.compile(r"(?:spo2|sp02|sats?\b|saturation\w*|oxygen(?: level| sat\w*)?|o2(?: sat\w*)?|血氧(?:饱和度)?"
                        rf"|氧饱和度){_GAP}{_NUMBER}\s*%?"),
             # the device in lay words ("my finger monitor keeps reading 86%"): only with a percent sign
             re.compile(r"(?:oximeter|pulse ?ox\w*|finger (?:monitor|clip|probe|sensor|gadget|thing|device|meter)"
                        r"|(?:oxygen|o2) (?:monitor|reading|meter)|血氧仪|指夹)"
                        rf"{_GAP}{_NUMBER}\s*(?:-\s*\d{{1,3}}\s*)?%")],
    "respiratory_rate": [
        re.compile(rf"(?:resp\w*(?: rate)?|rr|breathing(?: rate)?|呼吸(?:频率)?){_GAP}{_NUMBER}"
                   r"\s*(?:times|breaths?|次)?\s*(?:a|per|/|每)\s*(?:min|分)"),
        re.compile(rf"(?:resp\w* rate|rr|呼吸频率)\s*(?:is|was|of|at|:)?\s*{_NUMBER}"),
        re.compile(rf"{_NUMBER}\s*breaths?\s*(?:a|per|/)\s*min"),
    ],
    "blood_pressure": [re.compile(rf"(?:bp|blood pressure|pressure|血压){_GAP}(\d{{2,3}})\s*(?:/|over)\s*(\d{{2,3}})"),
                       re.compile(r"(\d{2,3})\s*/\s*(\d{2,3})\s*(?:mm ?hg|毫米汞柱)")],
    "pulse": [re.compile(r"(?:pulse(?! ?ox)|heart ?rate|\bhr\b|heart (?:is )?(?:beating|racing|going)(?: at)?"
                         rf"|心率|脉搏|心跳){_GAP}{_NUMBER}"),
              re.compile(rf"{_NUMBER}\s*(?:bpm|beats? (?:a|per) min)")],
    "glucose": [re.compile(rf"(?:sugar|glucose|\bbg\b|\bbgl\b|\bbm\b|血糖){_GAP}{_NUMBER}\s*(mmol|mg)?")],
}


@dataclass(frozen=True)
class Vital:
    measure: str
    value: float
    said: str  # the words it was read from, for the reply's reason and for tests


def _temperature(value: float, unit: str | None) -> float | None:
    unit = (unit or "").replace(" ", "")
    fahrenheit = "f" in unit or "℉" in unit or (not any(mark in unit for mark in ("c", "℃", "度")) and value > 45)
    celsius = (value - 32) * 5 / 9 if fahrenheit else value
    return round(celsius, 1) if 25 <= celsius <= 45 else None  # outside: not a body temperature


def read_vitals(text: str) -> list[Vital]:
    """Every plausible vital sign in a (normalised) clause; implausible numbers (a year, a dose) are skipped."""
    found: list[Vital] = []
    for pattern in PATTERNS["temperature"]:
        for match in pattern.finditer(text):
            celsius = _temperature(float(match.group(1)), match.group(2))
            if celsius is not None:
                found.append(Vital("temperature_c", celsius, match.group(0)))
    for measure, low, high in (("spo2", 50, 100), ("respiratory_rate", 4, 100), ("pulse", 20, 250)):
        for pattern in PATTERNS[measure]:
            for match in pattern.finditer(text):
                value = float(match.group(1))
                if low <= value <= high:
                    found.append(Vital(measure, value, match.group(0)))
    for pattern in PATTERNS["blood_pressure"]:
        for match in pattern.finditer(text):
            systolic, diastolic = float(match.group(1)), float(match.group(2))
            if 40 <= systolic <= 300 and 20 <= diastolic <= 200 and systolic > diastolic:
                said = match.group(0)
                found += [Vital("systolic_bp", systolic, said), Vital("diastolic_bp", diastolic, said)]
    for pattern in PATTERNS["glucose"]:
        for match in pattern.finditer(text):
            value = float(match.group(1))
            mmol = value / 18 if match.group(2) == "mg" or value > 40 else value
            if 0.5 <= mmol <= 60:
                found.append(Vital("blood_glucose_mmol", round(mmol, 1), match.group(0)))
    return found


class Threshold(Strict):
    measure: Measure
    age: AgeGroup
    source: str
    note: str
    emergency_below: float | None = None
    emergency_above: float | None = None
    urgent_below: float | None = None
    urgent_above: float | None = None

    def level(self, value: float) -> Literal["emergency", "urgent", "routine"]:
        def past(below: float | None, above: float | None) -> bool:
            return (below is not None and value < below) or (above is not None and value > above)

        if past(self.emergency_below, self.emergency_above):
            return "emergency"
        return "urgent" if past(self.urgent_below, self.urgent_above) else "routine"


class VitalThresholds(Strict):
    """The `vital_signs` part of knowledge/safety/guidance.yaml."""

    vital_signs: list[Threshold] = Field(min_length=1)

    def judge(self, vitals: list[Vital], age: AgeGroup) -> tuple[Literal["emergency", "urgent", "routine"],
                                                                  Vital | None, Threshold | None]:
        """The highest level any number reaches for this patient's age group, with the number and rule."""
        ages = {"adult": ("adult", "any"), "child_1_5": ("child_1_5", "any"),
                "child_under_1": ("child_under_1", "any"),
                "infant_under_3_months": ("infant_under_3_months", "child_under_1", "any")}[age]
        order = {"routine": 0, "urgent": 1, "emergency": 2}
        best: tuple = ("routine", None, None)
        for vital in vitals:
            for threshold in self.vital_signs:
                if threshold.measure == vital.measure and threshold.age in ages:
                    level = threshold.level(vital.value)
                    if order[level] > order[best[0]]:
                        best = (level, vital, threshold)
        return best
