"""Text normalisation shared by the vocabulary lookup, BM25 and the safety rules.

Chinese has no spaces, so runs of Chinese characters become character bigrams
(plus the single characters of one-character runs); Latin text becomes lower-case words
with apostrophes dropped, so "can't" and "cant" read the same.
"""

from __future__ import annotations

import re
import unicodedata

CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
WORD = re.compile(r"[a-z0-9]+(?:[-+][a-z0-9]+)*")
APOSTROPHES = re.compile(r"[’'`´]")

STOPWORDS = frozenset(
    "a an and are as at be been but by for from had has have he her his i im in is it its me my of on or our "
    "she so that the their them they this to was we were what when which who will with you your".split()
)


def normalize(text: str) -> str:
    """Lower-case, NFKC (full-width to half-width), apostrophes dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = APOSTROPHES.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def has_cjk(text: str) -> bool:
    return bool(CJK_RUN.search(text))


def letter_counts(raw: str, normalized: str | None = None) -> tuple[int, int]:
    """Chinese characters and Latin letters: their share tells a Chinese message from an English one
    with a Chinese name. Counts add up over messages, so a case's share needs no re-reading."""
    cjk = sum(len(run) for run in CJK_RUN.findall(raw))
    latin = sum(len(word) for word in WORD.findall(normalize(raw) if normalized is None else normalized))
    return cjk, latin


def share_of_chinese(cjk: int, latin: int) -> float:
    return cjk / (cjk + latin) if cjk + latin else 0.0


def _stem(word: str) -> str:
    """A light plural/suffix fold so 'tumours' finds 'tumour'; BM25 needs no more."""
    for suffix in ("ies", "es", "s"):
        if len(word) > 4 and word.endswith(suffix) and not word.endswith("ss"):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def search_tokens(text: str) -> list[str]:
    """Tokens for lexical search: stemmed words without stopwords, and Chinese bigrams."""
    return tokens_of_normalized(normalize(text))


def tokens_of_normalized(normalized: str) -> list[str]:
    """`search_tokens` of text that `normalize` has already read."""
    tokens = [_stem(word) for word in WORD.findall(normalized) if word not in STOPWORDS]
    for run in CJK_RUN.findall(normalized):
        if len(run) == 1:
            tokens.append(run)
        tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
    return tokens
