"""The index is reused while the knowledge is unchanged and rebuilt when it changes, all offline."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from assistant.knowledge import load_knowledge
from assistant.retrieval.index import DepartmentIndex, build_chunks
from assistant.settings import PROJECT_ROOT, Settings


def test_every_department_has_a_profile_chunk_and_one_chunk_per_claim(kb):
    chunks = build_chunks(kb)
    profiles = [chunk for chunk in chunks if chunk.claim == -1]
    assert len(profiles) == len(kb.departments)
    claims = sum(len(dept.claims()) for dept in kb.departments.values())
    assert len(chunks) == len(kb.departments) + claims


def test_unchanged_knowledge_reuses_the_stored_index(tmp_path, fake_embedder):
    settings = Settings(data_dir=tmp_path)
    kb = load_knowledge(settings.knowledge_dir)
    first = DepartmentIndex(kb, fake_embedder, settings).open()
    second = DepartmentIndex(kb, fake_embedder, settings).open()
    assert not first.reused and second.reused
    assert first.collection == second.collection


def test_changed_knowledge_builds_a_new_index_and_drops_the_old_one(tmp_path, knowledge_copy, fake_embedder):
    import chromadb

    settings = Settings(data_dir=tmp_path / "data", knowledge_dir=knowledge_copy)
    old = DepartmentIndex(load_knowledge(knowledge_copy), fake_embedder, settings).open()
    path = knowledge_copy / "hospitals" / "sphic.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["departments"][0]["summary"] += " Also heavy ions for children."
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    new = DepartmentIndex(load_knowledge(knowledge_copy), fake_embedder, settings).open()
    assert new.collection != old.collection and not new.reused
    names = {c.name for c in chromadb.PersistentClient(path=str(settings.chroma_dir)).list_collections()}
    assert names == {new.collection}


def test_an_incomplete_index_is_rebuilt(tmp_path, kb, fake_embedder):
    settings = Settings(data_dir=tmp_path)
    index = DepartmentIndex(kb, fake_embedder, settings)
    index.open()
    index.store._collection.delete(ids=[index.chunks[0].id])
    again = DepartmentIndex(kb, fake_embedder, settings).open()
    assert not again.reused and again.chunks == len(index.chunks)


def test_dense_search_filters_by_hospital(engine):
    vector = engine.embedder.embed(["brain tumour surgery"])[0]
    hits = engine.index.dense(vector, k=20, where={"hospital_id": "huashan"})
    assert hits and all(chunk_id.startswith("huashan/") for chunk_id in hits)


def test_lexical_search_finds_chinese_text(engine):
    hits = engine.index.lexical("肝移植")
    assert hits, "Chinese bigrams should reach department chunks that carry Chinese names"


def test_the_tests_cannot_reach_the_internet():
    with pytest.raises(OSError):
        socket.create_connection(("93.184.216.34", 80), timeout=2)


def test_the_engine_starts_with_the_network_blocked_in_a_fresh_process(tmp_path: Path, engine):
    """A separate interpreter with every non-loopback connection refused still loads the model and matches
    (on the index the session built, which it reuses: building one needs no network either)."""
    script = f"""
import socket
real = socket.socket.connect
def guarded(self, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        raise OSError("blocked: " + str(address))
    return real(self, address)
socket.socket.connect = guarded
from assistant.build import build_engine
from assistant.settings import Settings
engine = build_engine(Settings(data_dir={str(engine.settings.data_dir)!r}))
print(engine.match("relapsed multiple myeloma").recommendations[0].department_id)
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "/" in done.stdout


def test_dense_search_is_exact_and_the_same_on_every_build(tmp_path, kb, fake_embedder):
    """Rankings, and so evaluation scores, must not move when the same knowledge is indexed again."""
    queries = fake_embedder.embed(["relapsed myeloma car-t", "my baby has a hole in the heart", "knee gives way",
                                   "glioma surgery", "cataract in both eyes", "biliary atresia transplant"])
    first, second = (DepartmentIndex(kb, fake_embedder, Settings(data_dir=tmp_path / name)) for name in "ab")
    first.open()
    second.open()
    vectors = fake_embedder.embed([chunk.text for chunk in first.chunks])
    for query in queries:
        scores = dict(zip((chunk.id for chunk in first.chunks), vectors @ query, strict=True))
        hundredth = sorted(scores.values(), reverse=True)[99]
        surely_in = {chunk_id for chunk_id, score in scores.items() if score > hundredth + 1e-6}
        for index in (first, second):  # exact up to chunks that tie with the 100th on score
            found = set(index.dense(query, k=100))
            assert len(found) == 100 and surely_in <= found, (query, surely_in - found)
            assert all(scores[chunk_id] >= hundredth - 1e-6 for chunk_id in found)
