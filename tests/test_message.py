"""A message is read once per turn: normalised, split and embedded in one batched call, then shared."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant.build import build_assistant, build_engine
from assistant.embedder import Embedder, HashingEmbedder
from assistant.settings import PROJECT_ROOT, Settings
from assistant.turn.language import LanguageReader
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
def counted(tmp_path_factory: pytest.TempPathFactory, fake_knowledge: Path):
    """An engine whose embedder counts its calls; the hashing models of the fake engine's thinned knowledge."""
    embedder = CountingEmbedder(HashingEmbedder())
    engine = build_engine(Settings(data_dir=Path(tmp_path_factory.mktemp("counted")), knowledge_dir=fake_knowledge),
                          embedder)
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


@pytest.fixture(scope="module")
def languages() -> LanguageReader:
    return LanguageReader.load(PROJECT_ROOT / "prompts" / "languages.yaml")


@pytest.mark.parametrize("text, language", [
    ("Mi hijo de 4 años necesita un trasplante de hígado, ¿qué hospital nos recomienda?", "es"),
    ("Ma mère a un cancer du sein et nous cherchons un deuxième avis à Shanghai.", "fr"),
    ("Mein Vater hat ein Multiples Myelom, das zweimal zurückgekommen ist.", "de"),
    ("Minha filha tem oito meses e nasceu com atresia biliar.", "pt"),
    ("У моего отца рецидив множественной миеломы, мы ищем клинику в Шанхае.", "ru"),
    ("والدي مريض بسرطان الدم ونبحث عن مستشفى في شنغهاي", "ar"),
    ("父は多発性骨髄腫で、上海での治療を考えています。", "ja"),
    ("아버지가 다발성 골수종 진단을 받았습니다. 상하이 병원을 찾고 있어요.", "ko"),
    ("Con trai tôi bị bệnh tim bẩm sinh, chúng tôi muốn phẫu thuật ở Thượng Hải.", "vi"),
])
def test_a_message_in_a_configured_language_is_named_for_the_reply(languages, text, language) -> None:
    assert Message.read(text, HashingEmbedder(), languages).language == language


@pytest.mark.parametrize("text, language", [
    ("CAR-T", "en"), ("kasai failed", "en"), ("39F lupus", "en"), ("ok thanks", "en"), ("knee pain", "en"),
    ("Tell me more about the first one", "en"), ("我爸爸多发性骨髓瘤复发了", "zh"), ("?", None), ("2", None),
])
def test_short_english_stays_english_chinese_stays_chinese_and_no_letters_names_nothing(languages, text,
                                                                                      language) -> None:
    assert Message.read(text, HashingEmbedder(), languages).language == language


def test_every_other_language_tells_its_reader_the_reply_is_in_english_and_the_emergency_number(languages) -> None:
    assert len(languages.others) >= 10
    for code, other in languages.others.items():
        assert "120" in other.note, code
