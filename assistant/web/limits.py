"""Limits that keep one client from spoiling the service for others: body size and request rates.

By default the rate limiter counts in this process's memory: with N copies behind a load balancer each
copy would count on its own and a client would get N times a limit. Set `CARE_RATE_LIMIT_STORE` (a Redis
URL) and every copy counts in that one store instead (`SharedRateLimiter`, through the `limits` library):
the limiter is the only state the copies share besides the database and the index.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from limits import RateLimitItemPerSecond, storage, strategies
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.settings import RateLimits
from assistant.web.errors import error

log = logging.getLogger(__name__)
STORE_TIMEOUT_S = 0.25  # a shared store slower than this is treated as down
MAX_KEYS = 100_000  # about 50 MB at most (measured): an hour of heavy traffic, not a flood of made-up ids


def client_address(request: object) -> str:
    """The address limits count by, for a FastAPI or a Gradio request alike. Only an address counts:
    whatever else a trusted proxy passed on shares one bucket."""
    client = getattr(request, "client", None)
    if client is None:
        return "unknown"
    try:
        return str(ipaddress.ip_address(client.host))
    except ValueError:
        return "not an address"


class RateLimited(Exception):
    def __init__(self, retry_after_s: float, what: str) -> None:
        super().__init__(what)
        self.retry_after_s = retry_after_s
        self.what = what

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    """Sliding windows keyed by (what, client address or conversation id), least recently used first.

    Memory is bounded: past `max_keys` the key idle longest is forgotten, one per hit, so a hit costs the
    same with ten keys or a million made-up conversation ids (forgetting a key forgives its count)."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self.limits = limits
        self.clock = clock
        self.max_keys = max_keys
        self.seen: OrderedDict[tuple[str, str], list[float]] = OrderedDict()  # a few floats a key
        self.lock = threading.Lock()

    def hit(self, what: str, key: str, limit: int, window_s: float) -> None:
        """Count one request, or raise RateLimited (and count nothing) when the window is full."""
        if not self.limits.enabled:
            return
        retry_after_s = self.count(what, key, limit, window_s)
        if retry_after_s is not None:
            raise RateLimited(retry_after_s, what)

    def count(self, what: str, key: str, limit: int, window_s: float) -> float | None:
        """Count one request in this process's memory; None, or the seconds until the window has room."""
        now = self.clock()
        with self.lock:
            times = self.seen.setdefault((what, key), [])
            self.seen.move_to_end((what, key))
            while times and now - times[0] >= window_s:
                del times[0]  # at most a limit's worth: a few dozen
            if len(times) >= limit:
                return window_s - (now - times[0])
            times.append(now)
            if len(self.seen) > self.max_keys:
                self.seen.popitem(last=False)
            return None

    # --- the limits of the issue, by operation ---------------------------------------------------------
    def conversation_started(self, address: str) -> None:
        self.hit("conversations", address, self.limits.conversations_per_minute, 60)

    def message(self, address: str, conversation_id: str) -> None:
        self.hit("messages", address, self.limits.messages_per_minute, 60)
        self.hit("conversation messages", conversation_id, self.limits.messages_per_minute_per_conversation, 60)

    def referral(self, address: str, conversation_id: str) -> None:
        self.hit("referrals", address, self.limits.referrals_per_hour, 3600)
        self.hit("conversation referrals", conversation_id, self.limits.referrals_per_hour_per_conversation, 3600)


class SharedRateLimiter(RateLimiter):
    """The same limits, counted in a store every copy of the app shares (Redis in a real deployment).

    Moving windows as in memory; the store keeps each key only for its window, so memory there is bounded by
    traffic, not by ids. If the store cannot be reached within STORE_TIMEOUT_S the request is let through and a
    warning logged (at most once a minute): an outage of the limiter must not become an outage of the service.
    """

    def __init__(self, limits: RateLimits, store_url: str) -> None:
        super().__init__(limits)
        store = storage.storage_from_string(store_url, socket_timeout=STORE_TIMEOUT_S,
                                            socket_connect_timeout=STORE_TIMEOUT_S)
        self.windows = strategies.MovingWindowRateLimiter(store)
        self.warned_at = -math.inf

    def count(self, what: str, key: str, limit: int, window_s: float) -> float | None:
        item = RateLimitItemPerSecond(limit, max(1, round(window_s)))
        try:
            if self.windows.hit(item, what, key):
                return None
            reset_at = self.windows.get_window_stats(item, what, key).reset_time  # epoch seconds
        except Exception as error:  # noqa: BLE001  (any failure of the store: connection, timeout, protocol)
            if time.monotonic() - self.warned_at >= 60:
                self.warned_at = time.monotonic()
                log.warning("rate-limit store unreachable (%s): requests are let through", type(error).__name__)
            return None
        return max(0.0, reset_at - time.time())


def rate_limiter(limits: RateLimits, store_url: str | None) -> RateLimiter:
    return SharedRateLimiter(limits, store_url) if store_url else RateLimiter(limits)


MAX_PATH_CHARS = 2000  # no route of ours is longer than a hundred; a longer one only floods the logs
WITHOUT_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyLimit:
    """Every entrance (the API, the page's and the widget's Gradio endpoints) is held to one body cap: over
    it, 413 before any parsing; a body that is not UTF-8 gets 400; an absurdly long path gets 414.

    The body is read here (it is small by then) and handed on unchanged.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope["path"]) > MAX_PATH_CHARS:
            await error(414, "path_too_long", f"The address is longer than {MAX_PATH_CHARS:,} characters.")(
                scope, receive, send)
            return
        if scope["method"] in WITHOUT_BODY:
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
