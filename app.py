"""Start the web app: the patient chat page (Gradio) mounted in a FastAPI app, served by uvicorn.

The page only calls `Assistant.stream`, the same path the API and the evaluations use; each
browser keeps its own conversation in `gr.State`, never on a shared object.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from assistant.settings import Settings, set_offline_environment

set_offline_environment()

import gradio as gr  # noqa: E402  (analytics must be off before gradio is imported)
from fastapi import FastAPI  # noqa: E402

from assistant.core import Assistant, Conversation  # noqa: E402
from assistant.reply import Reply  # noqa: E402

log = logging.getLogger("app")

INTRO = (
    "## Find the right hospital department in Shanghai\n"
    "Describe the diagnosis or symptoms and who the patient is. Every fact comes with its source.\n\n"
    "**In an emergency, call your local emergency number now (120 in mainland China, 112 or 911 elsewhere).**"
)


def build_page(assistant: Assistant) -> gr.Blocks:
    def send(message: str, history: list[dict], conv: Conversation | None) -> Iterator[tuple]:
        conv = conv or assistant.start()
        history = [*history, {"role": "user", "content": message}, {"role": "assistant", "content": ""}]
        shown = ""
        for event in assistant.stream(conv, message):
            if isinstance(event, Reply):
                history[-1]["content"] = event.text
            else:
                shown += event.text
                history[-1]["content"] = shown
            yield history, conv, ""

    with gr.Blocks(title="Shanghai care finder") as page:
        gr.Markdown(INTRO)
        chat = gr.Chatbot(label="Assistant", height=520, sanitize_html=True, render_markdown=True)
        conv_state = gr.State(None)
        box = gr.Textbox(label="Your message",
                         placeholder="e.g. My 62-year-old father's multiple myeloma relapsed twice")
        with gr.Row():
            for quick in ("Tell me more about the first one", "What do I need to bring?", "How do I pay?",
                          "Do I need a visa?", "Start over"):
                gr.Button(quick, size="sm").click(send, [gr.State(quick), chat, conv_state], [chat, conv_state, box])
        box.submit(send, [box, chat, conv_state], [chat, conv_state, box])
    return page


def create_app(assistant: Assistant) -> FastAPI:
    api = FastAPI(title="Shanghai care finder")

    @api.get("/healthz")
    def healthz() -> dict:
        return {"status": "ready", "departments": len(assistant.kb.departments)}

    return gr.mount_gradio_app(api, build_page(assistant), path="/")


def main() -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(settings.data_dir / "gradio"))
    assistant = Assistant.from_settings(settings)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "7860"))
    log.info("serving on http://%s:%d", host, port)
    uvicorn.run(create_app(assistant), host=host, port=port)


if __name__ == "__main__":
    main()
