"""A message is read once per turn: normalised, split and embedded in one batched call, then shared."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.build import build_assistant, build_engine
from assistant.embedder import Embedder, HashingEmbedder
from assistant.settings import Settings
from assistant.turn.message import Message, split_sentences


class CountingEmbedder:
    """The hashing embedder, counting the calls and the texts embedded."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory):
    embedder = CountingEmbedder(HashingEmbedder())
    engine = build_engine(Settings(data_dir=Path(tmp_path_factory.mktemp("counted"))), embedder)
    return build_assistant(engine=engine), embedder


def test_a_message_keeps_its_sentences_and_one_vector_per_sentence() -> None:
    message = Message.read("My father is 62. His myeloma relapsed; fever 38.5 today!", HashingEmbedder())
    assert message.sentences == ("my father is 62", "his myeloma relapsed", "fever 38.5 today")
    assert message.sentence_vectors.shape == (3, 384) and message.vector.shape == (384,)


def test_a_one_sentence_message_reuses_its_own_vector_for_the_sentence() -> None:
    message = Message.read("relapsed multiple myeloma", HashingEmbedder())
    assert message.sentences == ("relapsed multiple myeloma",)
    assert np.array_equal(message.sentence_vectors[0], message.vector)


def test_decimals_do_not_split_sentences() -> None:
    assert split_sentences("temperature 39.2 and rising") == ("temperature 39.2 and rising",)


def test_a_first_turn_embeds_once_the_message_and_its_sentences_together(counted) -> None:
    assistant, embedder = counted
    embedder.calls.clear()
    assistant.reply(assistant.start(), "I'm 62. My multiple myeloma relapsed twice.")
    assert embedder.calls == [["im 62. my multiple myeloma relapsed twice.",
                               "im 62", "my multiple myeloma relapsed twice"]]


def test_a_later_turn_embeds_its_message_once_and_the_whole_case_once(counted) -> None:
    assistant, embedder = counted
    conversation = assistant.start()
    assistant.reply(conversation, "my daughter has leukemia")
    embedder.calls.clear()
    assistant.reply(conversation, "she is 7 years old")
    assert len(embedder.calls) == 2
    assert embedder.calls[0] == ["she is 7 years old"]
    assert embedder.calls[1] == [conversation.case.search_text]
