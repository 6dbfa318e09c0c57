"""The one place that builds the running system from settings: engine, assistant, service.

`app.py`, the command line, the evaluations, the benchmarks and the tests all build through here.
The embedder is passable so a test of plumbing can use the hashing fake; everything else follows
from `Settings`.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from assistant.compose.model import ModelComposer
from assistant.compose.templates import Composer, Templates
from assistant.embedder import BatchingEmbedder, Embedder, HashingEmbedder, PackagedMiniLM
from assistant.engine import Engine
from assistant.flow import Assistant
from assistant.knowledge import KnowledgeBase, load_knowledge
from assistant.learned import TrainingSet, load_or_train, load_thresholds
from assistant.retrieval.index import DepartmentIndex
from assistant.retrieval.match import Matcher
from assistant.service import CareService
from assistant.settings import Settings, set_offline_environment
from assistant.store.database import Store
from assistant.turn.dialogue import Dialogue
from assistant.turn.language import LanguageReader
from assistant.turn.safety import SafetyChecker
from assistant.turn.understand import Understander


def build_engine(settings: Settings | None = None, embedder: Embedder | None = None) -> Engine:
    """Knowledge, model, index and the reading steps, loaded and warmed once per process."""
    set_offline_environment()
    settings = settings or Settings()
    threadpool_limits(settings.blas_threads, user_api="blas")  # for the whole process: see the setting
    kb = load_knowledge(settings.knowledge_dir)
    # concurrent turns (the web app's pool, the page's queue) share one model call; alone, a turn waits for nothing
    embedder = embedder or configured_embedder(settings)
    if not isinstance(embedder, BatchingEmbedder):
        embedder = BatchingEmbedder(embedder)
    index = DepartmentIndex(kb, embedder, settings)
    index.open()
    safety = SafetyChecker.load(settings.knowledge_dir / "safety", kb.language, embedder)
    training = training_set(settings, safety, kb)
    models = load_or_train(training, settings.knowledge_dir, settings.models_dir, embedder)
    understander = Understander(kb, training.everyday_words())
    safety.use_classifier(models, load_thresholds(settings.knowledge_dir))
    languages = LanguageReader.load(settings.prompts_dir / "languages.yaml")
    languages.identifier  # noqa: B018 (loaded now, not on the first visitor's message)
    return Engine(
        settings=settings,
        kb=kb,
        embedder=embedder,
        index=index,
        safety=safety,
        understander=understander,
        dialogue=Dialogue(settings.knowledge_dir / "dialogue" / "intents.yaml",
                          settings.prompts_dir / "questions.yaml"),
        matcher=Matcher(kb, index, understander, settings.weights, models),
        models=models,
        languages=languages,
    )


def training_set(settings: Settings, safety: SafetyChecker, kb: KnowledgeBase) -> TrainingSet:
    """What the classifiers learn from: knowledge/training/, the safety files' examples and the guidance's Chinese
    danger signs, and the Chinese vocabulary."""
    return TrainingSet.load(
        settings.knowledge_dir,
        alarming=[exemplar.text for exemplar in safety.exemplars.emergency],
        calm=[*safety.exemplars.calm, *safety.scope.in_scope_examples, *safety.scope.off_topic_examples],
        chinese_signs=[sign for family in safety.guidance.families if family.level == "emergency"
                       for sign in family.signs_zh],
        chinese_terms=[(entry.term, max(entry.codes, key=entry.codes.get)) for entry in kb.vocabulary
                       if entry.lang == "zh"],
    )


def learned_training_set(settings: Settings) -> TrainingSet:
    kb = load_knowledge(settings.knowledge_dir)
    return training_set(settings, SafetyChecker.load(settings.knowledge_dir / "safety", kb.language), kb)


def configured_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "hashing":
        return HashingEmbedder()
    return PackagedMiniLM(settings.embedding_model_dir, threads=settings.torch_threads)


def build_composer(settings: Settings, engine: Engine) -> Composer:
    """Templates by default; a language model rephrases them when an endpoint is configured."""
    kb = engine.kb
    templates = Templates(settings.prompts_dir, engine.safety.numbers, engine.languages.others)
    if settings.language_model_enabled:
        return ModelComposer(templates, kb, settings)
    return Composer(templates, kb)


def build_assistant(settings: Settings | None = None, embedder: Embedder | None = None,
                    engine: Engine | None = None) -> Assistant:
    """An assistant over a new engine, or over `engine` with other settings (e.g. model phrasing)."""
    engine = engine or build_engine(settings, embedder)
    settings = settings or engine.settings
    return Assistant(engine, build_composer(settings, engine), settings)


def build_service(settings: Settings | None = None, embedder: Embedder | None = None,
                  assistant: Assistant | None = None) -> CareService:
    """What the web app serves: an assistant and the store of conversations, referrals and keys."""
    settings = settings or (assistant.settings if assistant else Settings())
    assistant = assistant or build_assistant(settings, embedder)
    return CareService(assistant, Store.open(settings.database, busy_timeout_ms=settings.db_busy_timeout_ms))
