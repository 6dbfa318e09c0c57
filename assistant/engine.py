"""The loaded engine: knowledge, embedder, index and the steps that read a message, built once per process.

Heavy things (the embedding model, Chroma, the safety exemplars' vectors) are loaded by
`assistant.build.build_engine`, never at import, so importing the package is cheap and a web app can
report readiness honestly. Several assistants (template or model phrasing) can share one engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from assistant.case import Case
from assistant.embedder import Embedder
from assistant.knowledge import KnowledgeBase
from assistant.learned import LearnedModels
from assistant.reply import Recommendation
from assistant.retrieval.index import DepartmentIndex, IndexStats
from assistant.retrieval.match import Matcher
from assistant.settings import Settings
from assistant.turn.dialogue import Dialogue
from assistant.turn.language import LanguageReader
from assistant.turn.message import Message
from assistant.turn.safety import SafetyChecker
from assistant.turn.understand import Understander


@dataclass(frozen=True)
class MatchResult:
    case: Case
    recommendations: list[Recommendation]
    seconds: float


@dataclass(frozen=True)
class Engine:
    settings: Settings
    kb: KnowledgeBase
    embedder: Embedder
    index: DepartmentIndex
    safety: SafetyChecker
    understander: Understander
    dialogue: Dialogue
    matcher: Matcher
    models: LearnedModels
    languages: LanguageReader

    @property
    def index_stats(self) -> IndexStats | None:
        return self.index.stats

    def read(self, text: str) -> Message:
        return Message.read(text, self.embedder, self.languages)

    def rank(self, case: Case, message: Message, hospital_id: str | None = None) -> list[Recommendation]:
        return self.matcher.rank(case, message, hospital_id, self.settings.candidates)

    def match(self, text: str, hospital_id: str | None = None) -> MatchResult:
        """One message, no conversation: what `python -m assistant match` and the ranking tests use."""
        started = time.perf_counter()
        message = self.read(text)
        case = Case()
        case.add(self.understander.read(message))
        recommendations = self.rank(case, message, hospital_id)
        return MatchResult(case, recommendations, time.perf_counter() - started)
