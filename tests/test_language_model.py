"""The optional language model phrases replies, and its guard falls back to the template on every failure.

Driven end to end through the real langchain-openai client against a small OpenAI-compatible
server on 127.0.0.1 (tests/fake_llm.py); no mock objects stand in for the client.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from assistant.build import build_assistant
from assistant.compose.model import ModelComposer
from assistant.flow import Assistant
from tests.fake_llm import FakeLLMServer

CASE = "I'm 62 and my multiple myeloma relapsed twice, I want CAR-T"


@pytest.fixture(scope="module")
def llm_server():
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def template_assistant(engine):
    return build_assistant(engine=engine)


def model_assistant(engine, server: FakeLLMServer, behaviour: str, **extra) -> Assistant:
    settings = engine.settings.model_copy(update={
        "openai_base_url": server.base_url, "openai_api_key": "test-key", "openai_model": behaviour,
        "llm_timeout_s": 1.0, **extra,
    })
    return build_assistant(settings, engine=engine)


def template_text(template_assistant: Assistant, text: str) -> str:
    return template_assistant.reply(template_assistant.start(), text).text


def test_a_configured_endpoint_switches_phrasing_to_the_model(engine, llm_server):
    assistant = model_assistant(engine, llm_server, "good")
    assert isinstance(assistant.composer, ModelComposer)
    conv = assistant.start()
    reply = assistant.reply(conv, CASE)
    assert reply.text.startswith("Here is what I found for you.") and conv.turns[-1].phrasing == "model"
    assert reply.recommendations, "ranking never comes from the model and is unchanged"


def test_the_model_receives_the_template_draft_with_its_sources(engine, llm_server, template_assistant):
    assistant = model_assistant(engine, llm_server, "good")
    assistant.reply(assistant.start(), CASE)
    sent = llm_server.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and "Use only facts that are in the draft" in sent[0]["content"]
    assert sent[-1]["content"] == template_text(template_assistant, CASE)


def test_non_streaming_completions_work_too(engine, llm_server):
    assistant = model_assistant(engine, llm_server, "good", llm_stream=False)
    reply = assistant.reply(assistant.start(), CASE)
    assert reply.text.startswith("Here is what I found for you.")
    assert llm_server.requests[-1].get("stream") in (None, False)


def test_chinese_messages_get_the_reply_in_chinese_from_the_model(engine, llm_server):
    assistant = model_assistant(engine, llm_server, "chinese")
    reply = assistant.reply(assistant.start(), "我爸爸多发性骨髓瘤复发了，想做CAR-T")
    assert reply.text.startswith("以下是为您整理的信息")
    assert "Simplified Chinese" in llm_server.requests[-1]["messages"][0]["content"]


BAD_ANSWERS = ["invent-hospital", "fake-phone", "fake-price", "empty", "error500", "malformed", "foreign-link", "image",
               "html", "invent-hospital-zh", "price-in-words", "invent-hospital-es", "price-in-words-es"]
SPANISH_CASE = "Mi padre tiene 62 años y su mieloma múltiple ha recaído dos veces; buscamos CAR-T en Shanghai."


def test_a_message_in_another_language_is_answered_in_it_by_the_model(engine, llm_server):
    assistant = model_assistant(engine, llm_server, "spanish")
    conv = assistant.start()
    reply = assistant.reply(conv, SPANISH_CASE)
    assert reply.text.startswith("Esto es lo que encontré") and conv.turns[-1].phrasing == "model"
    assert "Spanish (español)" in llm_server.requests[-1]["messages"][0]["content"]


@pytest.mark.parametrize("behaviour", ["invent-hospital-es", "price-in-words-es", "fake-phone", "error500"])
def test_in_another_language_a_bad_answer_falls_back_to_english_with_a_line_in_the_readers_language(
        engine, llm_server, template_assistant, behaviour):
    assistant = model_assistant(engine, llm_server, behaviour)
    conv = assistant.start()
    reply = assistant.reply(conv, SPANISH_CASE)
    assert conv.turns[-1].phrasing != "model"
    assert reply.text == template_text(template_assistant, SPANISH_CASE)
    assert reply.text.startswith("_Respondo en inglés")


@pytest.mark.parametrize("behaviour", BAD_ANSWERS)
def test_a_bad_model_answer_falls_back_to_the_template_reply(engine, llm_server, template_assistant, behaviour):
    assistant = model_assistant(engine, llm_server, behaviour)
    conv = assistant.start()
    reply = assistant.reply(conv, CASE)
    assert reply.text == template_text(template_assistant, CASE)
    assert conv.turns[-1].phrasing != "model"
    assert "error" not in reply.text.lower() and "sorry" not in reply.text.lower()


@pytest.mark.parametrize("behaviour", ["slow", "slow-stream"])
def test_a_slow_model_falls_back_within_the_timeout(engine, llm_server, template_assistant, behaviour):
    assistant = model_assistant(engine, llm_server, behaviour)
    started = time.perf_counter()
    reply = assistant.reply(assistant.start(), CASE)
    elapsed = time.perf_counter() - started
    assert reply.text == template_text(template_assistant, CASE)
    assert elapsed < assistant.settings.llm_timeout_s + 1.5


def test_the_guard_names_what_it_caught(engine, llm_server):
    caught = {}
    for behaviour in (*BAD_ANSWERS, "slow"):
        assistant = model_assistant(engine, llm_server, behaviour)
        conv = assistant.start()
        assistant.reply(conv, CASE)
        caught[behaviour] = conv.turns[-1].phrasing
    print("\nguard outcomes:", caught)
    assert "hospital" in caught["invent-hospital"]
    assert "phone" in caught["fake-phone"]
    assert "price" in caught["fake-price"]
    assert "empty" in caught["empty"]
    assert caught["error500"].startswith("error") and caught["malformed"].startswith("error")
    assert caught["slow"] == "timeout"
    assert "link" in caught["foreign-link"] and "image" in caught["image"] and "markup" in caught["html"]
    assert "hospital" in caught["invent-hospital-zh"] and "price" in caught["price-in-words"]


def test_an_emergency_reply_that_loses_its_instruction_is_not_shown(engine, llm_server):
    assistant = model_assistant(engine, llm_server, "drop-emergency")
    conv = assistant.start()
    reply = assistant.reply(conv, "my dad suddenly can't speak and his face is drooping")
    assert reply.triage == "emergency"
    assert "120" in reply.text and "emergency" in reply.text.lower()
    assert "emergency instruction" in conv.turns[-1].phrasing


def test_triage_never_comes_from_the_model(engine, llm_server):
    assistant = model_assistant(engine, llm_server, "good")
    reply = assistant.reply(assistant.start(), "crushing chest pain and I'm sweating")
    assert reply.triage == "emergency" and reply.recommendations == []


def test_each_turn_has_its_own_deadline_however_many_turns_wait_for_the_model(engine, llm_server):
    """Sixteen turns at once (what the page allows), each answered by the model in 0.8 s with a 1.5 s deadline:
    none falls back, because no turn's deadline counts time spent waiting behind other turns (a shared pool of
    four would have made the last four wait 2.4 s)."""
    assistant = model_assistant(engine, llm_server, "steady", llm_timeout_s=1.5, llm_stream=False)
    conversations = [assistant.start() for _ in range(16)]
    with ThreadPoolExecutor(max_workers=16) as turns:
        replies = list(turns.map(lambda conv: assistant.reply(conv, CASE), conversations))
    assert all(reply.text.startswith("Here is what I found for you.") for reply in replies)
    assert [conv.turns[-1].phrasing for conv in conversations] == ["model"] * 16
