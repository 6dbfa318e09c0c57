"""The peer `make load` measures us against: a stock LangChain RAG server over the same index.

What a LangChain tutorial builds: FastAPI, one sync endpoint, langchain-chroma's retriever over the Chroma
collection our index wrote, the same packaged embedding model behind LangChain's `Embeddings` interface. No
safety, no understanding, no dialogue, no storage, no templates: the retrieval our turn also does, and
nothing else. It is never part of the product; `benchmarks.load` starts it with
`python -m benchmarks.langchain_peer` (HOST and PORT from the environment) once our server has stopped.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel

from assistant.embedder import PackagedMiniLM
from assistant.knowledge import load_knowledge
from assistant.retrieval.index import DepartmentIndex
from assistant.settings import Settings, set_offline_environment

RETRIEVED = 4  # LangChain's default k


class Question(BaseModel):
    text: str


class Passage(BaseModel):
    text: str
    department_id: str


def peer_app(settings: Settings) -> FastAPI:
    """Our index opened with the bare model (no batching): its `store` is langchain-chroma's `Chroma` over the
    collection our server uses, and the retriever is that store's own."""
    index = DepartmentIndex(load_knowledge(settings.knowledge_dir),
                            PackagedMiniLM(settings.embedding_model_dir, threads=settings.torch_threads), settings)
    index.open()
    retriever = index.store.as_retriever(search_kwargs={"k": RETRIEVED})
    app = FastAPI(title="stock LangChain RAG peer")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ready"}

    @app.post("/ask")
    def ask(question: Question) -> list[Passage]:
        documents = retriever.invoke(question.text)
        return [Passage(text=doc.page_content, department_id=str(doc.metadata.get("department_id", "")))
                for doc in documents]

    return app


def main() -> None:
    import uvicorn

    set_offline_environment()
    uvicorn.run(peer_app(Settings()), host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]),
                access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
