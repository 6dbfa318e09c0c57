"""Which language a message is written in, so the reply can be written in it.

Chinese and English are told apart by their letters (the share of Chinese characters), as the rest of the
turn reads them. Any other language is named by py3langid, a naive Bayes classifier trained on text in 97
languages and shipped with its model inside the package (nothing is downloaded); it only chooses among
English and the languages `prompts/languages.yaml` lists, and only a confident answer counts, so a short
English message ("CAR-T", "kasai failed") is never taken for another language.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import RootModel

from assistant.datafile import Strict, load_yaml

KANA = re.compile(r"[\u3040-\u30ff]")  # Japanese writes kana around its kanji; Chinese never does
HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
ANY_LETTER = re.compile(r"[^\W\d_]")
MIN_PROBABILITY = 0.8  # below it a message is read as English, the language every step reads best


class OtherLanguage(Strict):
    name: str  # how the language model is told the language: "Spanish (español)"
    note: str  # first line of an English reply to this language's reader when no model writes it


class OtherLanguagesFile(RootModel[dict[str, OtherLanguage]]):
    pass


class LanguageReader:
    def __init__(self, others: dict[str, OtherLanguage]) -> None:
        self.others = others

    @classmethod
    def load(cls, path: Path) -> LanguageReader:
        return cls(load_yaml(path, OtherLanguagesFile).root)

    @cached_property
    def identifier(self):  # noqa: ANN201 (py3langid has no type hints)
        """Loaded once, on the first message that needs it, or at warm-up."""
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        identifier.set_languages(["en", *self.others])
        return identifier

    def language_of(self, raw: str, is_chinese: bool) -> str | None:
        """"zh", "en", a code from the languages file, or None for a message with no letters ("1", "?")."""
        if KANA.search(raw) and "ja" in self.others:
            return "ja"
        if HANGUL.search(raw) and "ko" in self.others:
            return "ko"
        if is_chinese:
            return "zh"
        if not ANY_LETTER.search(raw):
            return None
        if not self.others:
            return "en"
        language, probability = self.identifier.classify(raw)
        return language if language != "en" and probability >= MIN_PROBABILITY else "en"
