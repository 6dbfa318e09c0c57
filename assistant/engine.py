"""The loaded engine: knowledge, model, index, understanding and matching, warmed up once.

Heavy things (the embedding model, Chroma) load in `Engine.load`, never at import, so
importing the package is cheap and a web app can report readiness honestly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache

from assistant.index import DepartmentIndex, IndexStats, LocalEmbeddings
from assistant.knowledge import KnowledgeBase, load_knowledge
from assistant.match import Candidate, Matcher
from assistant.settings import Settings, set_offline_environment
from assistant.understand import Case, Understander

log = logging.getLogger(__name__)


@dataclass
class MatchResult:
    case: Case
    candidates: list[Candidate]
    seconds: float


class Engine:
    def __init__(self, settings: Settings, kb: KnowledgeBase, embeddings: LocalEmbeddings,
                 index: DepartmentIndex) -> None:
        self.settings = settings
        self.kb = kb
        self.embeddings = embeddings
        self.index = index
        self.understander = Understander(kb)
        self.matcher = Matcher(kb, index, self.understander, settings.weights)
        # one turn embeds its message for safety and the case for matching: usually the same text
        self._embed = lru_cache(maxsize=1024)(lambda text: tuple(embeddings.embed_query(text)))

    @classmethod
    def load(cls, settings: Settings | None = None, embeddings: LocalEmbeddings | None = None) -> Engine:
        set_offline_environment()
        settings = settings or Settings()
        kb = load_knowledge(settings.knowledge_dir)
        embeddings = embeddings or LocalEmbeddings(settings.embedding_model_dir)
        index = DepartmentIndex(kb, embeddings, settings)
        index.open()
        return cls(settings, kb, embeddings, index)

    @property
    def index_stats(self) -> IndexStats | None:
        return self.index.stats

    def embed(self, text: str) -> list[float]:
        return list(self._embed(text))

    def forget_embeddings(self) -> None:
        """Benchmarks call this so a repeated message pays for its embedding like a new one."""
        self._embed.cache_clear()

    def rank(self, case: Case, hospital_id: str | None = None) -> list[Candidate]:
        return self.matcher.rank(case, self.embed(case.search_text), hospital_id, self.settings.candidates)

    def match(self, text: str, hospital_id: str | None = None) -> MatchResult:
        """One message, no conversation: what `python -m assistant match` and the ranking tests use."""
        started = time.perf_counter()
        case = self.understander.update(Case(), text)
        candidates = self.rank(case, hospital_id)
        return MatchResult(case, candidates, time.perf_counter() - started)
