"""The typed results a turn returns: what the web app, the API and the evaluation runner read."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Level = Literal["emergency", "urgent", "routine"]
SEVERITY: dict[str, int] = {"routine": 0, "urgent": 1, "emergency": 2}


class Evidence(BaseModel):
    """A sentence from the knowledge and the source that says it."""

    source_id: str
    quote: str


class Recommendation(BaseModel):
    """A ranked department: what the matcher found, what the cards show and what the API returns."""

    hospital_id: str
    department_id: str
    specialties: list[str]  # the code it matched first
    score: float
    why: str
    evidence: list[Evidence]
    signals: dict[str, float] = Field(default_factory=dict)  # specialty, dense, lexical, reputation


class IntakeItem(BaseModel):
    topic: str
    title: str
    text: str
    sources: list[str]


class Reply(BaseModel):
    text: str
    triage: Level
    out_of_scope: bool
    recommendations: list[Recommendation]
    question: str | None
    intake: list[IntakeItem] | None


class ReferralSummary(BaseModel):
    """Only what the user wrote, plus the department they chose: shown for review before any sending."""

    patient: dict[str, str | float | None]
    what_they_wrote: list[str]
    conditions_mentioned: list[str]
    treatments_mentioned: list[str]
    history_mentioned: list[str] = []  # treatments already behind the patient (referrals sent before: empty)
    tests_mentioned: list[str] = []
    goals: list[str]
    hospital_id: str | None
    department_id: str | None
    questions_for_the_team: list[str]
