"""The REST API, specified through FastAPI's test client against a real SQLite file in a temp dir."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.service import CareService
from assistant.store.database import Store
from assistant.web.app import create_app

MYELOMA = "My 62-year-old father's multiple myeloma relapsed twice after a transplant; we are looking for CAR-T."
API = "/api/v1"
EMBEDDER = "https://www.renji-example.org"


@pytest.fixture(scope="module")
def service(make_service) -> CareService:
    return make_service(embed_origins={"renji": [EMBEDDER]})


@pytest.fixture(scope="module")
def database(service: CareService) -> Path:
    return Path(service.store.engine.url.database)


@pytest.fixture(scope="module")
def client(service: CareService) -> TestClient:
    with TestClient(create_app(service)) as client:
        yield client


def start(client: TestClient, **body: object) -> str:
    response = client.post(f"{API}/conversations", json=body)
    assert response.status_code == 201, response.text
    return response.json()["conversation_id"]


def say(client: TestClient, conversation_id: str, text: str) -> dict:
    response = client.post(f"{API}/conversations/{conversation_id}/messages", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


def refer(client: TestClient, conversation_id: str, key: str | None = None, **overrides: object):
    body = {"consent": True, "contact": "family@example.org", "department_id": "ruijin/hematology", **overrides}
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(f"{API}/conversations/{conversation_id}/referral", json=body, headers=headers)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- conversations ----------------------------------------------------------------------------------------
def test_starting_a_conversation_returns_201_and_its_id(client: TestClient) -> None:
    response = client.post(f"{API}/conversations", json={"language": "zh"})
    assert response.status_code == 201
    assert response.json()["language"] == "zh" and len(response.json()["conversation_id"]) == 32


def test_a_message_gets_the_reply_with_ruijin_hematology_first_for_relapsed_myeloma(client: TestClient) -> None:
    reply = say(client, start(client), MYELOMA)
    assert reply["triage"] == "routine"
    assert reply["recommendations"][0]["department_id"] == "ruijin/hematology"
    assert set(reply) == {"text", "triage", "out_of_scope", "recommendations", "question", "intake"}


def test_streaming_sends_text_deltas_then_one_final_event_with_the_whole_reply(client: TestClient) -> None:
    conversation_id = start(client)
    with client.stream("POST", f"{API}/conversations/{conversation_id}/messages", json={"text": MYELOMA},
                       headers={"Accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [block for block in response.read().decode().split("\n\n") if block]
    names = [block.split("\n")[0].removeprefix("event: ") for block in events]
    assert names[-1] == "reply" and set(names[:-1]) == {"delta"} and len(names) > 10
    deltas = "".join(json.loads(block.split("data: ", 1)[1])["text"] for block in events[:-1])
    final = json.loads(events[-1].split("data: ", 1)[1])
    assert deltas == final["text"]
    assert final["recommendations"][0]["department_id"] == "ruijin/hematology"


def test_get_conversation_lists_its_turns_in_order(client: TestClient) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    say(client, conversation_id, "What do I need to bring?")
    turns = client.get(f"{API}/conversations/{conversation_id}").json()["turns"]
    assert [turn["user"] for turn in turns] == [MYELOMA, "What do I need to bring?"]


def test_the_conversation_continues_from_the_database_on_a_second_copy_of_the_app(
        client: TestClient, service: CareService, database: Path) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    second_copy = CareService(service.assistant, Store.open(f"sqlite:///{database}"))
    with TestClient(create_app(second_copy)) as other:
        reply = say(other, conversation_id, "Tell me more about the first one")
    assert "Ruijin" in reply["text"]


def test_deleting_a_conversation_removes_it_for_good(client: TestClient, database: Path) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    assert client.delete(f"{API}/conversations/{conversation_id}").status_code == 204
    assert client.get(f"{API}/conversations/{conversation_id}").status_code == 404
    assert client.post(f"{API}/conversations/{conversation_id}/messages", json={"text": "hi"}).status_code == 404
    assert client.delete(f"{API}/conversations/{conversation_id}").status_code == 404
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from conversations where id = ?", (conversation_id,)).fetchone()[0] == 0


def test_an_unknown_conversation_is_404_with_a_message_a_person_can_act_on(client: TestClient) -> None:
    response = client.post(f"{API}/conversations/{'0' * 32}/messages", json={"text": "hello"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found" and "start a new one" in response.json()["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "text"),
    ({"text": 42}, "text"),
    ({"text": "hi", "admin": True}, "admin"),
])
def test_an_invalid_message_body_is_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post(f"{API}/conversations/{start(client)}/messages", json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field


def test_a_message_over_the_limit_is_422_saying_the_limit_and_changes_nothing(client: TestClient) -> None:
    conversation_id = start(client)
    response = client.post(f"{API}/conversations/{conversation_id}/messages", json={"text": "a" * 4001})
    assert response.status_code == 422 and "4,000" in response.json()["message"]
    assert client.get(f"{API}/conversations/{conversation_id}").json()["turns"] == []


def test_an_unknown_widget_hospital_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post(f"{API}/conversations", json={"widget_hospital": "mayo"})
    assert response.status_code == 422 and response.json()["field"] == "widget_hospital"


def test_a_widget_conversation_recommends_only_its_hospital(client: TestClient) -> None:
    reply = say(client, start(client, widget_hospital="renji"), "My son needs a liver transplant, he is 4")
    assert reply["recommendations"] and {r["hospital_id"] for r in reply["recommendations"]} == {"renji"}


# --- referrals --------------------------------------------------------------------------------------------
def test_a_referral_is_committed_and_answered_201_with_its_id(client: TestClient, database: Path) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    response = refer(client, conversation_id)
    assert response.status_code == 201 and response.json()["hospital_id"] == "ruijin"
    with sqlite3.connect(database) as db:
        row = db.execute("select hospital_id, contact from referrals where id = ?",
                         (response.json()["referral_id"],)).fetchone()
    assert row == ("ruijin", "family@example.org")


def test_the_same_idempotency_key_returns_the_same_referral_never_a_second(client: TestClient,
                                                                           database: Path) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    key = uuid.uuid4().hex
    first, again = refer(client, conversation_id, key), refer(client, conversation_id, key)
    assert first.status_code == again.status_code == 201
    assert first.json()["referral_id"] == again.json()["referral_id"]
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from referrals where conversation_id = ?",
                          (conversation_id,)).fetchone()[0] == 1
    assert refer(client, conversation_id).json()["referral_id"] != first.json()["referral_id"]


def test_reusing_an_idempotency_key_for_a_different_referral_is_refused(client: TestClient) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    key = uuid.uuid4().hex
    refer(client, conversation_id, key)
    response = refer(client, conversation_id, key, contact="someone-else@example.org")
    assert response.status_code == 422 and response.json()["field"] == "Idempotency-Key"


def test_a_referral_without_consent_is_422_and_nothing_is_stored(client: TestClient, database: Path) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    response = refer(client, conversation_id, consent=False)
    assert response.status_code == 422 and response.json()["field"] == "consent"
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from referrals where conversation_id = ?",
                          (conversation_id,)).fetchone()[0] == 0


def test_a_referral_needs_an_idempotency_key(client: TestClient) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    response = client.post(f"{API}/conversations/{conversation_id}/referral",
                           json={"consent": True, "contact": "a@b.org", "department_id": "ruijin/hematology"})
    assert response.status_code == 422 and response.json()["field"] == "Idempotency-Key"


def test_a_referral_before_the_case_is_described_is_422(client: TestClient) -> None:
    response = refer(client, start(client))
    assert response.status_code == 422 and "describe" in response.json()["message"]


def test_a_widget_conversation_refers_only_to_its_own_hospital(client: TestClient) -> None:
    conversation_id = start(client, widget_hospital="renji")
    say(client, conversation_id, "My son needs a liver transplant, he is 4")
    assert refer(client, conversation_id, department_id="ruijin/hematology").status_code == 422
    assert refer(client, conversation_id, department_id="renji/pediatric-liver-transplant").status_code == 201


def test_a_referral_to_an_unknown_department_is_422_naming_it(client: TestClient) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    response = refer(client, conversation_id, department_id="ruijin/nowhere")
    assert response.status_code == 422 and response.json()["field"] == "department_id"


# --- hospitals --------------------------------------------------------------------------------------------
def test_hospitals_lists_every_hospital_with_its_department_count(client: TestClient, kb) -> None:
    listed = client.get(f"{API}/hospitals").json()
    assert {h["id"] for h in listed} == set(kb.hospitals)
    assert all(h["departments"] >= 1 for h in listed)


def test_a_hospital_profile_shows_its_departments_and_every_source_it_cites(client: TestClient) -> None:
    profile = client.get(f"{API}/hospitals/renji").json()
    source_ids = {s["id"] for s in profile["sources"]}
    cited = {s for d in profile["departments"] for claim in d["known_for"] for s in claim["sources"]}
    assert profile["departments"] and cited <= source_ids
    assert client.get(f"{API}/hospitals/mayo").status_code == 404


# --- the hospital's inbox ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(service: CareService) -> dict[str, str]:
    return {hospital: service.store.create_key(hospital) for hospital in ("ruijin", "renji")}


def test_the_inbox_needs_a_valid_key(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get(f"{API}/inbox").status_code == 401
    assert client.get(f"{API}/inbox", headers=bearer(keys["ruijin"] + "x")).status_code == 401
    assert client.get(f"{API}/inbox", headers=bearer("not-a-key")).status_code == 401
    assert client.get(f"{API}/inbox", headers=bearer(keys["ruijin"])).status_code == 200


def test_a_key_sees_and_works_only_its_own_hospitals_referrals(client: TestClient, keys: dict[str, str]) -> None:
    conversation_id = start(client)
    say(client, conversation_id, MYELOMA)
    referral_id = refer(client, conversation_id).json()["referral_id"]

    ruijin = client.get(f"{API}/inbox", headers=bearer(keys["ruijin"])).json()
    renji = client.get(f"{API}/inbox", headers=bearer(keys["renji"])).json()
    assert referral_id in {r["referral_id"] for r in ruijin}
    assert referral_id not in {r["referral_id"] for r in renji}
    item = next(r for r in ruijin if r["referral_id"] == referral_id)
    assert item["summary"]["what_they_wrote"] == [MYELOMA] and item["contact"] == "family@example.org"

    other = client.patch(f"{API}/inbox/{referral_id}", json={"status": "declined"}, headers=bearer(keys["renji"]))
    assert other.status_code == 404
    own = client.patch(f"{API}/inbox/{referral_id}", json={"status": "contacted"}, headers=bearer(keys["ruijin"]))
    assert own.status_code == 200 and own.json()["status"] == "contacted"
    filtered = client.get(f"{API}/inbox?status=contacted", headers=bearer(keys["ruijin"])).json()
    assert referral_id in {r["referral_id"] for r in filtered}


def test_an_unknown_referral_status_is_422(client: TestClient, keys: dict[str, str]) -> None:
    response = client.patch(f"{API}/inbox/{'0' * 32}", json={"status": "lost"}, headers=bearer(keys["ruijin"]))
    assert response.status_code == 422 and response.json()["field"] == "status"


def test_a_revoked_key_is_refused(client: TestClient, service: CareService) -> None:
    key = service.store.create_key("huashan")
    assert client.get(f"{API}/inbox", headers=bearer(key)).status_code == 200
    assert service.store.revoke_key(key.split("_")[1])
    assert client.get(f"{API}/inbox", headers=bearer(key)).status_code == 401


def test_keys_are_stored_only_as_hashes(service: CareService, database: Path) -> None:
    key = service.store.create_key("zhongshan")
    secret = key.split("_", 2)[2]
    assert secret.encode() not in database.read_bytes()
    with sqlite3.connect(database) as db:
        stored = [row[0] for row in db.execute("select secret_hash from inbox_keys")]
    assert all(secret not in value for value in stored)


# --- operations, pages and the widget ------------------------------------------------------------------------
def test_healthz_is_ready_with_the_knowledge_loaded(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ready" and body["departments"] > 100


def test_the_openapi_document_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {f"{API}/conversations", f"{API}/conversations/{{conversation_id}}/messages",
            f"{API}/conversations/{{conversation_id}}", f"{API}/conversations/{{conversation_id}}/referral",
            f"{API}/hospitals", f"{API}/hospitals/{{hospital_id}}", f"{API}/inbox",
            f"{API}/inbox/{{referral_id}}"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_the_embed_page_may_be_framed_only_by_the_hospitals_allowed_sites(client: TestClient) -> None:
    renji = client.get("/embed/?hospital=renji").headers["content-security-policy"]
    ruijin = client.get("/embed/?hospital=ruijin").headers["content-security-policy"]
    assert f"frame-ancestors 'self' {EMBEDDER};" in renji
    assert "frame-ancestors 'self';" in ruijin
    assert "frame-ancestors 'self';" in client.get("/").headers["content-security-policy"]


@pytest.mark.parametrize("query", ["hospital=renji&hospital=ruijin", "hospital=ruijin&hospital=renji"])
def test_a_widget_url_naming_two_hospitals_may_be_framed_by_no_hospitals_site(client: TestClient,
                                                                            query: str) -> None:
    """Renji's site must not frame Ruijin's chat by adding a second hospital to the URL."""
    assert "frame-ancestors 'self';" in client.get(f"/embed/?{query}").headers["content-security-policy"]


def test_the_widget_page_takes_exactly_one_hospital() -> None:
    from assistant.web.security import widget_hospital

    assert widget_hospital(["renji"]) == "renji"
    assert widget_hospital(["renji", "ruijin"]) is None and widget_hospital([]) is None


def test_embed_without_the_slash_keeps_the_hospital(client: TestClient) -> None:
    response = client.get("/embed?hospital=renji", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/embed/?hospital=renji"


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/healthz", f"{API}/hospitals", "/widget.js"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin", path


def test_cors_answers_only_allowed_origins(client: TestClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = client.options(f"{API}/conversations", headers={"Origin": EMBEDDER, **preflight})
    refused = client.options(f"{API}/conversations", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == EMBEDDER
    assert "access-control-allow-origin" not in refused.headers


def test_the_widget_script_is_served_as_javascript(client: TestClient) -> None:
    response = client.get("/widget.js")
    assert response.headers["content-type"].startswith("text/javascript")
    assert "data-hospital" in response.text and "/embed/?hospital=" in response.text
