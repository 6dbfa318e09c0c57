"""Damaged storage never passes for healthy: an emptied database, a damaged write-ahead log or a damaged page
refuses the start or takes the service out of "ready", with a line that says which file and what to do."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.store.database import Store
from assistant.store.integrity import StoreDamaged
from assistant.web.app import create_app

REFERRALS = 300


def store_with_referrals(folder: Path) -> Store:
    """Three hundred referrals, all still in the write-ahead log (one generation of it: no checkpoint)."""
    store = Store.open(f"sqlite:///{folder / 'care.db'}")
    with store.engine.connect() as connection:  # the pooled connection keeps this setting
        connection.exec_driver_sql("PRAGMA wal_autocheckpoint=100000")
    for number in range(REFERRALS):
        store.add_referral(f"key-{number}", "hash", f"conversation-{number}", "ruijin", "ruijin/hematology",
                           f"contact-{number}@example.org", {"summary": "x" * 400})
    return store


def copy_while_open(store_folder: Path, target: Path) -> Path:
    """The files as a crash would leave them: the log still holds commits the main file lacks."""
    target.mkdir()
    for name in ("care.db", "care.db-wal"):
        shutil.copy(store_folder / name, target / name)
    return target / "care.db"


def rows_sqlite_would_show(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT count(*) FROM referrals").fetchone()[0]


def test_an_emptied_database_file_refuses_the_start_instead_of_starting_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "care.db").write_bytes(b"")
    with pytest.raises(StoreDamaged, match=r"care\.db is empty \(0 bytes\).*restore it from a backup"):
        Store.open(f"sqlite:///{tmp_path / 'care.db'}")
    assert (tmp_path / "care.db").stat().st_size == 0  # nothing was created over it


def test_a_damaged_write_ahead_log_refuses_the_start_before_sqlite_drops_commits(tmp_path: Path) -> None:
    store = store_with_referrals(tmp_path / "live")
    crashed = copy_while_open(tmp_path / "live", tmp_path / "crashed")
    store.close()
    log = bytearray((crashed.parent / "care.db-wal").read_bytes())
    middle = len(log) // 3
    log[middle:middle + 64] = random.Random(7).randbytes(64)
    (crashed.parent / "care.db-wal").write_bytes(log)
    with pytest.raises(StoreDamaged, match=r"care\.db-wal: the frame at byte \d+ is damaged"):
        Store.open(f"sqlite:///{crashed}")
    evidence = shutil.copytree(crashed.parent, tmp_path / "evidence")
    assert rows_sqlite_would_show(evidence / "care.db") < REFERRALS  # what opening anyway would have lost


def test_a_log_whose_last_write_was_torn_opens_as_sqlite_recovers_it(tmp_path: Path) -> None:
    store = store_with_referrals(tmp_path / "live")
    crashed = copy_while_open(tmp_path / "live", tmp_path / "crashed")
    store.close()
    log = bytearray((crashed.parent / "care.db-wal").read_bytes())
    log[-100:] = random.Random(8).randbytes(100)  # a crash in the middle of the last frame
    (crashed.parent / "care.db-wal").write_bytes(log)
    reopened = Store.open(f"sqlite:///{crashed}")
    assert len(reopened.referrals("ruijin")) == REFERRALS - 1
    reopened.close()


def damage_a_page(database: Path) -> None:
    """Random bytes over the first half of the referrals table's root page, which every read of them passes."""
    with sqlite3.connect(database) as connection:
        (root,) = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'referrals'").fetchone()
        (page,) = connection.execute("PRAGMA page_size").fetchone()
    connection.close()
    data = bytearray(database.read_bytes())
    start = (root - 1) * page
    data[start:start + page // 2] = random.Random(9).randbytes(page // 2)
    database.write_bytes(data)


def test_a_damaged_page_refuses_the_start(tmp_path: Path) -> None:
    store_with_referrals(tmp_path).close()  # a clean stop: every commit is in the main file
    assert not (tmp_path / "care.db-wal").exists() or (tmp_path / "care.db-wal").stat().st_size == 0
    damage_a_page(tmp_path / "care.db")
    with pytest.raises(StoreDamaged, match=r"care\.db"):
        Store.open(f"sqlite:///{tmp_path / 'care.db'}")


def test_healthz_reports_damaged_storage_and_a_read_of_it_gets_a_json_503(make_service, tmp_path: Path) -> None:
    database = tmp_path / "care.db"
    service = make_service(database_url=f"sqlite:///{database}")
    key = service.store.create_key("ruijin")
    for number in range(REFERRALS):
        service.store.add_referral(f"key-{number}", "hash", f"c-{number}", "ruijin", "ruijin/hematology",
                                   "me@example.org", {"summary": "x" * 400})
    with TestClient(create_app(service)) as client:
        assert client.get("/healthz").json()["status"] == "ready"
    service.store.close()  # the app's stop closed it too: every commit is in the main file now
    damage_a_page(database)
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "damaged"
        assert "care.db" in health.json()["problem"]
        inbox = client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {key}"})
        assert inbox.status_code == 503 and inbox.json()["error"] == "storage_damaged"
