"""Where a loaded server's time goes: py-spy samples `app.py` while users load it, and a table splits the time.

It starts the server as `benchmarks.load` does (one worker, template composer, a fresh SQLite database,
rate limits off), loads it with `--users` users holding 3-turn conversations, and meanwhile py-spy samples
the server's running threads (one blocked on a lock, a queue or the event loop's select is not sampled);
then it does the same again sampling only the thread that holds the interpreter lock, since one worker runs
one thread's Python at a time and that, not the cores, is what it runs out of first. Each sample is filed
under the first step of the data flow found from the innermost frame outwards (embedding, index search,
safety, ...) and under its thread (the event loop, the turn pool, others): of the server's running time,
this share was the model, this share the database.

    python -m benchmarks.profile_load [--users 50] [--seconds 20] [--raw stacks.txt]

Writes benchmarks/results/profile.md and .json. It needs py-spy (`pip install py-spy`) and may need
ptrace permission; it is never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from benchmarks.load import WARMUP_S, run_level, start_server, stop_server, summarize
from benchmarks.results import write_results
from benchmarks.serve import free_port

# (label, path or module fragments): the first label whose fragment is in a frame, innermost frame first
STEPS = [
    ("embedding model (torch, tokenizer)", ("sentence_transformers", "torch/", "transformers/", "tokenizers")),
    ("embedding batching (waiting for the model)", ("assistant/embedder.py",)),
    ("index search (Chroma, BM25)", ("chromadb", "bm25s", "langchain_chroma", "assistant/retrieval/index.py")),
    ("safety (rules, classifier)", ("assistant/turn/safety.py", "assistant/turn/vitals.py", "assistant/learned.py",
                                    "sklearn")),
    ("understanding and dialogue", ("assistant/turn/", "assistant/case.py", "rapidfuzz", "py3langid", "opencc")),
    ("ranking", ("assistant/retrieval/",)),
    ("templates and reply", ("jinja2", "assistant/compose/", "assistant/reply.py")),
    ("database (SQLAlchemy, SQLite)", ("sqlalchemy", "sqlite3", "assistant/store/")),
    ("JSON and validation (pydantic)", ("pydantic", "json/", "assistant/conversation.py")),
    ("HTTP and framework (uvicorn, starlette, fastapi)", ("uvicorn", "starlette", "fastapi", "h11", "httptools",
                                                          "anyio", "assistant/web/")),
]
def step_of(stack: list[str]) -> str:
    """The data-flow step a sample belongs to, from its innermost frame outwards."""
    for frame in reversed(stack):
        for label, fragments in STEPS:
            if any(fragment in frame for fragment in fragments):
                return label
    return "other Python"


def thread_of(first_frame: str) -> str:
    """py-spy's `--threads` puts `thread (id): name` first."""
    name = first_frame.partition("): ")[2]
    if name == "MainThread":
        return "event loop (HTTP, JSON, routing)"
    return "turn pool (the engine)" if name.startswith("turn") else "other threads"


def split(raw: Path) -> tuple[Counter, Counter]:
    """Samples by step and by thread (py-spy's raw format: `thread;frame;...;frame count`)."""
    steps: Counter = Counter()
    threads: Counter = Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stack = stack_text.split(";")
        steps[step_of(stack[1:])] += int(count)
        threads[thread_of(stack[0])] += int(count)
    return steps, threads


def table(steps: Counter, threads: Counter) -> list[str]:
    total = sum(steps.values()) or 1
    lines = ["| step | share of running samples |", "| --- | --- |"]
    lines += [f"| {label} | {count / total:.1%} |" for label, count in steps.most_common()]
    lines += ["", "| thread | share of running samples |", "| --- | --- |"]
    lines += [f"| {label} | {count / total:.1%} |" for label, count in threads.most_common()]
    return lines


def profile_once(args: argparse.Namespace, scratch: Path, holding_the_lock: bool) -> tuple[dict, Path]:
    """One loaded run with py-spy attached: its load summary and py-spy's raw stacks."""
    port = free_port(args.host)
    server = start_server(args.host, port, 1, scratch)
    raw = scratch / ("gil.txt" if holding_the_lock else "running.txt")
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(server.pid), "--rate", "100", "--threads",
                            "--format", "raw", "--nonblocking", "-d", str(int(WARMUP_S + args.seconds)),
                            *(["--gil"] if holding_the_lock else []), "-o", str(raw)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        samples, window, cpu = asyncio.run(run_level(f"http://{args.host}:{port}", args.users, args.seconds,
                                                     itertools.count(), server_group=server.pid))
        spy.wait(timeout=60)
    finally:
        stop_server(server)
    return summarize(samples, window, args.seconds, cpu), raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw stacks (for a flame graph): stacks.txt "
                                                 "keeps stacks-running.txt and stacks-gil.txt")
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    runs: dict[str, tuple[dict, Counter, Counter]] = {}
    with tempfile.TemporaryDirectory() as scratch_dir:
        for name, holding_the_lock in (("running", False), ("holding the interpreter lock", True)):
            load, raw = profile_once(args, Path(scratch_dir), holding_the_lock)
            runs[name] = (load, *split(raw))
            if args.raw is not None:
                shutil.copy(raw, args.raw.with_stem(f"{args.raw.stem}-{raw.stem}"))
    lines = [f"py-spy sampling the threads of `app.py` (1 worker, template composer) at 100 Hz while {args.users} "
             f"users load it for {args.seconds:.0f} s (after a {WARMUP_S:.0f} s warm-up), twice: once every running "
             "thread (where the CPU goes), once only the thread holding the interpreter lock (what one worker can "
             "do one at a time: its Python). The sampling slows the server; each sample is filed under the innermost "
             "data-flow step on its stack."]
    for name, (load, steps, threads) in runs.items():
        lines += ["", f"### Threads {name}", "",
                  f"{load['turns_per_s']:.1f} turns/s, turn p95 {load['turn_p95_ms']:.0f} ms, the server on "
                  f"{load['server_cores']:.2f} cores ({load['server_cpu_ms_per_turn']:.1f} ms of CPU per turn), "
                  f"the client on {load['client_cores']:.2f}.", "", *table(steps, threads)]
    write_results("profile", "Where a loaded server's time goes", {
        "users": args.users, **{name: {"load": load, "steps": dict(steps), "threads": dict(threads)}
                                for name, (load, steps, threads) in runs.items()}}, lines)


if __name__ == "__main__":
    main()
