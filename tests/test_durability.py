"""An accepted referral is never lost: the server is killed with SIGKILL while referrals stream in.

A real server process (what `make run` starts) takes referrals from four client threads, each with an
Idempotency-Key. Mid-stream it gets SIGKILL, then it is started again on the same database and every
referral that was not acknowledged is sent again with its key. Every acknowledged referral must be
there exactly once, with the id the 201 gave, and the retries must not duplicate anything.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from assistant.service import scoped_key
from benchmarks.serve import free_port
from tests.app_server import data_dir_with_models, start_app

STORY = "My 62-year-old father's multiple myeloma relapsed twice; we are looking for CAR-T."
KEYS = [f"durability-{n:04d}" for n in range(400)]


def send(base: str, conversation_id: str, key: str) -> str | None:
    """The referral id when the server acknowledged with 201, else None (refused, reset, timed out)."""
    try:
        response = httpx.post(f"{base}/api/v1/conversations/{conversation_id}/referral", timeout=10,
                              headers={"Idempotency-Key": key},
                              json={"consent": True, "contact": f"{key}@example.org",
                                    "department_id": "ruijin/hematology"})
    except httpx.HTTPError:
        return None
    return response.json()["referral_id"] if response.status_code == 201 else None


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "care.db"


@pytest.fixture
def data_dir(tmp_path: Path, fake_engine) -> Path:
    return data_dir_with_models(tmp_path / "data", fake_engine.settings.models_dir)


def test_sigkill_mid_stream_loses_no_acknowledged_referral_and_retries_never_duplicate(
        data_dir: Path, database: Path, fake_knowledge: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_app(data_dir, database, port, fake_knowledge)
    try:
        conversation_id = httpx.post(f"{base}/api/v1/conversations").json()["conversation_id"]
        httpx.post(f"{base}/api/v1/conversations/{conversation_id}/messages", json={"text": STORY}, timeout=30)
        acknowledged: dict[str, str] = {}
        lock = threading.Lock()

        def one(key: str) -> None:
            referral_id = send(base, conversation_id, key)
            if referral_id is not None:
                with lock:
                    acknowledged[key] = referral_id

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(one, key) for key in KEYS]
            while len(acknowledged) < 40:  # well into the stream
                time.sleep(0.01)
            server.send_signal(signal.SIGKILL)
            for future in futures:
                future.result()
        server.wait(timeout=10)
        sent_before_kill = dict(acknowledged)
        assert 40 <= len(sent_before_kill) < len(KEYS), "the kill must land mid-stream"

        server = start_app(data_dir, database, port, fake_knowledge)
        with ThreadPoolExecutor(max_workers=4) as pool:  # retried as the clients would: four at a time
            retried = dict(zip(KEYS, pool.map(lambda key: send(base, conversation_id, key), KEYS), strict=True))
        for key, referral_id in retried.items():
            assert referral_id is not None, key
            if key in sent_before_kill:
                assert referral_id == sent_before_kill[key], key  # the same referral, not a second one
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)

    with sqlite3.connect(database) as db:
        rows = db.execute("select idempotency_key, id from referrals").fetchall()
    client_key = {scoped_key(conversation_id, key): key for key in KEYS}  # stored scoped to the conversation
    per_key: dict[str, list[str]] = {}
    for stored_key, referral_id in rows:
        per_key.setdefault(client_key.get(stored_key, stored_key), []).append(referral_id)
    assert sorted(per_key) == sorted(KEYS) and all(len(ids) == 1 for ids in per_key.values())
    assert all(per_key[key] == [referral_id] for key, referral_id in sent_before_kill.items())
    print(json.dumps({"sent": len(KEYS), "acknowledged_before_kill": len(sent_before_kill),
                      "present_after_restart": len(rows)}))
