"""The project owns its contracts; the shared copies stay the reference while they are beside the clone.

`knowledge/contracts/` holds the specialty codes and hospital ids, `evals/FORMAT.md` the case-file
format. A clone with nothing beside it runs on these alone; where `../shared` exists, every code,
hospital id and format line it states must be in the project's copy (the project may add hospitals).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from assistant.datafile import DataFileError
from assistant.knowledge import load_hospital_ids, load_knowledge, load_specialties
from assistant.settings import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared"
KNOWLEDGE = PROJECT_ROOT / "knowledge"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is not beside this clone: the project's "
                                                               "own contracts are the only ones, nothing to compare")


@needs_shared
def test_every_shared_specialty_code_is_in_the_projects_contract_with_the_same_meaning() -> None:
    ours = load_specialties(KNOWLEDGE)
    shared = yaml.safe_load((SHARED / "specialties.yaml").read_text(encoding="utf-8"))
    for group in ("adult", "pediatric"):
        for row in shared[group]:
            assert row["code"] in ours, f"shared code '{row['code']}' missing from knowledge/contracts"
            mine = ours[row["code"]]
            assert (mine.name, mine.scope, mine.pediatric) == (row["name"], row.get("scope", ""),
                                                               bool(row.get("pediatric", False)))


@needs_shared
def test_every_shared_hospital_id_is_in_the_projects_contract_with_the_same_names() -> None:
    ours = load_hospital_ids(KNOWLEDGE)
    for row in yaml.safe_load((SHARED / "hospitals.yaml").read_text(encoding="utf-8")):
        assert row["id"] in ours, f"shared hospital id '{row['id']}' missing from knowledge/contracts"
        assert (ours[row["id"]].name, ours[row["id"]].zh) == (row["name"], row.get("zh", ""))


@needs_shared
def test_the_case_file_format_is_the_shared_one() -> None:
    assert (PROJECT_ROOT / "evals" / "FORMAT.md").read_text(encoding="utf-8") == \
        (SHARED / "eval-format.md").read_text(encoding="utf-8")


def test_a_broken_contract_names_the_file_and_the_field(knowledge_copy: Path) -> None:
    path = knowledge_copy / "contracts" / "specialties.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["adult"][0]["name"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DataFileError, match=r"specialties\.yaml: field 'adult\.0\.name'"):
        load_knowledge(knowledge_copy)


def test_a_missing_contract_refuses_every_command_with_one_line_and_exit_code_2(knowledge_copy: Path,
                                                                                tmp_path: Path) -> None:
    (knowledge_copy / "contracts" / "hospitals.yaml").unlink()
    env = {**os.environ, "CARE_KNOWLEDGE_DIR": str(knowledge_copy), "CARE_DATA_DIR": str(tmp_path)}
    for command in (["-m", "assistant", "index"], ["-m", "assistant", "keys", "create", "--hospital", "renji"],
                    ["-m", "evals", "run", "--cases", "evals/cases/dev.jsonl", "--out", str(tmp_path / "r.json")]):
        done = subprocess.run([sys.executable, *command], cwd=PROJECT_ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.strip().splitlines() == [f"refused: {knowledge_copy}/contracts/hospitals.yaml: "
                                                    "file not found"], command
