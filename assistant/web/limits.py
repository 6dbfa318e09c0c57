"""Limits that keep one client from spoiling the service for others: body size and request rates.

The rate limiter counts in this process's memory: with N copies behind a load balancer each copy
counts on its own, so a client gets at most N times a limit. Nothing else is kept in memory.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.settings import RateLimits
from assistant.web.errors import error


def client_address(request: object) -> str:
    """The address limits count by, for a FastAPI or a Gradio request alike."""
    client = getattr(request, "client", None)
    return client.host if client else "unknown"


class RateLimited(Exception):
    def __init__(self, retry_after_s: float, what: str) -> None:
        super().__init__(what)
        self.retry_after_s = retry_after_s
        self.what = what

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    """Sliding windows keyed by (what, client address or conversation id)."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self.seen: dict[tuple[str, str], deque[float]] = {}
        self.lock = threading.Lock()

    def hit(self, what: str, key: str, limit: int, window_s: float) -> None:
        """Count one request, or raise RateLimited (and count nothing) when the window is full."""
        if not self.limits.enabled:
            return
        now = self.clock()
        with self.lock:
            times = self.seen.setdefault((what, key), deque())
            while times and now - times[0] >= window_s:
                times.popleft()
            if len(times) >= limit:
                raise RateLimited(window_s - (now - times[0]), what)
            times.append(now)
            if len(self.seen) > 50_000:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        self.seen = {key: times for key, times in self.seen.items() if times and now - times[-1] < 3600}

    # --- the limits of the issue, by operation ---------------------------------------------------------
    def conversation_started(self, address: str) -> None:
        self.hit("conversations", address, self.limits.conversations_per_minute, 60)

    def message(self, address: str, conversation_id: str) -> None:
        self.hit("messages", address, self.limits.messages_per_minute, 60)
        self.hit("conversation messages", conversation_id, self.limits.messages_per_minute_per_conversation, 60)

    def referral(self, address: str, conversation_id: str) -> None:
        self.hit("referrals", address, self.limits.referrals_per_hour, 3600)
        self.hit("conversation referrals", conversation_id, self.limits.referrals_per_hour_per_conversation, 3600)


class BodyLimit:
    """API bodies over the cap get 413 before any parsing; bodies that are not UTF-8 get 400.

    The body is read here (it is small by then) and handed on unchanged.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, prefix: str = "/api/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        too_large = (f"The request body is larger than {self.max_bytes:,} bytes; messages are limited in "
                     "characters too, so shorten the text.")
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error(413, "body_too_large", too_large)(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await error(413, "body_too_large", too_large)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            problem = f"The request body is not valid UTF-8 (byte {bad.start}); send JSON encoded as UTF-8."
            await error(400, "invalid_encoding", problem)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)


def replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def once() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # afterwards: wait for the disconnect as the app expects

    return once
