"""Read case files (JSON Lines): bad lines are reported with their number and skipped, never fatal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Expect(BaseModel):
    model_config = ConfigDict(extra="allow")
    triage: Literal["emergency", "urgent", "routine"] | None = None
    specialties: list[str] | None = None
    hospitals: list[str] | None = None
    out_of_scope: bool | None = None


class EvalCase(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    turns: list[str] = Field(min_length=1)
    widget: str | None = None
    expect: Expect | None = None


@dataclass
class CaseFile:
    cases: list[EvalCase]
    problems: list[str]


def read_cases(path: Path) -> CaseFile:
    cases: list[EvalCase] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = EvalCase.model_validate(json.loads(line))
        except json.JSONDecodeError as error:
            problems.append(f"{path}:{number}: not valid JSON ({error.msg})")
            continue
        except ValidationError as error:
            fields = ", ".join(".".join(str(p) for p in item["loc"]) for item in error.errors())
            problems.append(f"{path}:{number}: invalid case ({fields})")
            continue
        if case.id in seen:
            problems.append(f"{path}:{number}: duplicate id '{case.id}'")
            continue
        seen.add(case.id)
        cases.append(case)
    return CaseFile(cases, problems)
