"""The one way a data file is read: YAML parsed, then validated by a pydantic model.

Every file the product runs on (knowledge, contracts, safety rules, dialogue, prompts' questions)
goes through `load_yaml`, so a broken one always fails the same way: a `DataFileError` whose
message names the file and the field, which the command line and the app print as one line
before exiting with code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
START_REFUSED_EXIT_CODE = 2


class DataFileError(Exception):
    """A data file is missing or wrong; the message names the file and, where there is one, the field."""


class Strict(BaseModel):
    """Data files are reviewed like code: an unknown field is a typo, not something to ignore."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_yaml(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        raise DataFileError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from error


def field_errors(path: Path, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        problems.append(f"{path}: field '{where}': {item['msg']}")
    return "\n".join(problems)


def load_yaml(path: Path, model: type[ModelT]) -> ModelT:
    data = read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise DataFileError(field_errors(path, error)) from error
    except ValueError as error:  # a model's own check outside a field validator
        raise DataFileError(f"{path}: {error}") from error


def first_line(error: Exception) -> str:
    """What a refused start prints: the first problem, on one line (the rest follow from fixing it)."""
    lines = str(error).splitlines() or ["unknown problem"]
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return f"{lines[0]}{more}"
