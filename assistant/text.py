"""Text normalisation shared by the vocabulary lookup, BM25 and the safety rules.

Chinese has no spaces, so runs of Chinese characters become character bigrams
(plus the single characters of one-character runs); Latin text becomes lower-case words
with apostrophes dropped, so "can't" and "cant" read the same.
"""

from __future__ import annotations

import re
import unicodedata

import opencc
from confusable_homoglyphs.confusables import confusables_data

CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
TRADITIONAL_TO_SIMPLIFIED = opencc.OpenCC("t2s")
WORD = re.compile(r"[a-z0-9]+(?:[-+][a-z0-9]+)*")
APOSTROPHES = re.compile(r"[’'`´]")


def _look_alikes() -> dict[int, str]:
    """Letters of other scripts drawn like a Latin letter, from Unicode's confusables table (TR39, as the
    confusable-homoglyphs package ships it): a Cyrillic "е" in "brеathing" must read "e". Case matters
    there ("М" looks like "M", "м" like nothing Latin), so folding comes before lower-casing."""
    return str.maketrans({source: target for source, entries in confusables_data.items() for entry in entries[:1]
                          if len(source) == 1 and not source.isascii() and unicodedata.category(source)[0] == "L"
                          and len(target := entry["c"]) == 1 and target.isascii() and target.isalpha()})


LOOK_ALIKES = _look_alikes()
# Unicode's format characters (category Cf): soft hyphen, zero-width space and joiners, direction marks, tags.
INVISIBLE = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
LETTERS = re.compile(r"[^\W\d_]+")
LATIN_LETTER = re.compile(r"[A-Za-z]")

STOPWORDS = frozenset(
    "a an and are as at be been but by for from had has have he her his i im in is it its me my of on or our "
    "she so that the their them they this to was we were what when which who will with you your".split()
)


def normalize(text: str) -> str:
    """Lower-case, NFKC (full-width to half-width), apostrophes dropped, spaces collapsed; invisible characters
    (soft hyphens, zero-width spaces and joiners, direction marks) dropped and look-alike letters folded, since
    "k\u200bill myself" or a Cyrillic letter in "breathing" must not hide an emergency from the safety rules."""
    text = INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    text = simplified(text)  # Hong Kong and Taiwan write 沒有 and 體溫 where the rules and vocabulary say 没有, 体温
    text = LETTERS.sub(_fold_look_alikes, text).lower() if not text.isascii() else text.lower()
    text = APOSTROPHES.sub("", text)
    return re.sub(r"\s+", " ", text).strip()


def simplified(text: str) -> str:
    """Traditional Chinese characters as simplified ones; text without Chinese is returned as it is."""
    return TRADITIONAL_TO_SIMPLIFIED.convert(text) if CJK_RUN.search(text) else text


def _fold_look_alikes(match: re.Match[str]) -> str:
    """A word mixing scripts ("brеathing"), or one drawn only in look-alikes ("Ηı"), reads as Latin; a word
    of real Greek or Russian, with letters Latin has no look-alike for, stays as written."""
    word = match.group(0)
    folded = word.translate(LOOK_ALIKES)
    return folded if LATIN_LETTER.search(word) or folded.isascii() else word


def first_control_character(text: str) -> str | None:
    """Text a person typed has no control characters but newlines and tabs; others point at a broken client
    or at someone forging log lines and terminal colours."""
    return next((ch for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t"), None)


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
