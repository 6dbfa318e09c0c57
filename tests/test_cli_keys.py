"""`python -m assistant keys` and `purge`: what an operator runs to give a hospital its inbox key."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from assistant.settings import PROJECT_ROOT


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CARE_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "assistant", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_key_is_printed_once_stored_as_a_hash_listed_and_revoked(tmp_path: Path) -> None:
    created = run(tmp_path, "keys", "create", "--hospital", "renji")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("care_") and "shown only this once" in created.stderr
    key_id, secret = key.split("_")[1], key.split("_", 2)[2]
    with sqlite3.connect(tmp_path / "care.db") as db:
        assert db.execute("select hospital_id from inbox_keys where id = ?", (key_id,)).fetchone() == ("renji",)
    assert secret.encode() not in (tmp_path / "care.db").read_bytes()

    assert f"{key_id}  renji" in run(tmp_path, "keys", "list").stdout
    assert run(tmp_path, "keys", "revoke", key_id).returncode == 0
    assert "revoked" in run(tmp_path, "keys", "list").stdout
    assert run(tmp_path, "keys", "revoke", key_id).returncode == 1  # already revoked: said, not silent


def test_a_key_for_an_unknown_hospital_is_refused_listing_the_known_ids(tmp_path: Path) -> None:
    refused = run(tmp_path, "keys", "create", "--hospital", "mayo")
    assert refused.returncode == 2 and "renji" in refused.stderr and not refused.stdout.strip()


def test_purge_reports_what_it_removed(tmp_path: Path) -> None:
    purged = run(tmp_path, "purge")
    assert purged.returncode == 0 and "purged 0 conversation(s) untouched for 30 days" in purged.stdout
