"""The same storage on PostgreSQL (`DATABASE_URL`): a throwaway server from Debian's binaries, on loopback.

Skipped, saying why, on a machine without the PostgreSQL server binaries; SQLite is covered everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.service import CareService
from assistant.store.database import ConversationChanged, Store
from assistant.web.app import create_app
from benchmarks.serve import free_port

PG_BIN = next((p for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
               if (p / "initdb").exists()), None)
pytestmark = pytest.mark.skipif(PG_BIN is None, reason="no PostgreSQL server binaries (Debian package postgresql)")
MYELOMA = "My 62-year-old father's multiple myeloma relapsed twice; we want CAR-T."


def as_postgres_user(command: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server as the 'postgres' user the package creates."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PostgresServer:
    """A throwaway cluster in a temp dir on a free loopback port; `stop` and `start` simulate an outage."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="care-pg-"))  # not under pytest's root-only temp dir
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self.port = free_port()
        self.data = self.folder / "data"
        subprocess.run(as_postgres_user([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "care"]),
                       check=True, capture_output=True)
        self.start()
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "care", "care"],
                       check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://care@127.0.0.1:{self.port}/care"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        subprocess.run(as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                                         str(self.folder / "log"), "-w", "-o", options, "start"]),
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(as_postgres_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                       capture_output=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def postgres_url(postgres: PostgresServer) -> str:
    return postgres.url


@pytest.fixture(scope="module")
def service(make_service, postgres_url: str) -> CareService:
    return make_service(database_url=postgres_url)


def test_migrations_build_the_schema_on_postgresql_and_run_again_harmlessly(service: CareService,
                                                                          postgres_url: str) -> None:
    Store.open(postgres_url).close()  # a second open finds the schema at head
    assert service.store.engine.dialect.name == "postgresql"


def test_a_conversation_referral_and_inbox_work_on_postgresql(service: CareService) -> None:
    key = service.store.create_key("ruijin")
    with TestClient(create_app(service)) as client:
        conversation_id = client.post("/api/v1/conversations").json()["conversation_id"]
        reply = client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": MYELOMA}).json()
        assert reply["recommendations"][0]["department_id"] == "ruijin/hematology"
        body = {"consent": True, "contact": "family@example.org", "department_id": "ruijin/hematology"}
        idempotency = {"Idempotency-Key": uuid.uuid4().hex}
        first = client.post(f"/api/v1/conversations/{conversation_id}/referral", json=body, headers=idempotency)
        again = client.post(f"/api/v1/conversations/{conversation_id}/referral", json=body, headers=idempotency)
        assert first.status_code == again.status_code == 201
        assert first.json()["referral_id"] == again.json()["referral_id"]
        inbox = client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {key}"}).json()
        assert [r["referral_id"] for r in inbox].count(first.json()["referral_id"]) == 1


def test_a_stale_save_is_refused_on_postgresql(service: CareService) -> None:
    conv = service.start()
    stored = service.conversation(conv.id)
    service.store.save_conversation(stored.conversation, stored.version, stored.turns_saved)
    with pytest.raises(ConversationChanged):
        service.store.save_conversation(stored.conversation, stored.version, stored.turns_saved)


def test_purge_works_on_postgresql(service: CareService) -> None:
    conv = service.start()
    time.sleep(0.01)
    assert service.store.purge_conversations(timedelta(seconds=0)) >= 1
    assert service.store.conversation(conv.id) is None


def test_an_unavailable_database_gives_503_with_retry_after_then_recovers(service: CareService,
                                                                          postgres: PostgresServer) -> None:
    with TestClient(create_app(service)) as client:
        conversation_id = client.post("/api/v1/conversations").json()["conversation_id"]
        postgres.stop()
        try:
            down = client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": MYELOMA})
            assert down.status_code == 503 and down.headers["retry-after"] == "2"
        finally:
            postgres.start()
        up = client.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": MYELOMA})
        assert up.status_code == 200
