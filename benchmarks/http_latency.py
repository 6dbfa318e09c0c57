"""A turn over HTTP against the real server: cold start to /healthz, JSON reply and first SSE event.

It starts `app.py` (what `make run` starts) on a free loopback port with a fresh database, then holds
realistic 3-turn conversations one at a time, so the numbers are per-request cost, not queueing.
The ratio column divides by the same kind of turn through `Assistant.reply` in this process (first
message or follow-up), measured in the same run: what HTTP, JSON and the database add.
Run: `python -m benchmarks.http_latency`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.results import write_results
from benchmarks.serve import free_port, healthz_answers, wait_until_ready
from evals.metrics import percentile

ROOT = Path(__file__).parent.parent
CONVERSATIONS = 30
STORIES = [  # {n} makes every first message new, so no embedding comes from the cache
    ("My {n}-year-old father's multiple myeloma relapsed twice; we are looking for CAR-T.",
     "Tell me more about the first one", "What do I need to bring?"),
    ("My son is {n} months old and needs a liver transplant", "How do I pay?", "Do I need a visa?"),
    ("I am {n} and have a glioma; I want a second opinion on surgery", "Tell me more about the second one",
     "What do I need to bring?"),
]


def story(n: int) -> tuple[str, ...]:
    first, *rest = STORIES[n % len(STORIES)]
    return (first.format(n=20 + n), *rest)



def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "CARE_DATA_DIR": str(data_dir), "HOST": "127.0.0.1", "PORT": str(port),
           "CARE_RATE_LIMITS__ENABLED": "false"}  # one client address on loopback, many conversations
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_until_ready(process, healthz_answers(f"http://127.0.0.1:{port}"), limit_s=180)
    return process, time.perf_counter() - started


def timed_turns(base: str) -> dict[str, list[float]]:
    """Turn 1 (the case) as JSON, turn 2 (a follow-up) as SSE, turn 3 (a follow-up) as JSON."""
    timings: dict[str, list[float]] = {"first message, JSON": [], "follow-up, SSE first event": [],
                                       "follow-up, SSE whole reply": [], "follow-up, JSON": []}
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(CONVERSATIONS):
            conversation = client.post("/api/v1/conversations").json()["conversation_id"]
            url = f"/api/v1/conversations/{conversation}/messages"
            first, sse_text, last = story(n)
            started = time.perf_counter()
            client.post(url, json={"text": first}).raise_for_status()
            timings["first message, JSON"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            with client.stream("POST", url, json={"text": sse_text}, headers={"Accept": "text/event-stream"}) as r:
                first_event = None
                for line in r.iter_lines():
                    if first_event is None and line.startswith("data:"):
                        first_event = (time.perf_counter() - started) * 1000
            timings["follow-up, SSE first event"].append(first_event or 0.0)
            timings["follow-up, SSE whole reply"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            client.post(url, json={"text": last}).raise_for_status()
            timings["follow-up, JSON"].append((time.perf_counter() - started) * 1000)
    return timings


def engine_turn_ms() -> tuple[list[float], list[float]]:
    """The same turns through `Assistant.reply` in this process: first messages and follow-ups."""
    from assistant.build import build_assistant

    assistant = build_assistant()
    first_ms, follow_up_ms = [], []
    for n in range(CONVERSATIONS):
        conv = assistant.start()
        for turn, text in enumerate(story(n + CONVERSATIONS)):
            started = time.perf_counter()
            assistant.reply(conv, text)
            (first_ms if turn == 0 else follow_up_ms).append((time.perf_counter() - started) * 1000)
    return first_ms, follow_up_ms


def main() -> None:
    data_dir = Path(os.environ.get("CARE_DATA_DIR", ROOT / "data"))
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["CARE_DATABASE_URL"] = f"sqlite:///{scratch}/bench.db"
        port = free_port()
        process, cold_s = start_server(data_dir, port)
        try:
            rows = timed_turns(f"http://127.0.0.1:{port}")
        finally:
            process.terminate()
            process.wait(timeout=30)
    first_ms, follow_up_ms = engine_turn_ms()
    floors = {"first": percentile(first_ms, 0.5), "follow-up": percentile(follow_up_ms, 0.5)}
    rows |= {"engine, first message (in process)": first_ms, "engine, follow-up (in process)": follow_up_ms}
    data = {"cold_start_to_healthz_s": cold_s, "conversations": CONVERSATIONS,
            "rows": {name: {"p50_ms": percentile(v, 0.5), "p95_ms": percentile(v, 0.95), "n": len(v)}
                     for name, v in rows.items()}}
    lines = [f"Cold start to /healthz (index reused): {cold_s:.1f} s", "",
             "| measure | n | p50 ms | p95 ms | p50 / the same turn in process |", "| --- | --- | --- | --- | --- |"]
    for name, values in rows.items():
        floor = floors["first"] if "first message" in name else floors["follow-up"]
        lines.append(f"| {name} | {len(values)} | {percentile(values, 0.5):.1f} | {percentile(values, 0.95):.1f} | "
                     f"{percentile(values, 0.5) / floor:.2f}x |")
    write_results("http_latency", "A turn over HTTP", data, lines)


if __name__ == "__main__":
    main()
