"""The web app: one FastAPI app serves the patient page, the REST API, the widget and the inbox.

    /               the patient chat page (Gradio)
    /embed/?hospital=renji   the widget's chat, scoped to one hospital (framed by /widget.js)
    /api/v1/...     the REST API (OpenAPI at /docs)
    /widget.js      the one-tag widget for hospitals' own sites
    /inbox          the international department's referral inbox (with its key)
    /healthz        ready once knowledge, index and database are loaded

Every route calls `CareService`, which calls `Assistant.reply`'s path; the engine never imports this.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta

from assistant.settings import PROJECT_ROOT, Settings, set_offline_environment

set_offline_environment()

import gradio as gr  # noqa: E402  (analytics must be off before gradio is imported)
import swagger_ui_bundle  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.middleware.cors import CORSMiddleware  # noqa: E402
from fastapi.openapi.docs import get_swagger_ui_html  # noqa: E402
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse  # noqa: E402
from fastapi.staticfiles import StaticFiles  # noqa: E402

from assistant.build import build_service  # noqa: E402
from assistant.service import CareService  # noqa: E402
from assistant.store.database import StoreUnavailable  # noqa: E402
from assistant.store.integrity import StoreDamaged  # noqa: E402
from assistant.web.api import api_router, install_error_handlers, install_unknown_api_addresses  # noqa: E402
from assistant.web.downloads import Downloads  # noqa: E402
from assistant.web.limits import BodyLimit, rate_limiter  # noqa: E402
from assistant.web.page import CSS, build_page, theme  # noqa: E402
from assistant.web.security import LOG_CONFIG, RequestLog, SecurityHeaders, all_origins, may_embed  # noqa: E402

log = logging.getLogger("app")
STATIC = PROJECT_ROOT / "assistant" / "web" / "static"
EXAMPLE_HOST = PROJECT_ROOT / "examples" / "widget-host.html"


def purge_every_hour(service: CareService, downloads: Downloads, stop: threading.Event) -> None:
    """Retention: conversations untouched for CARE_RETENTION_DAYS are deleted, and downloaded summaries older
    than an hour (so none outlives two), at start and then hourly."""
    retention = timedelta(days=service.assistant.settings.retention_days)
    while True:
        try:
            removed = service.store.purge_conversations(retention)
            if removed:
                log.info("purged %d conversation(s) past retention", removed)
        except (StoreUnavailable, StoreDamaged) as problem:
            log.warning("purge skipped: %s", type(problem).__name__)
        if files := downloads.purge():
            log.info("purged %d downloaded summary file(s)", files)
        if stop.wait(3600):
            return


class StorageCheck:
    """The store's own check, run at most once a minute however often /healthz is asked."""

    def __init__(self, service: CareService, every_s: float = 60.0) -> None:
        self.service = service
        self.every_s = every_s
        self.checked_at = -math.inf
        self.found: str | None = None
        self.lock = threading.Lock()

    def damage(self) -> str | None:
        with self.lock:
            if time.monotonic() - self.checked_at >= self.every_s:
                self.found = self.service.store.damage()
                self.checked_at = time.monotonic()
            return self.found


def create_app(service: CareService) -> FastAPI:
    settings = service.assistant.settings
    limiter = rate_limiter(settings.rate_limits, settings.rate_limit_store)
    storage_check = StorageCheck(service)
    downloads = Downloads(settings.data_dir / "downloads")
    # the engine's own threads; uvicorn lets requests in flight finish before the lifespan ends and the store closes
    turn_pool = ThreadPoolExecutor(settings.turn_pool_size, thread_name_prefix="turn")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        threading.Thread(target=purge_every_hour, args=(service, downloads, stop), daemon=True, name="purge").start()
        yield
        stop.set()
        service.store.close()  # a clean stop leaves every commit in the main database file

    app = FastAPI(title="Shanghai care finder", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Hospital-department matching for care in Shanghai, with sources for every fact.")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI from the installed package, not a CDN: the docs work offline and tell no third party."""
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Shanghai care finder API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")
    install_error_handlers(app)
    app.include_router(api_router(service, limiter, downloads, turn_pool))
    install_unknown_api_addresses(app)  # after every API route: it answers only what they do not

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """Ready only while the database passes its check (at most a minute old): a load balancer takes a
        copy with damaged storage out of service instead of letting it answer "ready" and lose referrals."""
        damage = storage_check.damage()
        if damage is not None:
            return JSONResponse({"status": "damaged", "problem": damage}, status_code=503)
        return JSONResponse({"status": "ready", "departments": len(service.assistant.kb.departments),
                             "knowledge": service.assistant.kb.fingerprint})

    @app.get("/widget.js", include_in_schema=False)
    def widget_js() -> FileResponse:
        return FileResponse(STATIC / "widget.js", media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"})

    @app.get("/widget/allowed", include_in_schema=False)
    def widget_allowed(request: Request, hospital: str = "") -> JSONResponse:
        """Asked by widget.js before it opens the chat: on a site missing from the hospital's allow-list the panel
        then says why, instead of showing the blank frame the browser refuses to fill. A request without an
        Origin is the app's own page, which may always frame its chat."""
        origin = request.headers.get("origin")
        known = hospital in service.assistant.kb.hospitals
        allowed = known and (origin is None or may_embed(settings.embed_origins, hospital, origin))
        return JSONResponse({"allowed": allowed, "hospital_known": known},
                            headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"})

    @app.get("/inbox", include_in_schema=False)
    def inbox_page() -> FileResponse:
        """The international department's inbox: a static page over the inbox API, with its key."""
        return FileResponse(STATIC / "inbox.html", media_type="text/html", headers={"Cache-Control": "no-store"})

    @app.get("/embed", include_in_schema=False)
    def embed_redirect(request: Request) -> RedirectResponse:
        """`/embed?hospital=renji` is the documented address; Gradio serves the page at `/embed/`."""
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/embed/{query}", status_code=307)

    @app.get("/examples/widget-host.html", include_in_schema=False)
    def example_host() -> FileResponse:
        return FileResponse(EXAMPLE_HOST, media_type="text/html")

    app.add_middleware(CORSMiddleware, allow_origins=all_origins(settings.embed_origins),
                       allow_methods=["GET", "POST", "PATCH", "DELETE"],
                       allow_headers=["Content-Type", "Authorization", "Idempotency-Key", "Accept"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, embed_origins=settings.embed_origins)
    app.add_middleware(RequestLog)
    app = gr.mount_gradio_app(app, build_page(service, limiter, downloads, embedded=True), path="/embed", css=CSS,
                              theme=theme(), ssr_mode=False, footer_links=[])
    return gr.mount_gradio_app(app, build_page(service, limiter, downloads), path="/", css=CSS, theme=theme(),
                               ssr_mode=False, footer_links=[])


def factory() -> FastAPI:
    """The app from the environment: `uvicorn assistant.web.app:factory --factory --workers 2` loads one per worker."""
    settings = Settings()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.data_dir / "gradio"))
    return create_app(build_service(settings))


def server_options(settings: Settings) -> dict:
    """How uvicorn logs and whom it believes about client addresses.

    RequestLog logs each request (no client addresses, ids cut), so uvicorn's access log is off; its own
    lines, in every worker process, go through the one-line formatter. X-Forwarded-For is believed only
    from the configured proxies: uvicorn's default believes any client on loopback."""
    proxies = settings.trusted_proxies
    return {"access_log": False, "log_config": LOG_CONFIG, "proxy_headers": bool(proxies),
            "forwarded_allow_ips": ",".join(proxies) or None}

