"""Start the web app: the patient chat page (Gradio) mounted in a FastAPI app, served by uvicorn.

The page only calls the engine; all matching and wording lives in `assistant/`.
"""

from __future__ import annotations

import logging
import os

from assistant.settings import Settings, set_offline_environment

set_offline_environment()

import gradio as gr  # noqa: E402  (analytics must be off before gradio is imported)
from fastapi import FastAPI  # noqa: E402

from assistant.engine import Engine  # noqa: E402
from assistant.respond import Templates, recommendation_cards  # noqa: E402

log = logging.getLogger("app")


def answer(engine: Engine, templates: Templates, message: str) -> str:
    if not message.strip():
        return "Tell me the diagnosis or the symptoms, and who the patient is (age, child or adult)."
    result = engine.match(message)
    top = result.candidates[: engine.settings.top_k]
    if not top:
        return "I could not find a department for that yet. Could you name the diagnosis or the main symptom?"
    cards, sources = recommendation_cards(engine.kb, top)
    return templates.render("recommendations.md.j2", cards=cards, sources=sources)


def build_page(engine: Engine) -> gr.Blocks:
    templates = Templates(engine.settings.prompts_dir)

    def respond(message: str, history: list) -> str:
        return answer(engine, templates, message)

    with gr.Blocks(title="Shanghai care finder") as page:
        gr.Markdown(
            "## Find the right department in Shanghai\n"
            "Describe the diagnosis or symptoms and who the patient is. Every fact comes with its source.\n\n"
            "**In an emergency, call your local emergency number now (120 in mainland China).**"
        )
        gr.ChatInterface(respond)
    return page


def create_app(engine: Engine) -> FastAPI:
    api = FastAPI(title="Shanghai care finder")

    @api.get("/healthz")
    def healthz() -> dict:
        return {"status": "ready", "departments": len(engine.kb.departments)}

    return gr.mount_gradio_app(api, build_page(engine), path="/")


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.data_dir / "gradio"))
    engine = Engine.load(settings)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "7860"))
    log.info("serving on http://%s:%d", host, port)
    uvicorn.run(create_app(engine), host=host, port=port)


if __name__ == "__main__":
    main()
