"""A message, read once at the start of a turn: every later step takes this instead of the raw text.

Normalising, splitting into sentences, counting Chinese letters and embedding happen here and only
here; the message and its sentences are embedded in one batched call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from assistant.embedder import Embedder
from assistant.text import letter_counts, normalize, share_of_chinese
from assistant.turn.language import LanguageReader

# A sentence ends at . ! ? (not a decimal point: "38.2"), their Chinese forms, a semicolon or a line break.
SENTENCE_END = re.compile(r"(?<![0-9])\.|\.(?![0-9])|[!?;\n。！？；]+")
CHINESE_MESSAGE_SHARE = 0.3  # above this share of Chinese letters a message is read as Chinese
ENGLISH_AND_CHINESE = LanguageReader({})  # what a message is read as when no other language is configured


def split_sentences(normalized: str) -> tuple[str, ...]:
    parts = (part.strip(" ,") for part in SENTENCE_END.split(normalized))
    return tuple(part for part in parts if part)


@dataclass(frozen=True, eq=False)
class Message:
    raw: str
    normalized: str
    sentences: tuple[str, ...]
    cjk_letters: int
    latin_letters: int
    vector: np.ndarray  # of the normalised message
    sentence_vectors: np.ndarray  # one row per sentence; the message's own row when it is one sentence
    language: str | None  # "en", "zh", another configured language, or None when it has no letters

    @classmethod
    def read(cls, raw: str, embedder: Embedder, languages: LanguageReader = ENGLISH_AND_CHINESE) -> Message:
        normalized = normalize(raw)
        sentences = split_sentences(normalized)
        several = len(sentences) > 1
        vectors = embedder.embed([normalized, *sentences] if several else [normalized])
        cjk, latin = letter_counts(raw, normalized)
        is_chinese = share_of_chinese(cjk, latin) > CHINESE_MESSAGE_SHARE
        return cls(raw=raw, normalized=normalized, sentences=sentences or (normalized,), cjk_letters=cjk,
                   latin_letters=latin, vector=vectors[0], sentence_vectors=vectors[1:] if several else vectors[:1],
                   language=languages.language_of(raw, is_chinese))

    @property
    def chinese_share(self) -> float:
        return share_of_chinese(self.cjk_letters, self.latin_letters)

    @property
    def is_chinese(self) -> bool:
        return self.chinese_share > CHINESE_MESSAGE_SHARE
