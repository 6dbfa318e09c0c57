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
# Cyrillic and Greek letters drawn like Latin ones, for words that mix them with Latin letters: "brеathing" with a
# Cyrillic "е" must read as "breathing". Whole Greek words ("α-thalassemia") stay as they are.
LOOK_ALIKES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "һ": "h", "ԛ": "q", "ԝ": "w", "ɡ": "g",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
})
# Unicode's format characters (category Cf): soft hyphen, zero-width space and joiners, direction marks, tags.
INVISIBLE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
MIXED_SCRIPT_WORD = re.compile(r"[^\W\d_]*[a-z][^\W\d_]*")

STOPWORDS = frozenset(
    "a an and are as at be been but by for from had has have he her his i im in is it its me my of on or our "
    "she so that the their them they this to was we were what when which who will with you your".split()
)


def normalize(text: str) -> str:
    """Lower-case, NFKC (full-width to half-width), apostrophes dropped, spaces collapsed; invisible characters
    (soft hyphens, zero-width spaces and joiners, direction marks) dropped and look-alike letters folded, since
    "k\u200bill myself" or a Cyrillic letter in "breathing" must not hide an emergency from the safety rules."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = INVISIBLE.sub("", text)
    text = MIXED_SCRIPT_WORD.sub(_fold_look_alikes, text)
    text = APOSTROPHES.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def _fold_look_alikes(word: re.Match[str]) -> str:
    return word.group(0).translate(LOOK_ALIKES)


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
