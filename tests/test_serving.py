"""Serving many users at once: concurrent turns share one model call, a busy database is waited for, and
several copies of the app share one rate limit.

The batching tests use a real embedder (the hashing one) behind a gate that holds the first model call
until the other callers are queued, so what is batched with what is certain, not a matter of timing.
"""

from __future__ import annotations

import logging
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from assistant.conversation import Conversation
from assistant.embedder import BatchingEmbedder, EmbeddingFailed, HashingEmbedder
from assistant.settings import RateLimits
from assistant.store.database import Store, StoreUnavailable
from assistant.web.limits import SharedRateLimiter
from benchmarks.serve import free_port
from tests.app_server import data_dir_with_models, start_app


class GatedEmbedder:
    """The hashing embedder, recording each call; the first call waits until `release` is set, and a call with a
    text starting "fail" fails."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder()
        self.calls: list[list[str]] = []
        self.started = threading.Event()  # the first call is inside the model
        self.release = threading.Event()

    @property
    def name(self) -> str:
        return self.inner.name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self.calls:
            self.started.set()
            assert self.release.wait(10), "the test never released the first call"
        self.calls.append(list(texts))
        if any(text.startswith("fail") for text in texts):
            raise RuntimeError("the model failed")
        return self.inner.embed(texts)


def callers_queued(batching: BatchingEmbedder, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(batching.queue) < count:
        assert time.monotonic() < deadline, "callers never queued"
        time.sleep(0.001)


def embed_in_threads(batching: BatchingEmbedder,
                     texts_per_caller: list[list[str]]) -> tuple[list, list[threading.Thread]]:
    results: list = [None] * len(texts_per_caller)

    def call(i: int) -> None:
        try:
            results[i] = batching.embed(texts_per_caller[i])
        except EmbeddingFailed as error:
            results[i] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts_per_caller))]
    for thread in threads:
        thread.start()
    return results, threads


def test_callers_arriving_while_the_model_is_busy_share_its_next_call_and_get_their_own_rows() -> None:
    model = GatedEmbedder()
    batching = BatchingEmbedder(model)
    texts = [[f"message {i}", f"its sentence {i}"] for i in range(8)]
    first, first_thread = embed_in_threads(batching, texts[:1])
    assert model.started.wait(10)
    rest, threads = embed_in_threads(batching, texts[1:])
    callers_queued(batching, 7)
    model.release.set()
    for thread in [*first_thread, *threads]:
        thread.join(10)
    assert len(model.calls) == 2  # the first caller alone, then the seven that waited, together
    assert model.calls[1] == [text for pair in texts[1:] for text in pair]
    for got, asked in zip([*first, *rest], texts, strict=True):
        assert np.array_equal(got, HashingEmbedder().embed(asked))
    assert not batching.busy and not batching.queue


def test_a_lone_caller_finds_the_model_idle_and_encodes_at_once() -> None:
    model = GatedEmbedder()
    model.release.set()
    batching = BatchingEmbedder(model)
    vectors = batching.embed(["chest pain"])
    assert model.calls == [["chest pain"]] and vectors.shape == (1, 384)
    assert not batching.busy


def test_a_batch_holds_at_most_max_texts_and_the_rest_go_in_the_next_call() -> None:
    model = GatedEmbedder()
    batching = BatchingEmbedder(model, max_texts=4)
    first, first_thread = embed_in_threads(batching, [["first"]])
    assert model.started.wait(10)
    rest, threads = embed_in_threads(batching, [[f"text {i}"] for i in range(6)])
    callers_queued(batching, 6)
    model.release.set()
    for thread in [*first_thread, *threads]:
        thread.join(10)
    assert [len(call) for call in model.calls] == [1, 4, 2]
    assert all(isinstance(result, np.ndarray) for result in [*first, *rest])


def test_a_model_error_reaches_every_caller_of_that_batch_and_the_next_batch_still_runs() -> None:
    model = GatedEmbedder()
    batching = BatchingEmbedder(model)
    first, first_thread = embed_in_threads(batching, [["first"]])
    assert model.started.wait(10)
    rest, threads = embed_in_threads(batching, [["fail: an unreadable text"], ["a fine text"]])
    callers_queued(batching, 2)
    model.release.set()
    for thread in [*first_thread, *threads]:
        thread.join(10)
    assert isinstance(first[0], np.ndarray)
    assert [type(result) for result in rest] == [EmbeddingFailed, EmbeddingFailed]  # the batch they shared failed
    assert isinstance(rest[1].__cause__, RuntimeError)  # the model's own error, kept as the cause
    assert not batching.busy and np.array_equal(batching.embed(["later"]), HashingEmbedder().embed(["later"]))


# --- a busy database ---------------------------------------------------------------------------------------------
def hold_write_lock(database: Path, seconds: float) -> threading.Thread:
    """Another process's long write, as SQLite sees it: the write lock held for `seconds`."""
    locked = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    return thread


def test_a_write_waits_for_another_writer_and_is_retried_past_the_busy_timeout(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'care.db'}", busy_timeout_ms=100)
    conv = Conversation()
    holder = hold_write_lock(tmp_path / "care.db", seconds=0.4)  # longer than the busy timeout, shorter than retries
    store.add_conversation(conv)
    holder.join()
    assert store.conversation(conv.id) is not None


def test_a_write_still_blocked_after_its_retries_raises_store_unavailable_and_writes_nothing(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'care.db'}", busy_timeout_ms=50)
    conv = Conversation()
    holder = hold_write_lock(tmp_path / "care.db", seconds=2.0)
    with pytest.raises(StoreUnavailable):
        store.add_conversation(conv)
    holder.join()
    assert store.conversation(conv.id) is None


def test_a_write_transaction_takes_the_write_lock_at_its_start(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: while a turn's save is open, another writer waits instead of starting a read that could
    not be upgraded to a write later."""
    store = Store.open(f"sqlite:///{tmp_path / 'care.db'}")
    with store.session(write=True) as session:
        session.connection()  # the transaction has begun
        other = sqlite3.connect(tmp_path / "care.db", isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    with store.session() as session:  # a read does not take it
        session.connection()
        other = sqlite3.connect(tmp_path / "care.db", isolation_level=None, timeout=0)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        other.close()


def test_a_text_sent_again_comes_from_the_recent_vectors_and_the_least_recently_used_is_forgotten() -> None:
    model = GatedEmbedder()
    model.release.set()
    batching = BatchingEmbedder(model, cache_size=2)
    first = batching.embed(["What do I need to bring?"])
    batching.embed(["How do I pay?"])
    again = batching.embed(["What do I need to bring?"])  # now the most recently used of the two
    assert model.calls == [["What do I need to bring?"], ["How do I pay?"]]  # the repeat never reached the model
    assert np.array_equal(again[0], first[0])
    batching.embed(["Do I need a visa?"])  # a third text: "How do I pay?", used least recently, is forgotten
    batching.embed(["What do I need to bring?", "How do I pay?"])
    assert model.calls[-1] == ["How do I pay?"]
    assert not batching.recent.get("How do I pay?").flags.writeable  # no caller can change a remembered vector


# --- several copies of the app ------------------------------------------------------------------------------------
REDIS_SERVER = shutil.which("redis-server")


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """Debian's redis-server on a free loopback port, nothing saved to disk, stopped after the test."""
    port = free_port()
    server = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.skipif(REDIS_SERVER is None, reason="Debian's redis-server is not installed (`make test` installs it)")
def test_two_app_processes_behind_one_address_give_a_client_one_limit_in_total(tmp_path: Path, fake_engine,
                                                                                  redis_url: str) -> None:
    """Two replicas of `make run`'s server, one database, the limiter in Redis: a client that alternates between
    them (as a load balancer would send it) gets 3 conversations a minute in all, not 3 from each."""
    database = tmp_path / "care.db"
    limits = {"CARE_RATE_LIMIT_STORE": redis_url, "CARE_RATE_LIMITS__ENABLED": "true",
              "CARE_RATE_LIMITS__CONVERSATIONS_PER_MINUTE": "3"}
    ports = [free_port(), free_port()]
    with ThreadPoolExecutor(2) as starting:
        replicas = list(starting.map(
            lambda n: start_app(data_dir_with_models(tmp_path / f"data-{n}", fake_engine.settings.models_dir),
                                database, ports[n], fake_engine.settings.knowledge_dir, **limits), range(2)))
    try:
        answers = [httpx.post(f"http://127.0.0.1:{ports[n % 2]}/api/v1/conversations", timeout=30)
                   for n in range(8)]
    finally:
        for replica in replicas:
            replica.terminate()
            replica.wait(timeout=30)
    assert [answer.status_code for answer in answers] == [201, 201, 201] + [429] * 5
    assert all(1 <= int(answer.headers["retry-after"]) <= 60 for answer in answers[3:])
    assert {answer.json()["error"] for answer in answers[3:]} == {"rate_limited"}


def test_an_unreachable_limit_store_lets_requests_through_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    limiter = SharedRateLimiter(RateLimits(conversations_per_minute=1), f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.WARNING, logger="assistant.web.limits"):
        started = time.monotonic()
        for _ in range(3):
            limiter.conversation_started("10.0.0.1")  # over the limit, but nobody can count: let through
    assert time.monotonic() - started < 5
    assert caplog.text.count("rate-limit store unreachable") == 1
