"""Security headers on every response, and which sites may frame which hospital's widget.

The embed allow-list (`CARE_EMBED_ORIGINS`) becomes `Content-Security-Policy: frame-ancestors` on
`/embed`: a hospital's widget opens only on the sites configured for that hospital. Every other page
may be framed only by this app itself.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ANY_HOSPITAL = "*"


def allowed_origins(embed_origins: dict[str, list[str]], hospital_id: str | None) -> list[str]:
    origins = list(embed_origins.get(ANY_HOSPITAL, []))
    if hospital_id:
        origins += embed_origins.get(hospital_id, [])
    return list(dict.fromkeys(origins))


def all_origins(embed_origins: dict[str, list[str]]) -> list[str]:
    """Every origin that embeds some hospital: the CORS allow-list of the API."""
    return list(dict.fromkeys(origin for origins in embed_origins.values() for origin in origins))


def frame_ancestors(path: str, query: str, embed_origins: dict[str, list[str]]) -> str:
    if path == "/embed" or path.startswith("/embed/"):
        hospital = parse_qs(query).get("hospital", [None])[0]
        return " ".join(["'self'", *allowed_origins(embed_origins, hospital)])
    return "'self'"


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

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-security-policy", b"x-frame-options")]
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
