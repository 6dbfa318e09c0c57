"""Scale: synthetic departments built from the real ones, in embedded Chroma and in a Chroma server.

Synthetic vectors are real profile embeddings plus small noise (normalised), so the store is
measured, not the model. The server is started here on 127.0.0.1 with `chroma run` and stopped at
the end. Reports build time, unfiltered and filtered query p50/p95 and memory for 1k, 10k, 50k.
Run: `python -m benchmarks.scale [--sizes 1000 10000 50000]`.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from assistant.build import configured_embedder
from assistant.knowledge import load_knowledge
from assistant.retrieval.index import CHROMA_MAX_BATCH, build_chunks
from assistant.settings import Settings, set_offline_environment
from benchmarks.results import write_results
from benchmarks.serve import ServerDidNotStart, free_port, wait_until_ready
from evals.metrics import percentile

QUERIES = 60
HOSPITALS = 200


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def synthetic(base: np.ndarray, audiences: list[str], size: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(base), size)
    vectors = base[picks] + rng.normal(0, 0.03, (size, base.shape[1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metadatas = [{"hospital_id": f"h{i % HOSPITALS}", "audience": audiences[p]} for i, p in enumerate(picks)]
    return vectors, metadatas


def measure(client, vectors: np.ndarray, metadatas: list[dict], queries: np.ndarray, name: str) -> dict:
    collection = client.create_collection(name, metadata={"hnsw:space": "cosine"})
    started = time.perf_counter()
    for start in range(0, len(vectors), CHROMA_MAX_BATCH):
        end = start + CHROMA_MAX_BATCH
        collection.add(ids=[f"d{i}" for i in range(start, min(end, len(vectors)))], embeddings=vectors[start:end],
                       metadatas=metadatas[start:end])
    build = time.perf_counter() - started
    timings: dict[str, list[float]] = {"unfiltered": [], "hospital filter": [], "audience filter": []}
    filters = {"unfiltered": None, "hospital filter": {"hospital_id": "h7"}, "audience filter": {"audience": "adult"}}
    for query in queries:
        for label, where in filters.items():
            started = time.perf_counter()
            collection.query(query_embeddings=[query], n_results=10, where=where)
            timings[label].append((time.perf_counter() - started) * 1000)
    row = {"build_s": round(build, 2)}
    for label, values in timings.items():
        row[f"{label} p50 ms"] = percentile(values, 0.5)
        row[f"{label} p95 ms"] = percentile(values, 0.95)
    return row


def start_server(path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    chroma = str(Path(sys.executable).parent / "chroma")
    server = subprocess.Popen([chroma, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(server, lambda: port_accepts(port), limit_s=60)
    except ServerDidNotStart:
        server.kill()
        raise
    return server, port


def port_accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def main() -> None:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--queries", type=int, default=QUERIES)
    args = parser.parse_args()
    set_offline_environment()
    settings = Settings()
    kb = load_knowledge(settings.knowledge_dir)
    embedder = configured_embedder(settings)
    profiles = [chunk for chunk in build_chunks(kb) if chunk.claim == -1]
    base = embedder.embed([chunk.text for chunk in profiles]).astype(np.float32)
    audiences = [chunk.audience for chunk in profiles]
    queries = embedder.embed([f"patient looking for {name}" for name in
                                 [spec.name for spec in kb.specialties.values()]][: args.queries]).astype(np.float32)

    def quiet() -> ChromaSettings:
        """A new settings object per client: chromadb writes the client kind into the one it is given."""
        return ChromaSettings(anonymized_telemetry=False)

    results = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server, port = start_server(workdir / "server")
    try:
        remote = chromadb.HttpClient(host="127.0.0.1", port=port, settings=quiet())
        for size in args.sizes:
            vectors, metadatas = synthetic(base, audiences, size)
            before = rss_mb()
            local = chromadb.PersistentClient(path=str(workdir / f"embedded-{size}"), settings=quiet())
            row = measure(local, vectors, metadatas, queries, f"scale-{size}")
            results.append({"departments": size, "store": "embedded", **row,
                            "memory_mb": round(rss_mb() - before, 1)})
            server_before = rss_mb(server.pid)
            row = measure(remote, vectors, metadatas, queries, f"scale-{size}")
            results.append({"departments": size, "store": "server", **row,
                            "memory_mb": round(rss_mb(server.pid) - server_before, 1)})
            print(results[-2], results[-1], flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    columns = list(results[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in results]
    write_results("scale", "Scale: embedded Chroma vs a Chroma server", results, lines)


if __name__ == "__main__":
    main()
