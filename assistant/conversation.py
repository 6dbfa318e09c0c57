"""One person's conversation: all its state lives here, never on the shared assistant.

It is a pydantic model so that storage is `model_dump_json` / `model_validate_json`: any copy of the
web app can load a conversation another copy saved and continue it.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from assistant.case import Case
from assistant.reply import SEVERITY, Level, Recommendation, ReferralSummary


class Turn(BaseModel):
    """One exchange as the user saw it."""

    user: str
    reply: str
    triage: Level
    latency_ms: float
    phrasing: str = "template"  # or "model", or why the model's answer was not used


class Conversation(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    widget_hospital: str | None = None
    language: str | None = None  # the language the page or widget asked for; the text's own wins
    case: Case = Field(default_factory=Case)
    turns: list[Turn] = Field(default_factory=list)
    asked: list[str] = Field(default_factory=list)
    shortlist: list[Recommendation] = Field(default_factory=list)
    focus: int | None = None  # the recommendation the user last asked about
    chosen: int | None = None
    in_shanghai: bool = False
    highest_triage: Level = "routine"
    referral: ReferralSummary | None = None

    def note_triage(self, level: Level) -> None:
        if SEVERITY[level] > SEVERITY[self.highest_triage]:
            self.highest_triage = level

    def start_over(self) -> None:
        """A new case in the same conversation: what was said stays in the history, nothing else."""
        self.case, self.asked, self.shortlist = Case(), [], []
        self.focus = self.chosen = None
        self.referral = None
