"""The one shape of every error the API sends, from a route or from middleware before any route."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ErrorBody(BaseModel):
    error: str
    message: str
    field: str | None = None


def error(status: int, code: str, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    """A JSON error a person can act on; a JSONResponse is also an ASGI app, so middleware can send it."""
    body = ErrorBody(error=code, message=message, field=field).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers or None)
