"""The REST API at /api/v1: thin routes over `CareService`, which the page and the widget share.

Errors are JSON a person can act on: `{"error": code, "message": ..., "field": ...}`.
"""

import asyncio
import json
import logging
from concurrent.futures import Executor
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from assistant.flow import Answer
from assistant.knowledge import Department, KnowledgeBase, Source, UnknownHospital
from assistant.reply import ReferralSummary, Reply
from assistant.service import CareService, Invalid, NotFound
from assistant.store.database import (
    REFERRAL_STATUSES,
    ConversationChanged,
    IdempotencyKeyReused,
    Referral,
    StoreUnavailable,
)
from assistant.store.integrity import StoreDamaged
from assistant.web.downloads import Downloads
from assistant.web.errors import ErrorBody, error
from assistant.web.limits import RateLimited, RateLimiter, client_address

RETRY_AFTER_SECONDS = 2
INBOX_PAGE = 50
MAX_INBOX_PAGE = 200
log = logging.getLogger(__name__)


# --- request and response bodies ----------------------------------------------------------------------
class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRequest(Body):
    widget_hospital: str | None = Field(None, description="Scope the conversation to one hospital (the widget).")
    language: Literal["en", "zh"] | None = Field(None, description="The language the page asked for.")


class Started(BaseModel):
    conversation_id: str
    widget_hospital: str | None
    language: str | None


class MessageRequest(Body):
    text: str = Field(description="What the user wrote; the limit is the CARE_MAX_MESSAGE_CHARS setting, and "
                                  "control characters other than newlines and tabs are refused.")


class TurnView(BaseModel):
    user: str
    reply: str
    triage: str


class ConversationView(BaseModel):
    conversation_id: str
    widget_hospital: str | None
    language: str | None
    created_at: datetime
    updated_at: datetime
    turns: list[TurnView]


class ReferralRequest(Body):
    consent: StrictBool = Field(description="Must be true (the JSON value, not \"yes\" or 1): the user agreed to "
                                            "send the summary and contact.")
    contact: str = Field(min_length=3, max_length=200, description="E-mail or messaging id the user chose to share.")
    department_id: str = Field(min_length=1, max_length=128, description="A department_id from a recommendation.")


class ReferralCreated(BaseModel):
    referral_id: str
    hospital_id: str
    department_id: str
    status: str
    created_at: datetime


class InboxOwner(BaseModel):
    """The hospital an inbox key opens: the inbox page names it, so a department knows whose referrals it reads."""

    hospital_id: str
    name: str
    name_zh: str


class InboxItem(BaseModel):
    referral_id: str
    department_id: str
    department: str
    contact: str
    summary: ReferralSummary
    status: str
    created_at: datetime
    updated_at: datetime


class StatusRequest(Body):
    status: Literal[REFERRAL_STATUSES]  # type: ignore[valid-type]


class HospitalSummary(BaseModel):
    id: str
    name: str
    name_zh: str
    departments: int


class HospitalProfile(BaseModel):
    id: str
    name: str
    name_zh: str
    summary: str
    departments: list[Department]
    sources: list[Source]


class Unauthorized(Exception):
    """No inbox key, or one that is wrong or revoked."""


# --- helpers ---------------------------------------------------------------------------------------------
def created(referral: Referral) -> ReferralCreated:
    return ReferralCreated(referral_id=referral.id, hospital_id=referral.hospital_id,
                           department_id=referral.department_id, status=referral.status,
                           created_at=referral.created_at)


def inbox_item(referral: Referral, kb: KnowledgeBase) -> InboxItem:
    department = kb.departments.get(referral.department_id)
    return InboxItem(referral_id=referral.id, department_id=referral.department_id,
                     department=department.name if department else referral.department_id, contact=referral.contact,
                     summary=ReferralSummary.model_validate(referral.summary), status=referral.status,
                     created_at=referral.created_at, updated_at=referral.updated_at)


JSON_TEXT = json.JSONEncoder(ensure_ascii=False)  # json.dumps with an option builds an encoder per call


def server_sent_events(turn: Answer) -> str:
    """Text deltas, then one `reply` event with the whole Reply; the turn was saved before the first.

    The turn is already computed, so every event goes out in one body: a long reply's ~500 deltas sent one
    by one each went through the middleware and the socket (an eighth of a loaded server's Python time).
    A delta's data is `{"text": ...}` as json.dumps writes it, with only the string encoded: the encoder's
    walk over a dict for each delta took 0.7 ms for a 390-delta reply, the string alone 0.08 ms."""
    deltas = "".join(f'event: delta\ndata: {{"text": {JSON_TEXT.encode(delta)}}}\n\n' for delta in turn.deltas)
    return f"{deltas}event: reply\ndata: {turn.reply.model_dump_json()}\n\n"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    def invalid_body(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        return error(422, "invalid_request", f"{field}: {first['msg']}", field)

    @app.exception_handler(StarletteHTTPException)
    def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """404, 405 and the like in the one documented shape, not FastAPI's {"detail": ...}."""
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail), **(exc.headers or {}))

    @app.exception_handler(Unauthorized)
    def unauthorized(_request: Request, _exc: Unauthorized) -> JSONResponse:
        return error(401, "unauthorized", "Send your hospital's inbox key as 'Authorization: Bearer <key>'; "
                                          "ask the operator for a new one if it was revoked.",
                     **{"WWW-Authenticate": "Bearer"})

    @app.exception_handler(NotFound)
    def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return error(404, "not_found", str(exc))

    @app.exception_handler(Invalid)
    def invalid(_request: Request, exc: Invalid) -> JSONResponse:
        return error(422, exc.code, exc.message, exc.field)

    @app.exception_handler(ConversationChanged)
    def changed(_request: Request, _exc: ConversationChanged) -> JSONResponse:
        return error(409, "conversation_busy", "Another message to this conversation was being answered; "
                                               "send yours again.", **{"Retry-After": "1"})

    @app.exception_handler(IdempotencyKeyReused)
    def key_reused(_request: Request, _exc: IdempotencyKeyReused) -> JSONResponse:
        return error(422, "idempotency_key_reused", "This Idempotency-Key was used for a different referral; "
                                                    "use a new key for a new request.", "Idempotency-Key")

    @app.exception_handler(RateLimited)
    def rate_limited(_request: Request, exc: RateLimited) -> JSONResponse:
        return error(429, "rate_limited", f"Too many {exc.what} from you; try again in {exc.retry_after} s.",
                     **{"Retry-After": exc.retry_after})

    @app.exception_handler(StoreDamaged)
    def damaged(_request: Request, _exc: StoreDamaged) -> JSONResponse:
        return error(503, "storage_damaged", "The service's storage is damaged; the operator has been told by its "
                                             "health check. Nothing was saved; please try again later.")

    @app.exception_handler(Exception)
    def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s", type(exc).__name__, exc_info=exc)
        return error(500, "internal_error", "Something went wrong on our side; nothing was changed. Please try "
                                            "again, and tell the operator if it keeps happening.")

    @app.exception_handler(StoreUnavailable)
    def unavailable(_request: Request, _exc: StoreUnavailable) -> JSONResponse:
        return error(503, "unavailable", "The database is busy; nothing was saved. Try again in a moment.",
                     **{"Retry-After": str(RETRY_AFTER_SECONDS)})


# --- routes ----------------------------------------------------------------------------------------------
def api_router(service: CareService, limiter: RateLimiter, downloads: Downloads, turn_pool: Executor) -> APIRouter:
    """`turn_pool` runs the engine: a pool sized to the cores, so many waiting users queue for it instead of
    forty threads taking turns at one interpreter lock (every turn slow, each one's tail worse)."""
    router = APIRouter(prefix="/api/v1")
    kb = service.assistant.kb
    bearer = HTTPBearer(auto_error=False, description="An inbox key from `python -m assistant keys create`.")

    def key_hospital(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        hospital = service.hospital_for_key(credentials.credentials) if credentials else None
        if hospital is None:
            raise Unauthorized()
        return hospital

    @router.post("/conversations", status_code=201, response_model=Started, tags=["conversations"])
    def start(request: Request, body: StartRequest | None = None) -> Started:
        body = body or StartRequest()
        limiter.conversation_started(client_address(request))
        conv = service.start(body.widget_hospital, body.language)
        return Started(conversation_id=conv.id, widget_hospital=conv.widget_hospital, language=conv.language)

    @router.post("/conversations/{conversation_id}/messages", response_model=Reply, tags=["conversations"],
                 responses={200: {"content": {"text/event-stream": {}}}, 404: {"model": ErrorBody}})
    async def message(conversation_id: str, body: MessageRequest, request: Request) -> Response:
        address = client_address(request)

        def counted_turn() -> Answer:  # the limiter may ask Redis: off the event loop, as the turn is
            limiter.message(address, conversation_id)
            return service.send(conversation_id, body.text)

        turn = await asyncio.get_running_loop().run_in_executor(turn_pool, counted_turn)
        if "text/event-stream" in request.headers.get("accept", ""):
            return Response(server_sent_events(turn), media_type="text/event-stream",
                            headers={"Cache-Control": "no-store"})
        return Response(turn.reply.model_dump_json(), media_type="application/json")

    @router.get("/conversations/{conversation_id}", response_model=ConversationView, tags=["conversations"],
                responses={404: {"model": ErrorBody}})
    def conversation(conversation_id: str) -> ConversationView:
        stored = service.conversation(conversation_id)
        conv = stored.conversation
        return ConversationView(conversation_id=conv.id, widget_hospital=conv.widget_hospital, language=conv.language,
                                created_at=stored.created_at, updated_at=stored.updated_at,
                                turns=[TurnView(user=t.user, reply=t.reply, triage=t.triage) for t in conv.turns])

    @router.delete("/conversations/{conversation_id}", status_code=204, tags=["conversations"],
                   responses={404: {"model": ErrorBody}})
    def delete(conversation_id: str) -> Response:
        """The conversation, and every summary downloaded from it, at once."""
        service.delete(conversation_id)
        downloads.forget(conversation_id)
        return Response(status_code=204)

    @router.post("/conversations/{conversation_id}/referral", status_code=201, response_model=ReferralCreated,
                 tags=["referrals"], responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    def referral(conversation_id: str, body: ReferralRequest, request: Request,
                 idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> ReferralCreated:
        if not body.consent:
            raise Invalid("consent", "consent must be true: nothing is sent to a hospital without the user's "
                                     "explicit consent")
        if not idempotency_key:
            raise Invalid("Idempotency-Key", "send an Idempotency-Key header (a random UUID), and the same one "
                                             "when you retry")
        contact = body.contact.strip()
        retried = service.previous_referral(conversation_id, body.department_id, contact, idempotency_key)
        if retried is not None:
            return created(retried)
        limiter.referral(client_address(request), conversation_id)
        referral, _ = service.refer(conversation_id, body.department_id, contact, idempotency_key)
        return created(referral)

    @router.get("/hospitals", response_model=list[HospitalSummary], tags=["hospitals"])
    def hospitals() -> list[HospitalSummary]:
        return [HospitalSummary(id=h.id, name=h.name, name_zh=h.name_zh, departments=len(h.departments))
                for h in kb.hospitals.values()]

    @router.get("/hospitals/{hospital_id}", response_model=HospitalProfile, tags=["hospitals"],
                responses={404: {"model": ErrorBody}})
    def hospital(hospital_id: str) -> HospitalProfile:
        try:
            h = kb.hospital(hospital_id)
        except UnknownHospital as unknown:
            raise NotFound(f"{unknown}; GET /api/v1/hospitals lists the ids") from None
        cited = {s for d in h.departments for s in d.sources}
        cited |= {s for d in h.departments for c in d.claims() for s in c.sources}
        cited |= {s for c in [*h.about, *h.international_service] for s in c.sources}
        return HospitalProfile(id=h.id, name=h.name, name_zh=h.name_zh, summary=h.summary,
                               departments=list(h.departments),
                               sources=[kb.sources[s] for s in sorted(cited) if s in kb.sources])

    @router.get("/inbox", response_model=list[InboxItem], tags=["inbox"], responses={401: {"model": ErrorBody}})
    def inbox(response: Response, hospital: Annotated[str, Depends(key_hospital)],
              status: Literal[REFERRAL_STATUSES] | None = None,  # type: ignore[valid-type]
              limit: Annotated[int, Query(ge=1, le=MAX_INBOX_PAGE)] = INBOX_PAGE,
              offset: Annotated[int, Query(ge=0)] = 0) -> list[InboxItem]:
        """Newest first, a page at a time; `X-Total-Count` says how many there are in all."""
        response.headers["X-Total-Count"] = str(service.inbox_size(hospital, status))
        return [inbox_item(r, kb) for r in service.inbox(hospital, status, limit, offset)]

    @router.get("/inbox/owner", response_model=InboxOwner, tags=["inbox"], responses={401: {"model": ErrorBody}})
    def inbox_owner(hospital: Annotated[str, Depends(key_hospital)]) -> InboxOwner:
        owner = kb.hospitals[hospital]
        return InboxOwner(hospital_id=owner.id, name=owner.name, name_zh=owner.name_zh)

    @router.patch("/inbox/{referral_id}", response_model=InboxItem, tags=["inbox"],
                  responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}})
    def set_status(referral_id: str, body: StatusRequest,
                   hospital: Annotated[str, Depends(key_hospital)]) -> InboxItem:
        return inbox_item(service.set_status(hospital, referral_id, body.status), kb)

    return router


API_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def install_unknown_api_addresses(app: FastAPI) -> None:
    """Any other address under /api/ answers in the documented error shape (the page's Gradio app, mounted
    at /, would answer it otherwise); a known address with the wrong method gets 405 with `Allow`."""

    @app.api_route("/api/{rest:path}", methods=API_METHODS, include_in_schema=False)
    def unknown(request: Request) -> JSONResponse:
        routes = [route for route in app.routes  # the API's own: not this one, nor the pages mounted beside it
                  if getattr(route, "endpoint", None) is not unknown and not isinstance(route, Mount)]
        allowed = [method for method in API_METHODS if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)]
        if allowed:
            return error(405, "method_not_allowed", f"{request.method} is not allowed here; use "
                                                    f"{', '.join(allowed)}.", Allow=", ".join(allowed))
        return error(404, "not_found", "There is no such API address; /docs lists them.")

