"""The patient chat page (at `/`) and the hospital widget's embedded chat (at `/embed`), in Gradio.

Both call `CareService`, the same path as the API. Each browser keeps only ids in `gr.State` (its
conversation and the idempotency key of the referral it is about to send); the conversation itself
is in the database, so two browsers never share one and any copy of the app can answer.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import gradio as gr
from pydantic import Field, RootModel

from assistant.compose.templates import escape_markdown
from assistant.datafile import DataFileError, Strict, load_yaml
from assistant.reply import Recommendation, Reply
from assistant.service import CareService, Invalid, NotFound
from assistant.store.database import StoreUnavailable
from assistant.turn.safety import EmergencyNumbers
from assistant.web.downloads import Downloads
from assistant.web.limits import RateLimited, RateLimiter, client_address
from assistant.web.security import widget_hospital

EMERGENCY_BANNER = "<div class='care-banner care-emergency' role='alert'><strong>{lead}</strong> {text}</div>"
URGENT_BANNER = "<div class='care-banner care-urgent' role='status'><strong>{lead}</strong> {text}</div>"
PAGE_CONCURRENCY = 16  # turns answered at once per page; the engine is shared and safe across threads
# After a reply, what a reader needs first: the call to action of an emergency (on a phone-sized widget the chat
# pushes it off screen), else the reply's first line, not its end (the source list comes last).
SCROLL_TO_REPLY_START = """() => {
  const emergency = document.querySelector('#care-banner .care-emergency');
  const replies = document.querySelectorAll('#care-chat [data-testid="bot"]');
  if (replies.length) replies[replies.length - 1].scrollIntoView({block: 'start'});
  if (emergency) emergency.scrollIntoView({block: 'start'});
}"""


class ReferralPanelTexts(Strict):
    """The referral panel's labels and what it answers; `sent` and `too_many` are formatted."""

    title: str
    department: str
    preview: str
    download_markdown: str
    download_json: str
    consent: str
    contact: str
    send: str
    need_shortlist: str
    consent_first: str
    contact_needed: str
    preview_first: str
    sent: str
    too_many: str
    busy: str


class PageTexts(Strict):
    """prompts/page.yaml, one language: the page's own words. The buttons send their label as the message."""

    title: str
    welcome: str
    examples: list[str] = Field(min_length=2, max_length=2)
    quick_replies: list[str] = Field(min_length=4, max_length=4)
    start_over: str
    send: str
    message_label: str
    placeholder: str
    emergency_lead: str
    emergency_text: str
    urgent_lead: str
    urgent_text: str
    emergency_line: str
    sources: str
    referral: ReferralPanelTexts
    privacy: str
    sending_quickly: str
    knowledge_date: str  # the page's footer: {oldest} and {newest} month a source was checked
    busy: str


class PageTextsFile(RootModel[dict[Literal["en", "zh"], PageTexts]]):
    pass


def load_page_texts(prompts_dir: Path) -> dict[str, PageTexts]:
    texts = load_yaml(prompts_dir / "page.yaml", PageTextsFile).root
    if "en" not in texts:
        raise DataFileError(f"{prompts_dir / 'page.yaml'}: field 'en': missing; the page falls back to it")
    return dict(texts)


def theme() -> gr.themes.Base:
    """System fonts only: the default theme fetches Google Fonts, which tells Google who visits and
    hangs on a machine without internet."""
    return gr.themes.Default(font=["system-ui", "-apple-system", "Segoe UI", "Noto Sans", "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


CSS = """
/* Gradio's container hides its overflow, which makes it the banner's scroll box and stops "sticky"; clipping
   clips the same without being a scroll box, so the banner stays pinned to the top of the window */
.gradio-container {overflow: clip !important}
#care-banner {position: sticky; top: 0; z-index: 20}
.care-banner {padding: 12px 16px; border-radius: 8px; margin: 4px 0; font-size: 1.05em}
.care-banner strong, .care-banner a {color: inherit !important}
.care-emergency, .care-emergency * {background: #b00020; color: #fff !important}
.care-urgent, .care-urgent * {background: #fff3cd; color: #5c4400 !important}
.care-urgent {border: 1px solid #e0c060}
.care-cards {display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 12px}
.care-card {border: 1px solid #d0d7de; border-radius: 10px; padding: 12px 14px; background: #fff; color: #1f2328}
.care-card h3 {margin: 0 0 2px 0; font-size: 1.05em}
.care-card .care-hospital {color: #57606a; margin-bottom: 8px}
.care-card ul {padding-left: 18px; margin: 6px 0}
.care-card .care-sources a {margin-right: 8px}
"""


def source_links(rec: Recommendation, service: CareService, numbers: dict[str, int]) -> str:
    links = []
    for item in rec.evidence:
        source = service.assistant.kb.sources[item.source_id]
        number = numbers.setdefault(item.source_id, len(numbers) + 1)
        label = html.escape(source.title, quote=True)
        if source.url:
            links.append(f"<a href='{html.escape(source.url, quote=True)}' target='_blank' rel='noopener noreferrer' "
                         f"title='{label}'>[{number}]</a>")
        else:
            links.append(f"<span title='{label}'>[{number}] {html.escape(source.publication or '')}</span>")
    return " ".join(dict.fromkeys(links))


def cards_html(recommendations: list[Recommendation], service: CareService, texts: PageTexts, language: str) -> str:
    """One card per recommendation: the department, why it fits and its sources; the reply above holds what the
    sources say, so the cards do not repeat it. In Chinese the names are the knowledge's Chinese names and the
    reason is the specialty's. Every string is escaped."""
    if not recommendations:
        return ""
    kb = service.assistant.kb
    numbers: dict[str, int] = {}
    cards = []
    for position, rec in enumerate(recommendations, start=1):
        dept, hospital = kb.department(rec.department_id), kb.hospitals[rec.hospital_id]
        if language == "zh":
            heading, where = dept.chinese_name, f"{hospital.name_zh} ({hospital.name})"
            why = kb.language.specialty_names_zh[rec.specialties[0]]
        else:
            heading, where, why = dept.name, f"{hospital.name} ({hospital.name_zh})", rec.why
        cards.append(
            f"<div class='care-card' data-hospital='{html.escape(rec.hospital_id)}'>"
            f"<h3>{position}. {html.escape(heading)}</h3>"
            f"<div class='care-hospital'>{html.escape(where)}</div>"
            f"<div class='care-why'>{html.escape(why)}</div>"
            f"<div class='care-sources'>{html.escape(texts.sources)} {source_links(rec, service, numbers)}</div>"
            "</div>"
        )
    return f"<div class='care-cards'>{''.join(cards)}</div>"


def banner_html(reply: Reply, numbers: EmergencyNumbers, texts: PageTexts, language: str) -> str:
    listed = numbers.full_zh if language == "zh" else numbers.full
    emergency = EMERGENCY_BANNER.format(lead=html.escape(texts.emergency_lead),
                                        text=html.escape(texts.emergency_text.format(numbers=listed)))
    urgent = URGENT_BANNER.format(lead=html.escape(texts.urgent_lead), text=html.escape(texts.urgent_text))
    return {"emergency": emergency, "urgent": urgent}.get(reply.triage, "")


def shown_history(service: CareService, conversation_id: str | None, welcome_text: str) -> list[dict]:
    """The conversation as the chat shows it, after the welcome; an expired or deleted one shows only that."""
    welcome = [{"role": "assistant", "content": welcome_text}]
    if conversation_id is None:
        return welcome
    try:
        turns = service.conversation(conversation_id).conversation.turns
    except (NotFound, StoreUnavailable):
        return welcome
    return welcome + [message for turn in turns
                      for message in ({"role": "user", "content": escape_markdown(turn.user)},
                                      {"role": "assistant", "content": turn.reply})]


def build_page(service: CareService, limiter: RateLimiter, downloads: Downloads, embedded: bool = False) -> gr.Blocks:
    """The chat; `embedded` reads the widget's hospital from the URL (`/embed?hospital=renji`) once, at load."""
    kb = service.assistant.kb
    retention_days = service.assistant.settings.retention_days
    numbers = service.assistant.engine.safety.numbers
    page_texts = load_page_texts(service.assistant.settings.prompts_dir)
    english = page_texts["en"]

    def texts_for(language: str | None) -> PageTexts:
        return page_texts.get(language or "en", english)

    def on_load(request: gr.Request) -> dict:
        """The widget's hospital and language, read once from its URL; the page's own words follow the language.
        Called after the page is built, so the components and `page_words` it names (defined below) exist."""
        hospital_id = widget_hospital(request.query_params.getlist("hospital")) if embedded else None
        asked = request.query_params.get("lang") if embedded else None
        language = asked if asked in page_texts else None
        texts = texts_for(language)
        if embedded and hospital_id not in kb.hospitals:
            return {hospital_state: None, language_state: None, box: gr.update(interactive=False),
                    title: "**This widget is not configured:** the page needs `data-hospital` set to a known "
                           "hospital id, once.", **page_words(english)}
        heading = ""
        if hospital_id:
            hospital = kb.hospitals[hospital_id]
            heading = "### " + texts.title.format(hospital=hospital.name, hospital_zh=hospital.name_zh)
        return {hospital_state: hospital_id, language_state: language, title: heading,
                box: gr.update(interactive=True, label=texts.message_label, placeholder=texts.placeholder),
                **page_words(texts)}

    def send(message: str, conversation_id: str | None, hospital_id: str | None, language: str | None,
             request: gr.Request) -> Iterator[tuple]:
        """The history shown comes from the store, not from the browser: a request carries only the new
        message, so the page stays under the same body cap as the API however long the conversation."""
        address = client_address(request)
        texts = texts_for(language)
        history = shown_history(service, conversation_id, texts.welcome)
        # the user's words show as typed: never as HTML or markdown (an image there would load a URL)
        if message.strip():
            history.append({"role": "user", "content": escape_markdown(message)})
        unchanged = tuple(gr.update() for _ in range(6))  # banner, cards, departments and the three button rows
        try:
            if conversation_id is None:
                limiter.conversation_started(address)
                conversation_id = service.start(widget_hospital=hospital_id, language=language).id
            limiter.message(address, conversation_id)
            try:
                turn = service.send(conversation_id, message)
            except NotFound:  # expired or deleted: carry on in a fresh conversation
                conversation_id = service.start(widget_hospital=hospital_id, language=language).id
                turn = service.send(conversation_id, message)
        except RateLimited as limited:
            notice = texts.sending_quickly.format(seconds=limited.retry_after)
            yield [*history, {"role": "assistant", "content": notice}], conversation_id, message, *unchanged
            return
        except Invalid as problem:  # too long: refused as the API refuses it, nothing stored
            yield [*history, {"role": "assistant", "content": problem.message}], conversation_id, message, *unchanged
            return
        except StoreUnavailable:
            notice = texts.busy
            yield [*history, {"role": "assistant", "content": notice}], conversation_id, message, *unchanged
            return
        history.append({"role": "assistant", "content": ""})
        shown = ""
        for delta in turn.deltas:
            shown += delta
            history[-1]["content"] = shown
            yield history, conversation_id, "", *unchanged
        reply = turn.reply
        history[-1]["content"] = reply.text
        # the cards, the departments to refer to and the follow-up buttons are the shortlist's: an emergency, a new
        # case or "start over" leaves none on screen
        choices = [(f"{kb.department(r.department_id).name}, {kb.hospitals[r.hospital_id].name}", r.department_id)
                   for r in reply.recommendations]
        yield (history, conversation_id, "", banner_html(reply, numbers, texts, language or "en"),
               cards_html(reply.recommendations, service, texts, language or "en"),
               gr.update(choices=choices, value=choices[0][1] if choices else None),
               gr.update(visible=bool(choices)), gr.update(visible=True), gr.update(visible=False))

    def preview(conversation_id: str | None, department_id: str | None, language: str | None) -> tuple:
        """Show exactly what would be sent, in the page's language; a new preview gets a new idempotency key."""
        words = texts_for(language).referral
        if not conversation_id or not department_id:
            return words.need_shortlist, gr.update(), gr.update(), None
        try:
            conv = service.conversation(conversation_id).conversation
            summary = service.referral_summary(conv, department_id)
        except (Invalid, NotFound) as problem:
            return str(problem), gr.update(), gr.update(), None
        markdown = service.referral_markdown(summary, language or "en")
        md_path, json_path = downloads.write(conversation_id, markdown, summary.model_dump_json(indent=2))
        return markdown, gr.update(value=md_path, interactive=True), gr.update(value=json_path, interactive=True), \
            uuid.uuid4().hex

    def submit(conversation_id: str | None, department_id: str | None, consent: bool, contact: str,
               idempotency_key: str | None, language: str | None, request: gr.Request) -> str:
        words = texts_for(language).referral
        if not consent:
            return words.consent_first
        if len(contact.strip()) < 3:
            return words.contact_needed
        if not conversation_id or not department_id or not idempotency_key:
            return words.preview_first
        try:
            retried = service.previous_referral(conversation_id, department_id, contact.strip(), idempotency_key)
            if retried is None:
                limiter.referral(client_address(request), conversation_id)
            referral, _ = service.refer(conversation_id, department_id, contact.strip(), idempotency_key)
        except (Invalid, NotFound) as problem:
            return str(problem)
        except RateLimited as limited:
            return words.too_many.format(seconds=limited.retry_after)
        except StoreUnavailable:
            return words.busy
        hospital = kb.hospitals[referral.hospital_id]
        name = hospital.name_zh if language == "zh" else hospital.name
        return words.sent.format(hospital=html.escape(name), reference=referral.id[:8])

    with gr.Blocks(title="Shanghai care finder", delete_cache=(3600, 3600)) as page:
        hospital_state, language_state, conversation_state = gr.State(None), gr.State(None), gr.State(None)
        key_state = gr.State(None)
        title = gr.Markdown("")
        if not embedded:
            gr.Markdown("## Find the right hospital department in Shanghai\nDescribe the diagnosis or symptoms and "
                        "who the patient is. Every fact comes with its source. Write in English or Chinese (中文): "
                        "the reply comes in the language you write in.")
        emergency_line = gr.Markdown(english.emergency_line.format(numbers=numbers.short))
        banner = gr.HTML("", elem_id="care-banner")
        chat = gr.Chatbot(value=shown_history(service, None, english.welcome), label="Assistant", show_label=False,
                          height=460 if embedded else 520, sanitize_html=True, render_markdown=True,
                          autoscroll=False, elem_id="care-chat")
        cards = gr.HTML("", elem_id="care-cards")
        with gr.Row(elem_id="care-examples") as examples_row:
            example_buttons = [gr.Button(text, size="sm", elem_id=f"care-example-{number}")
                               for number, text in enumerate(english.examples, start=1)]
        with gr.Row(equal_height=True):
            box = gr.Textbox(label=english.message_label, elem_id="care-input", scale=5,
                             max_length=service.assistant.settings.max_message_chars,
                             placeholder=english.placeholder)
            send_message = gr.Button(english.send, variant="primary", scale=1, min_width=80,
                                     elem_id="care-send-message")
        with gr.Row(visible=False, elem_id="care-quick") as quick_row:
            quick_buttons = [gr.Button(text, size="sm") for text in english.quick_replies]
        with gr.Row(visible=False) as start_over_row:
            start_over = gr.Button(english.start_over, size="sm", elem_id="care-start-over")
        panel = english.referral
        with gr.Accordion(panel.title, open=False, elem_id="care-referral") as referral_panel:
            department = gr.Dropdown(label=panel.department, choices=[], interactive=True, elem_id="care-department")
            preview_button = gr.Button(panel.preview, size="sm", elem_id="care-preview")
            summary = gr.Markdown("", elem_id="care-summary")
            with gr.Row():
                download_md = gr.DownloadButton(panel.download_markdown, interactive=False, size="sm",
                                                elem_id="care-download-md")
                download_json = gr.DownloadButton(panel.download_json, interactive=False, size="sm",
                                                  elem_id="care-download-json")
            consent = gr.Checkbox(label=panel.consent, value=False, elem_id="care-consent")
            contact = gr.Textbox(label=panel.contact, max_lines=1, elem_id="care-contact")
            send_button = gr.Button(panel.send, variant="primary", interactive=False, elem_id="care-send")
            sent = gr.Markdown("", elem_id="care-sent")
        privacy = gr.Markdown(english.privacy.format(days=retention_days), elem_id="care-privacy")
        oldest, newest = kb.checked_range
        footer = gr.Markdown(english.knowledge_date.format(oldest=oldest, newest=newest), elem_id="care-footer")

        def page_words(texts: PageTexts) -> dict:
            """Every word of the page in one language: the welcome, the buttons, the referral panel, the notes."""
            words = texts.referral
            return {
                emergency_line: texts.emergency_line.format(numbers=numbers.short),
                chat: gr.update(value=shown_history(service, None, texts.welcome)),
                send_message: gr.update(value=texts.send),
                **{button: gr.update(value=text)
                   for button, text in zip([*example_buttons, *quick_buttons], [*texts.examples, *texts.quick_replies],
                                           strict=True)},
                start_over: gr.update(value=texts.start_over),
                referral_panel: gr.update(label=words.title),
                department: gr.update(label=words.department),
                preview_button: gr.update(value=words.preview),
                download_md: gr.update(label=words.download_markdown),
                download_json: gr.update(label=words.download_json),
                consent: gr.update(label=words.consent),
                contact: gr.update(label=words.contact),
                send_button: gr.update(value=words.send),
                privacy: texts.privacy.format(days=retention_days),
                footer: texts.knowledge_date.format(oldest=oldest, newest=newest),
            }

        inputs = [conversation_state, hospital_state, language_state]
        outputs = [chat, conversation_state, box, banner, cards, department, quick_row, start_over_row, examples_row]
        box.submit(send, [box, *inputs], outputs).then(None, js=SCROLL_TO_REPLY_START)
        send_message.click(send, [box, *inputs], outputs).then(None, js=SCROLL_TO_REPLY_START)
        for button in [*quick_buttons, start_over, *example_buttons]:  # sends its label, in the page's language
            button.click(send, [button, *inputs], outputs).then(None, js=SCROLL_TO_REPLY_START)
        preview_button.click(preview, [conversation_state, department, language_state],
                             [summary, download_md, download_json, key_state])
        consent.change(lambda ticked: gr.update(interactive=bool(ticked)), consent, send_button)
        send_button.click(submit, [conversation_state, department, consent, contact, key_state, language_state],
                          sent)
        page.load(on_load, None, [hospital_state, language_state, title, box, *page_words(english)])
    # Gradio runs one event per listener at a time by default: with a language model (seconds per turn)
    # every visitor would wait for everyone before them. The API already answers from a thread pool.
    page.queue(default_concurrency_limit=PAGE_CONCURRENCY)
    return page
