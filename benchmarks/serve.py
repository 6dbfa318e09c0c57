"""Running the real server for benchmarks and end-to-end tests: a free loopback port, and waiting for it.

`make run`'s server (or a Chroma server) is started by the caller, who knows its command and
environment; these two pieces are what every caller needs after that.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx


class ServerDidNotStart(RuntimeError):
    """The server exited or never answered; the message carries the end of its log when there is one."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def healthz_answers(url: str) -> Callable[[], bool]:
    """The app is ready when /healthz says 200: knowledge, index and database are loaded."""

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    return ready


def wait_until_ready(process: subprocess.Popen, ready: Callable[[], bool], limit_s: float,
                     log: Path | None = None) -> float:
    """Seconds from now until `ready()`; raises ServerDidNotStart when the process exits or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if process.poll() is not None:
            raise ServerDidNotStart(f"the server exited with code {process.returncode}{log_tail(log)}")
        if ready():
            return time.monotonic() - started
        time.sleep(0.2)
    raise ServerDidNotStart(f"not ready after {limit_s:.0f} s{log_tail(log)}")


def log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    return ":\n" + "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
