"""A bounded load test: many users at once against the server `make run` starts, beside a stock LangChain server.

For each uvicorn worker count (default 1 and 2) it starts `app.py` on a free loopback port with a fresh
SQLite database, no model endpoint (so replies come from the template composer) and rate limits off (all
the load comes from one loopback address, which the per-address limits would otherwise throttle). Against
that server it runs each level of concurrent users (default 10, 50, 200). Every user holds realistic 3-turn
conversations back to back: create a conversation, send a case story (new text each time, so its embedding
never comes from the cache), then two follow-ups, one of them read to the end over SSE. The follow-ups are the
page's quick replies, sent word for word, so after the first time our server takes their vectors from its
cache of recent texts; the peer has no such cache and embeds every message.

Then, in the same run and at the same levels, it drives the peer (`benchmarks.langchain_peer`): a minimal stock
LangChain RAG server (FastAPI, one endpoint, langchain-chroma retrieval over the same index, no safety, no
storage), each user sending the same kinds of messages back to back.

Each level has a warm-up (not counted) and then a fixed measured window, then stops by itself: users start
no new request after the window and every request has a 30 s total timeout. What the numbers mean:

- requests, req/s: successful requests (conversation creations and turns) that finished inside the window,
  divided by its length; turns/s counts the turns alone: the throughput the server sustains with that many
  users waiting on it.
- turn p50/p95/p99: latency of the message requests (JSON, and SSE to the last event) that started inside
  the window; with N users and one request each in flight, this is mostly queueing once the server saturates.
- errors: requests started inside the window that timed out, failed to connect, answered non-2xx (the status
  is recorded, e.g. 503 when SQLite is busy) or ended a stream without its `reply` event.
- server cores, server CPU ms per turn, client cores: CPU time the server's processes and the client spent in
  the window, per second and (the server's) per turn done. One worker runs its Python on one core at a time
  (the interpreter lock), so near 1 core the server itself is the limit; server and client together near the
  machine's cores means the machine is.
- x peer: our turns/s and turn p95 divided by the peer's requests/s and p95 at the same level.
- 2 / 1 workers: throughput ratio per level. The client runs on the same machine, so on 2 cores it competes
  with the server for CPU: these are lower bounds for a server with the machine to itself.

Run: `python -m benchmarks.load [--seconds 20] [--levels 10,50,200] [--workers 1,2] [--no-peer]`; `make load`
runs it. It is never part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.results import write_results
from benchmarks.serve import ServerDidNotStart, free_port, healthz_answers, wait_until_ready
from evals.metrics import percentile

ROOT = Path(__file__).parent.parent
TIMEOUT_S = 30.0
WARMUP_S = 3.0
STARTUP_TIMEOUT_S = 180.0
STORIES = [  # {age} and {weeks} make every first message new, so no embedding comes from the cache
    "My {age}-year-old father's multiple myeloma relapsed twice; we are looking for CAR-T. "
    "His last line of treatment ended {weeks} weeks ago.",
    "My son is {age} months old and needs a liver transplant; we have been on a waiting list for {weeks} weeks.",
    "I am {age} and have a glioma; I want a second opinion on surgery within {weeks} weeks.",
    "My {age}-year-old mother has stage III lung cancer and wants proton therapy; her scan was {weeks} weeks ago.",
]
FOLLOW_UPS = ["Tell me more about the first one", "What do I need to bring?", "How do I pay?", "Do I need a visa?"]
MODEL_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CARE_OPENAI_API_KEY", "CARE_OPENAI_BASE_URL", "DATABASE_URL")


class IncompleteStream(Exception):
    """The SSE stream ended without its final `reply` event."""


@dataclass(frozen=True)
class Sample:
    kind: str  # "create" or "turn"
    started: float
    ended: float
    error: str | None  # None when the request succeeded


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    def started_in(self, sample: Sample) -> bool:
        return self.start <= sample.started < self.end

    def ended_in(self, sample: Sample) -> bool:
        return self.start <= sample.ended < self.end


def first_message(n: int) -> str:
    return STORIES[n % len(STORIES)].format(age=20 + n % 60, weeks=1 + n // 60)


def conversation_script(n: int, rng: random.Random) -> list[tuple[str, bool]]:
    """Three turns as (text, over SSE): the case story as JSON, then two follow-ups, one of them over SSE."""
    follow_ups = rng.sample(FOLLOW_UPS, 2)
    sse_turn = rng.randrange(2)
    return [(first_message(n), False)] + [(text, i == sse_turn) for i, text in enumerate(follow_ups)]



def require_loopback(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing to load-test {host!r}: this benchmark runs on loopback only")


def server_env(host: str, port: int, workers: int, database: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in MODEL_ENV}  # the template composer
    return env | {"HOST": host, "PORT": str(port), "WORKERS": str(workers),
                  "CARE_RATE_LIMITS__ENABLED": "false",  # one loopback address sends all the load
                  "CARE_DATABASE_URL": f"sqlite:///{database}"}


def start_server(host: str, port: int, workers: int, scratch: Path, command: tuple[str, ...] = ("app.py",),
                 log_name: str = "server") -> subprocess.Popen:
    """Start `app.py` as `make run` does (or the peer) and wait for /healthz; its own session, so its workers
    stop with it."""
    log = scratch / f"{log_name}-{workers}.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   env=server_env(host, port, workers, scratch / f"load-{workers}.db"),
                                   start_new_session=True)
    try:
        wait_until_ready(process, healthz_answers(f"http://{host}:{port}"), STARTUP_TIMEOUT_S, log)
    except ServerDidNotStart as problem:
        stop_server(process)
        raise SystemExit(f"/healthz did not answer: {problem}") from None
    return process


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM (uvicorn stops its workers), then SIGKILL to the process group it started, for anything left."""
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # the group is the server's own session (start_new_session)
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def error_label(error: BaseException) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, (TimeoutError, httpx.TimeoutException)):
        return "timeout"
    if isinstance(error, IncompleteStream):
        return "incomplete stream"
    if isinstance(error, (ValueError, KeyError)):
        return "bad body"
    return type(error).__name__


async def measured(kind: str, samples: list[Sample], call: Callable[[], Awaitable[str | None]]) -> str | None:
    """Run one request with the total timeout and record it; the call's result, or None if it failed."""
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(call(), TIMEOUT_S)
    except Exception as error:  # a failed request is a result to count, whatever failed
        samples.append(Sample(kind, started, time.perf_counter(), error_label(error)))
        return None
    samples.append(Sample(kind, started, time.perf_counter(), None))
    return result


async def create_conversation(client: httpx.AsyncClient) -> str:
    response = await client.post("/api/v1/conversations", json={})
    response.raise_for_status()
    return response.json()["conversation_id"]


async def send_json(client: httpx.AsyncClient, url: str, text: str) -> str:
    response = await client.post(url, json={"text": text})
    response.raise_for_status()
    response.json()
    return "ok"


async def send_sse(client: httpx.AsyncClient, url: str, text: str) -> str:
    """Read the whole event stream; it must end with the `reply` event."""
    async with client.stream("POST", url, json={"text": text}, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        events = [line async for line in response.aiter_lines() if line.startswith("event:")]
    if not events or events[-1].strip() != "event: reply":
        raise IncompleteStream
    return "ok"


async def conversation(client: httpx.AsyncClient, n: int, rng: random.Random, stop_at: float,
                       samples: list[Sample]) -> bool:
    """One 3-turn conversation; stops early at the end of the window or at the first error (False)."""
    conversation_id = await measured("create", samples, lambda: create_conversation(client))
    if conversation_id is None:
        return False
    url = f"/api/v1/conversations/{conversation_id}/messages"
    for text, sse in conversation_script(n, rng):
        if time.perf_counter() >= stop_at:
            return True
        send = send_sse if sse else send_json
        if await measured("turn", samples, lambda send=send, text=text: send(client, url, text)) is None:
            return False
    return True


async def user(client: httpx.AsyncClient, numbers: Iterator[int], seed: int, stop_at: float,
               samples: list[Sample]) -> None:
    rng = random.Random(seed)
    while time.perf_counter() < stop_at:
        if not await conversation(client, next(numbers), rng, stop_at, samples):
            await asyncio.sleep(0.1)  # after an error, do not spin against a failing server


async def ask_peer(client: httpx.AsyncClient, text: str) -> str:
    response = await client.post("/ask", json={"text": text})
    response.raise_for_status()
    response.json()
    return "ok"


async def peer_user(client: httpx.AsyncClient, numbers: Iterator[int], seed: int, stop_at: float,
                    samples: list[Sample]) -> None:
    """The same messages as a conversation's three turns, each one question to the peer's one endpoint."""
    rng = random.Random(seed)
    while time.perf_counter() < stop_at:
        for text, _sse in conversation_script(next(numbers), rng):
            if time.perf_counter() >= stop_at:
                return
            if await measured("turn", samples, lambda text=text: ask_peer(client, text)) is None:
                await asyncio.sleep(0.1)


User = Callable[[httpx.AsyncClient, Iterator[int], int, float, list[Sample]], Awaitable[None]]


def cpu_seconds_of_group(group: int) -> float:
    """CPU time (user and system) of every live process in a process group: the server and its workers."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            if int(fields[2]) == group:  # field 5 of stat, the process group
                ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15: user and system time
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds_of_client() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class CpuUse:
    """CPU seconds the server (its process group) and this client spent inside the measured window."""

    server: float = 0.0
    client: float = 0.0


async def measure_cpu(server_group: int | None, window: Window, use: CpuUse) -> None:
    if server_group is None:
        return
    await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
    server, client = cpu_seconds_of_group(server_group), cpu_seconds_of_client()
    await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
    use.server, use.client = cpu_seconds_of_group(server_group) - server, cpu_seconds_of_client() - client


async def run_level(base: str, users: int, seconds: float, numbers: Iterator[int], each_user: User = user,
                    server_group: int | None = None) -> tuple[list[Sample], Window, CpuUse]:
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    samples: list[Sample] = []
    cpu = CpuUse()
    async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_S, limits=limits) as client:
        start = time.perf_counter()
        window = Window(start + WARMUP_S, start + WARMUP_S + seconds)
        await asyncio.gather(measure_cpu(server_group, window, cpu),
                             *(each_user(client, numbers, seed, window.end, samples) for seed in range(users)))
    return samples, window, cpu


def summarize(samples: list[Sample], window: Window, seconds: float, cpu: CpuUse | None = None) -> dict:
    started = [s for s in samples if window.started_in(s)]
    turns_ms = [(s.ended - s.started) * 1000 for s in started if s.kind == "turn" and s.error is None]
    creates_ms = [(s.ended - s.started) * 1000 for s in started if s.kind == "create" and s.error is None]
    completed = sum(1 for s in samples if s.error is None and window.ended_in(s))
    turns_done = sum(1 for s in samples if s.kind == "turn" and s.error is None and window.ended_in(s))
    errors = Counter(s.error for s in started if s.error is not None)
    def at(values: list[float], share: float) -> float:
        found = percentile(values, share)
        return float("nan") if found is None else found  # nothing completed: shown as nan, not a crash

    return {"requests": completed, "req_per_s": completed / seconds, "turns": len(turns_ms),
            "turns_per_s": turns_done / seconds,
            "turn_p50_ms": at(turns_ms, 0.5), "turn_p95_ms": at(turns_ms, 0.95),
            "turn_p99_ms": at(turns_ms, 0.99), "create_p50_ms": at(creates_ms, 0.5),
            "started": len(started), "errors": sum(errors.values()),
            "error_rate": sum(errors.values()) / len(started) if started else 0.0, "error_kinds": dict(errors),
            "server_cores": cpu.server / seconds if cpu else float("nan"),
            "client_cores": cpu.client / seconds if cpu else float("nan"),
            "server_cpu_ms_per_turn": cpu.server * 1000 / turns_done if cpu and turns_done else float("nan")}


def run_server(name: str, command: tuple[str, ...], log_name: str, workers: int, each_user: User, host: str,
               levels: list[int], seconds: float, scratch: Path) -> dict[int, dict]:
    """Start one server (ours or the peer), run every level against it, stop it."""
    port = free_port(host)
    print(f"starting {name} on http://{host}:{port} ...", flush=True)
    process = start_server(host, port, workers, scratch, command, log_name)
    numbers = itertools.count()  # one counter per server, so no first message repeats within its cache
    results = {}
    try:
        for users in levels:
            print(f"  {users} users: {WARMUP_S:.0f} s warm-up + {seconds:.0f} s measured", flush=True)
            samples, window, cpu = asyncio.run(run_level(f"http://{host}:{port}", users, seconds, numbers, each_user,
                                                         server_group=process.pid))
            results[users] = summarize(samples, window, seconds, cpu)
    finally:
        stop_server(process)
    return results


def run_workers(host: str, workers: int, levels: list[int], seconds: float, scratch: Path) -> dict[int, dict]:
    return run_server(f"app.py with {workers} worker(s)", ("app.py",), "server", workers, user, host, levels, seconds,
                      scratch)


def run_peer(host: str, levels: list[int], seconds: float, scratch: Path) -> dict[int, dict]:
    return run_server("the stock LangChain peer", ("-m", "benchmarks.langchain_peer"), "peer", 1, peer_user, host,
                      levels, seconds, scratch)


def versus_peer(ours: dict, peer: dict | None) -> str:
    """Our turns/s and p95 as multiples of the peer's requests/s and p95 at the same level."""
    if peer is None or not peer["turns_per_s"] or not peer["turn_p95_ms"]:
        return "| n/a | n/a |"
    return f"| {ours['turns_per_s'] / peer['turns_per_s']:.2f}x | {ours['turn_p95_ms'] / peer['turn_p95_ms']:.2f}x |"


def cpu_cells(r: dict) -> str:
    """Where the limit is: one worker's Python runs on one core at a time; the client takes the rest."""
    return f"| {r['server_cores']:.2f} | {r['server_cpu_ms_per_turn']:.1f} | {r['client_cores']:.2f} "


def table(results: dict[int, dict[int, dict]], levels: list[int], worker_counts: list[int],
          peer: dict[int, dict] | None = None) -> list[str]:
    lines = ["| server | workers | users | requests | req/s | turns/s | turn p50 ms | turn p95 ms | turn p99 ms "
             "| create p50 ms | errors | server cores | server CPU ms per turn | client cores "
             "| turns/s x peer | p95 x peer |",
             "| --- " * 16 + "|"]
    for workers in worker_counts:
        for users in levels:
            r = results[workers][users]
            lines.append(f"| ours | {workers} | {users} | {r['requests']} | {r['req_per_s']:.1f} "
                         f"| {r['turns_per_s']:.1f} | {r['turn_p50_ms']:.0f} | {r['turn_p95_ms']:.0f} "
                         f"| {r['turn_p99_ms']:.0f} | {r['create_p50_ms']:.0f} | {r['errors']} " + cpu_cells(r)
                         + versus_peer(r, (peer or {}).get(users)))
    for users in levels if peer else []:
        r = peer[users]
        lines.append(f"| LangChain peer | 1 | {users} | {r['requests']} | {r['req_per_s']:.1f} "
                     f"| {r['turns_per_s']:.1f} | {r['turn_p50_ms']:.0f} | {r['turn_p95_ms']:.0f} "
                     f"| {r['turn_p99_ms']:.0f} | - | {r['errors']} " + cpu_cells(r) + "| 1.00x | 1.00x |")
    errors = [f"{w} worker(s)/{u} users: " + ", ".join(f"{kind} x{count}" for kind, count in r["error_kinds"].items())
              for w in worker_counts for u, r in results[w].items() if r["error_kinds"]]
    if errors:
        lines += ["", "Errors by kind: " + "; ".join(errors) + "."]
    return lines + scaling(results, levels, worker_counts)


def scaling(results: dict[int, dict[int, dict]], levels: list[int], worker_counts: list[int]) -> list[str]:
    if len(worker_counts) < 2:
        return []
    base, others = worker_counts[0], worker_counts[1:]
    lines = ["", "| users | " + " | ".join(f"req/s, {w} worker(s)" for w in worker_counts) + " | "
             + " | ".join(f"{w} / {base} workers" for w in others) + " |",
             "| --- " * (1 + len(worker_counts) + len(others)) + "|"]
    for users in levels:
        rates = [results[w][users]["req_per_s"] for w in worker_counts]
        ratios = [f"{rate / rates[0]:.2f}x" if rates[0] else "n/a" for rate in rates[1:]]
        lines.append(f"| {users} | " + " | ".join(f"{rate:.1f}" for rate in rates) + " | " + " | ".join(ratios) + " |")
    return lines


def numbers_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per level (after warm-up)")
    parser.add_argument("--levels", type=numbers_list, default=[10, 50, 200], help="concurrent users, e.g. 10,50,200")
    parser.add_argument("--workers", type=numbers_list, default=[1, 2], help="uvicorn worker counts, e.g. 1,2")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to serve on (loopback only)")
    parser.add_argument("--no-peer", action="store_true", help="skip the stock LangChain peer")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    require_loopback(args.host)
    print("rate limits are OFF for this run (CARE_RATE_LIMITS__ENABLED=false): all load comes from one address")
    with tempfile.TemporaryDirectory() as scratch:
        results = {w: run_workers(args.host, w, args.levels, args.seconds, Path(scratch)) for w in args.workers}
        peer = None if args.no_peer else run_peer(args.host, args.levels, args.seconds, Path(scratch))
    header = (f"Template composer (no model endpoint), a fresh SQLite database, loopback ({args.host}), rate limits "
              f"off; per level {WARMUP_S:.0f} s warm-up then {args.seconds:.0f} s measured; each user holds 3-turn "
              f"conversations back to back (one follow-up over SSE), {TIMEOUT_S:.0f} s timeout per request; the "
              f"client shares the {os.cpu_count()} CPUs with the server. req/s counts conversation creations and "
              "turns; latencies are for turns (SSE to the last event). The LangChain peer answers each message with "
              "one retrieval (its requests are counted as turns); x peer compares ours with it at the same level.")
    data = {"seconds": args.seconds, "warmup_s": WARMUP_S, "timeout_s": TIMEOUT_S, "host": args.host,
            "composer": "template", "rate_limits": "off",
            "results": {str(w): {str(u): r for u, r in by_level.items()} for w, by_level in results.items()},
            "langchain_peer": {str(u): r for u, r in (peer or {}).items()}}
    write_results("load", "Load test", data, [header, "", *table(results, args.levels, args.workers, peer)])


if __name__ == "__main__":
    main()
