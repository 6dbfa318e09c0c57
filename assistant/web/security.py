"""Security headers on every response, and which sites may frame which hospital's widget.

The embed allow-list (`CARE_EMBED_ORIGINS`) becomes `Content-Security-Policy: frame-ancestors` on
`/embed`: a hospital's widget opens only on the sites configured for that hospital. Every other page
may be framed only by this app itself.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ANY_HOSPITAL = "*"


def allowed_origins(embed_origins: dict[str, list[str]], hospital_id: str | None) -> list[str]:
    origins = list(embed_origins.get(ANY_HOSPITAL, []))
    if hospital_id:
        origins += embed_origins.get(hospital_id, [])
    return list(dict.fromkeys(origins))


def may_embed(embed_origins: dict[str, list[str]], hospital_id: str, origin: str) -> bool:
    """Whether a page on `origin` may frame the hospital's chat, read as the browser reads frame-ancestors: an
    exact origin, a `*.` host wildcard or `*`."""
    return any(allowed == "*" or fnmatch.fnmatchcase(origin, allowed)
               for allowed in allowed_origins(embed_origins, hospital_id))


def all_origins(embed_origins: dict[str, list[str]]) -> list[str]:
    """Every origin that embeds some hospital: the CORS allow-list of the API."""
    return list(dict.fromkeys(origin for origins in embed_origins.values() for origin in origins))


def frame_ancestors(path: str, query: str, embed_origins: dict[str, list[str]]) -> str:
    """A second `hospital=` would let a site allowed for one hospital frame another's chat (the header read
    the first, the page the last), so the widget takes exactly one, and the page refuses more (`widget_hospital`)."""
    if path == "/embed" or path.startswith("/embed/"):
        hospital = widget_hospital(parse_qs(query).get("hospital", []))
        return " ".join(["'self'", *allowed_origins(embed_origins, hospital)])
    return "'self'"


def widget_hospital(values: list[str]) -> str | None:
    """The one hospital a widget URL names, or None when it names none or several."""
    return values[0] if len(values) == 1 else None


class SecurityHeaders:
    """Pure ASGI, so streamed responses (SSE, Gradio's queue) pass through untouched."""

    def __init__(self, app: ASGIApp, embed_origins: dict[str, list[str]]) -> None:
        self.app = app
        self.embed_origins = embed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ancestors = frame_ancestors(scope["path"], scope.get("query_string", b"").decode("latin-1"),
                                    self.embed_origins)
        policy = f"frame-ancestors {ancestors}; object-src 'none'; base-uri 'self'"
        private = scope["path"].startswith("/api/")  # conversations, inboxes: never kept by a cache

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-security-policy", b"x-frame-options")]
                if private and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SHOWN_SEGMENT_CHARS = 8  # enough to correlate; a whole conversation id or Gradio session hash would open it
SHOWN_PATH_CHARS = 200
# Path words of this app and of Gradio, kept whole for readable logs; every other segment longer than
# SHOWN_SEGMENT_CHARS may be a key (a conversation id, a page session's hash) and is cut.
ROUTE_WORDS = frozenset({
    "conversations", "messages", "referral", "hospitals", "healthz", "widget.js", "openapi.json", "favicon.ico",
    "examples", "widget-host.html", "gradio_api", "heartbeat", "theme.css", "manifest.json", "robots.txt",
})


def loggable_path(path: str) -> str:
    """A path as a log line may show it: ids cut to 8 characters, anything unprintable escaped (a decoded
    "%0A" must not start a forged line, nor an ANSI escape colour a terminal), and at most 200 characters."""
    segments = [segment if len(segment) <= SHOWN_SEGMENT_CHARS or segment in ROUTE_WORDS
                else segment[:SHOWN_SEGMENT_CHARS] + "~" for segment in path.split("/")]
    return printable("/".join(segments))


def printable(text: str, limit: int = SHOWN_PATH_CHARS) -> str:
    """Unprintable characters escaped ("\\n", "\\x1b"), then cut at `limit`."""
    shown = "".join(ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
                    for ch in text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


class OneLineErrors(logging.Formatter):
    """A traceback becomes one line (its exception and where it was raised): a bad request cannot flood
    the log with kilobytes, and no local value from a frame reaches it."""

    def formatException(self, exc_info: tuple) -> str:  # noqa: N802 (logging's name)
        _kind, exception, trace = exc_info
        while trace is not None and trace.tb_next is not None:
            trace = trace.tb_next
        where = f" at {Path(trace.tb_frame.f_code.co_filename).name}:{trace.tb_lineno}" if trace else ""
        return f"{type(exception).__name__}{where}: {printable(str(exception))}"

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


# The server's logging, for `logging.config.dictConfig` and uvicorn's `log_config` (every worker applies it).
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"one_line": {"()": OneLineErrors, "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "one_line"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"uvicorn.access": {"level": "WARNING"}},
}
access_log = logging.getLogger("care.access")


class RequestLog:
    """One log line per request with a request id, never a body, a query string or a client address.

    Message text and contacts travel only in bodies, so they cannot reach the logs from here; the id
    (`X-Request-ID`, taken from the caller when it is a plain token) ties a user's report to the line.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if REQUEST_ID.match(offered) else uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info("request %s %s %s %d %.1f ms", request_id, scope["method"], loggable_path(scope["path"]),
                            status, (time.perf_counter() - started) * 1000)
