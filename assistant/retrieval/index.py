"""Chunk the departments, embed them with the packaged model, store them in Chroma, and search.

The Chroma collection is named by a fingerprint of the knowledge, the model and the chunking,
so unchanged knowledge reuses the stored index and changed knowledge builds a new one.
We always pass our own embeddings: Chroma's default embedding function would download a model.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from dataclasses import dataclass

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.embedder import Embedder
from assistant.knowledge import Department, Hospital, KnowledgeBase
from assistant.settings import Settings
from assistant.text import search_tokens, tokens_of_normalized

log = logging.getLogger(__name__)

CHUNKING_VERSION = "dept-profile+claims+zh-terms-v2"
ZH_TERMS_PER_DEPARTMENT = 20
CHROMA_MAX_BATCH = 5000  # Chroma rejects adds above 5,461 records
EXACT_SEARCH_VERSION = "search-ef-covers-index"


def hnsw_metadata(chunk_count: int) -> dict[str, str | int]:
    """A search list as long as the index makes HNSW visit every chunk: exact, and the same on every build of
    the same knowledge. With Chroma's default the graph, built in parallel, differs between builds: only 40
    of 120 held-out queries got the same 100 nearest chunks from two builds, and rankings moved with them."""
    return {"hnsw:space": "cosine", "hnsw:search_ef": max(1000, chunk_count)}


class LangChainEmbeddings(Embeddings):
    """Our embedder in LangChain's shape, for the Chroma vector store (and the stock recipe baseline)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed([text])[0].tolist()


@dataclass(frozen=True)
class Chunk:
    """One searchable piece of a department: its profile, or one sourced claim."""

    id: str
    department_id: str
    hospital_id: str
    audience: str
    text: str
    claim: int  # -1 for the profile chunk, else the index into Department.claims()


def chinese_terms_by_code(kb: KnowledgeBase) -> dict[str, list[str]]:
    """Chinese vocabulary per specialty code (where it is the term's strongest code), strongest first.

    Profiles are written in English; these terms let lexical search reach them from a Chinese message.
    They are search aids only and never shown as a hospital fact.
    """
    by_code: dict[str, list[tuple[float, str]]] = {}
    for entry in kb.vocabulary:
        if entry.lang == "zh":
            code = max(entry.codes, key=entry.codes.get)
            by_code.setdefault(code, []).append((entry.codes[code], entry.term))
    return {code: [term for _, term in sorted(terms, reverse=True)] for code, terms in by_code.items()}


def department_profile_text(hospital: Hospital, dept: Department, specialty_names: dict[str, str],
                            zh_terms: list[str]) -> str:
    names = ", ".join(specialty_names.get(code, code) for code in dept.specialties)
    zh = f" ({dept.name_zh})" if dept.name_zh else ""
    conditions = "; ".join(dept.conditions)
    programmes = "; ".join(p.name for p in dept.programmes)
    parts = [f"{dept.name}{zh}, {hospital.name} ({hospital.name_zh}).", f"Specialties: {names}.", dept.summary]
    if conditions:
        parts.append(f"Treats: {conditions}.")
    if programmes:
        parts.append(f"Programmes: {programmes}.")
    if zh_terms:
        parts.append(f"中文: {'、'.join(zh_terms)}")
    return " ".join(parts)


def build_chunks(kb: KnowledgeBase) -> list[Chunk]:
    specialty_names = {code: spec.name for code, spec in kb.specialties.items()}
    zh_by_code = chinese_terms_by_code(kb)
    chunks = []
    for hospital in kb.hospitals.values():
        short = hospital.aliases[0] if hospital.aliases else hospital.name
        for dept in hospital.departments:
            common = {"department_id": dept.id, "hospital_id": hospital.id, "audience": dept.audience}
            zh_terms = list(dict.fromkeys(t for code in dept.specialties for t in zh_by_code.get(code, [])))
            profile = department_profile_text(hospital, dept, specialty_names, zh_terms[:ZH_TERMS_PER_DEPARTMENT])
            chunks.append(Chunk(id=f"{dept.id}#profile", text=profile, claim=-1, **common))
            for i, claim in enumerate(dept.claims()):
                chunks.append(Chunk(id=f"{dept.id}#claim{i}", text=f"{dept.name}, {short}: {claim.text}",
                                    claim=i, **common))
    return chunks


def index_fingerprint(kb: KnowledgeBase, model_name: str) -> str:
    key = f"{kb.fingerprint}|{model_name}|{CHUNKING_VERSION}|{EXACT_SEARCH_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class IndexStats:
    collection: str
    chunks: int
    reused: bool
    seconds: float


class DepartmentIndex:
    """Dense (Chroma) and lexical (BM25) search over department chunks.

    Dense scores come from Chroma; BM25 lives in memory because it is rebuilt from the
    same chunks in milliseconds.
    """

    def __init__(self, kb: KnowledgeBase, embedder: Embedder, settings: Settings) -> None:
        self.kb = kb
        self.embedder = embedder
        self.settings = settings
        self.chunks = build_chunks(kb)
        self.chunk_by_id = {chunk.id: chunk for chunk in self.chunks}
        self.collection_name = f"departments-{index_fingerprint(kb, embedder.name)}"
        self.store = None
        self.stats: IndexStats | None = None
        self._bm25 = None

    # --- building -------------------------------------------------------------------------
    def _client(self):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if self.settings.chroma_host:
            return chromadb.HttpClient(host=self.settings.chroma_host, port=self.settings.chroma_port,
                                       settings=chroma_settings)
        self.settings.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.settings.chroma_dir), settings=chroma_settings)

    def open(self) -> IndexStats:
        """Reuse the collection for this fingerprint if it is complete, else build it."""
        from langchain_chroma import Chroma

        started = time.perf_counter()
        try:
            client = self._client()
            existing = {collection.name for collection in client.list_collections()}
        except Exception as error:  # noqa: BLE001  (chromadb raises many kinds for a damaged file)
            if self.settings.chroma_host:
                raise
            log.warning("index at %s is unreadable (%s: %s): rebuilding it from knowledge",
                        self.settings.chroma_dir, type(error).__name__, error)
            self._discard_local_index()
            client = self._client()
            existing = set()
        reused = False
        if self.collection_name in existing:
            count = client.get_collection(self.collection_name).count()
            reused = count == len(self.chunks)
            if not reused:
                log.warning("index %s is incomplete (%d of %d chunks): rebuilding",
                            self.collection_name, count, len(self.chunks))
                client.delete_collection(self.collection_name)
        self.store = Chroma(
            client=client,
            collection_name=self.collection_name,
            embedding_function=LangChainEmbeddings(self.embedder),
            collection_metadata=hnsw_metadata(len(self.chunks)),
        )
        if not reused:
            self._add_all()
            self._drop_stale_collections(client, existing)
        self._build_bm25()
        self.stats = IndexStats(self.collection_name, len(self.chunks), reused, time.perf_counter() - started)
        log.info("index %s: %d chunks, %s in %.2fs", self.collection_name, len(self.chunks),
                 "reused" if reused else "built", self.stats.seconds)
        return self.stats

    def _discard_local_index(self) -> None:
        """The embedded index is derived data: a damaged one is deleted and built again."""
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        shutil.rmtree(self.settings.chroma_dir, ignore_errors=True)

    def _add_all(self) -> None:
        vectors = self.embedder.embed([chunk.text for chunk in self.chunks])
        collection = self.store._collection
        for start in range(0, len(self.chunks), CHROMA_MAX_BATCH):
            batch = self.chunks[start : start + CHROMA_MAX_BATCH]
            collection.add(
                ids=[chunk.id for chunk in batch],
                documents=[chunk.text for chunk in batch],
                embeddings=vectors[start : start + len(batch)],
                metadatas=[{"department_id": c.department_id, "hospital_id": c.hospital_id,
                            "audience": c.audience, "claim": c.claim} for c in batch],
            )

    def _drop_stale_collections(self, client, existing: set[str]) -> None:
        """Old fingerprints are dead weight once a new index is complete."""
        for name in existing:
            if name.startswith("departments-") and name != self.collection_name:
                client.delete_collection(name)

    def _build_bm25(self) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._bm25 = bm25s.BM25()
        self._bm25.index([search_tokens(chunk.text) or ["_"] for chunk in self.chunks], show_progress=False)

    # --- searching ------------------------------------------------------------------------
    def dense(self, query_vector: np.ndarray, k: int, where: dict | None = None) -> dict[str, float]:
        """Best cosine similarity per chunk id among the k nearest chunks.

        Asks the collection for ids and distances only: LangChain's search also reads each chunk's text and
        metadata back, which ranking never uses (8.4 ms -> 3.5 ms for 100 chunks here)."""
        found = self.store._collection.query(query_embeddings=[np.asarray(query_vector).tolist()], n_results=k,
                                             where=where, include=["distances"])
        return {chunk_id: 1.0 - distance for chunk_id, distance in zip(found["ids"][0], found["distances"][0],
                                                                       strict=True)}

    def lexical(self, normalized: str) -> dict[str, float]:
        """BM25 score per chunk id (only chunks sharing a token with the query); the text is already normalised."""
        tokens = tokens_of_normalized(normalized)
        if not tokens:
            return {}
        scores = self._bm25.get_scores(tokens)
        return {self.chunks[i].id: float(scores[i]) for i in np.flatnonzero(scores > 0)}
