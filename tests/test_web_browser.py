"""The web product end to end: `make run`'s command on a free port, driven by a real Chromium.

Chromium is Debian's package (`make test` installs it when missing); Playwright only drives it, it
never downloads a browser. Screenshots go to docs/ when UPDATE_SCREENSHOTS=1, else to a temp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from assistant.settings import PROJECT_ROOT
from benchmarks.serve import free_port, healthz_answers, wait_until_ready

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]  # nothing off the machine
MYELOMA = "My 62-year-old father's multiple myeloma relapsed twice after a transplant; we are looking for CAR-T."
HOSTILE_CSS = """
* { font-family: "Comic Sans MS" !important; line-height: 3 !important; }
div, button, iframe { display: none !important; width: 1px !important; height: 1px !important; }
care-widget { display: none !important; opacity: 0 !important; }
body > * { position: static !important; transform: scale(0.1) !important; }
"""


@dataclass
class LiveServer:
    url: str
    database: Path
    started_in_s: float


class StaticSite:
    """A hospital's own site on another origin: serves one host page from a temp dir."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *args: None  # type: ignore[method-assign]
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def host_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StaticSite, StaticSite, Path]]:
    """Two hospital sites: the first is on Renji's embed allow-list, the second is not."""
    folder = tmp_path_factory.mktemp("host-site")
    allowed, stranger = StaticSite(folder), StaticSite(folder)
    yield allowed, stranger, folder
    allowed.close()
    stranger.close()


@pytest.fixture(scope="module")
def live_server(settings, engine, host_sites, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`make run` on a free port, with the index the session already built and a fresh database."""
    allowed, _, _ = host_sites
    port = free_port()
    data_dir = settings.data_dir  # the session's index is reused, as `make run` reuses an unchanged one
    database = tmp_path_factory.mktemp("live") / "care.db"
    env = {**os.environ, "CARE_DATA_DIR": str(data_dir), "CARE_DATABASE_URL": f"sqlite:///{database}",
           "CARE_EMBED_ORIGINS": json.dumps({"renji": [allowed.origin]}), "GRADIO_TEMP_DIR": str(database.parent),
           "CARE_RATE_LIMITS__ENABLED": "false"}  # every browser here is one loopback address
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CARE_OPENAI_API_KEY", "CARE_OPENAI_BASE_URL"):
        env.pop(name, None)
    started = time.perf_counter()
    log_path = database.parent / "server.log"  # a file, not a pipe: nobody reads a pipe and a full one hangs
    with log_path.open("wb") as server_log:
        process = subprocess.Popen(["make", "--no-print-directory", "run", "HOST=127.0.0.1", f"PORT={port}"],
                                   cwd=PROJECT_ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, healthz_answers(url), limit_s=240, log=log_path)
        yield LiveServer(url, database, time.perf_counter() - started)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # open streams keep uvicorn's graceful shutdown waiting
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return PROJECT_ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path


DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(params=[DESKTOP, PHONE], ids=["desktop", "phone"])
def screen(request: pytest.FixtureRequest) -> dict[str, int]:
    """Each flow of the page runs on a desktop and on a phone-sized screen."""
    return request.param


def shot(shots: Path, name: str, screen: dict[str, int]) -> str:
    return str(shots / (f"{name}.png" if screen == DESKTOP else f"{name}-phone.png"))


def fits_the_width(page) -> bool:  # noqa: ANN001 (a Playwright page or frame)
    """Nothing sticks out sideways: a phone reader never scrolls left and right to read a line."""
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def in_view(page, selector: str) -> bool:  # noqa: ANN001
    return page.evaluate("""(selector) => { const box = document.querySelector(selector).getBoundingClientRect();
                                            return box.top >= -1 && box.bottom <= window.innerHeight + 1; }""",
                         selector)


def ask(page, text: str) -> None:  # noqa: ANN001 (a page, or the widget's frame)
    page.locator("#care-input textarea").fill(text)
    page.locator("#care-input textarea").press("Enter")


def open_widget(page, address: str):  # noqa: ANN001, ANN201 (Playwright objects)
    """The host page at `address`, with the widget opened: its chat frame."""
    page.goto(address)
    page.locator("care-widget .launcher").click(timeout=30_000)
    return page.frame_locator("care-widget iframe")


def test_make_run_serves_healthz_ready_on_a_free_port(live_server: LiveServer) -> None:
    body = httpx.get(f"{live_server.url}/healthz").json()
    assert body["status"] == "ready" and body["departments"] > 100


def test_the_patient_page_answers_the_myeloma_story_with_a_ruijin_card_and_source_links(
        live_server: LiveServer, browser, kb, shots: Path, screen: dict[str, int]) -> None:
    page = browser.new_page(viewport=screen)
    page.goto(live_server.url)
    ask(page, MYELOMA)
    card = page.wait_for_selector(".care-card[data-hospital=ruijin]", timeout=60_000)
    assert "Hematology" in card.inner_text()
    first_card = page.locator(".care-card").first
    assert first_card.get_attribute("data-hospital") == "ruijin"
    links = first_card.locator(".care-sources a")
    hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
    known_urls = {source.url for source in kb.sources.values() if source.url}
    assert hrefs and hrefs <= known_urls
    assert links.first.get_attribute("target") == "_blank"
    assert fits_the_width(page)
    page.screenshot(path=shot(shots, "patient-page", screen), full_page=True)
    page.close()


def test_the_consent_box_gates_sending_a_referral(live_server: LiveServer, browser, shots: Path,
                                                  screen: dict[str, int]) -> None:
    page = browser.new_page(viewport=screen)
    page.goto(live_server.url)
    ask(page, MYELOMA)
    page.wait_for_selector(".care-card[data-hospital=ruijin]", timeout=60_000)
    page.get_by_text("Send a referral to the hospital").click()
    page.click("#care-preview")
    page.wait_for_selector("#care-summary :text('Referral summary')", timeout=30_000)
    page.wait_for_function("!document.querySelector('#care-download-json').disabled", timeout=10_000)
    with page.expect_download() as json_download:
        page.click("#care-download-json")
    summary = json.loads(Path(json_download.value.path()).read_text(encoding="utf-8"))
    assert summary["what_they_wrote"] == [MYELOMA] and summary["department_id"] == "ruijin/hematology"
    with page.expect_download() as markdown_download:
        page.click("#care-download-md")
    assert "Referral summary" in Path(markdown_download.value.path()).read_text(encoding="utf-8")
    send = page.locator("#care-send")
    assert send.is_disabled()
    page.fill("#care-contact textarea, #care-contact input", "family@example.org")
    assert send.is_disabled()
    page.check("#care-consent input[type=checkbox]")
    page.wait_for_function("!document.querySelector('#care-send').disabled", timeout=10_000)
    with sqlite3.connect(live_server.database) as db:
        before = db.execute("select count(*) from referrals").fetchone()[0]
    send.click()
    page.wait_for_selector("#care-sent :text('Sent')", timeout=30_000)
    assert fits_the_width(page)
    page.screenshot(path=shot(shots, "referral", screen), full_page=True)
    with sqlite3.connect(live_server.database) as db:
        rows = db.execute("select hospital_id, contact from referrals").fetchall()
    assert len(rows) == before + 1 and rows[-1] == ("ruijin", "family@example.org")
    page.close()


def host_page(folder: Path, server_url: str, name: str = "host.html") -> str:
    """The example host page as a hospital would publish it: the script tag with the assistant's address."""
    html = (PROJECT_ROOT / "examples" / "widget-host.html").read_text(encoding="utf-8")
    (folder / name).write_text(html.replace('src="/widget.js"', f'src="{server_url}/widget.js"'), encoding="utf-8")
    return name


def test_the_widget_opens_scoped_to_its_hospital_and_survives_hostile_host_css(
        live_server: LiveServer, host_sites, browser, shots: Path, screen: dict[str, int]) -> None:
    allowed, _, folder = host_sites
    page = browser.new_page(viewport=screen)
    chat = open_widget(page, f"{allowed.origin}/{host_page(folder, live_server.url)}")
    launcher = page.locator("care-widget .launcher")
    ask(chat, "My son needs a liver transplant, he is 4")
    chat.locator(".care-card").first.wait_for(timeout=60_000)
    hospitals = {chat.locator(".care-card").nth(i).get_attribute("data-hospital")
                 for i in range(chat.locator(".care-card").count())}
    assert hospitals == {"renji"}
    page.screenshot(path=shot(shots, "widget", screen))

    page.add_style_tag(content=HOSTILE_CSS)  # the host page restyles everything it can reach
    page.wait_for_timeout(300)
    box, frame_box = launcher.bounding_box(), page.locator("care-widget iframe").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 30
    assert frame_box is not None and frame_box["width"] > 300 and frame_box["height"] > 400
    assert launcher.evaluate("e => getComputedStyle(e).fontFamily").startswith("system-ui")
    launcher.click()  # closes, then opens again with the conversation kept
    launcher.click()
    assert chat.locator(".care-card").first.is_visible()
    page.close()


def test_the_widget_does_not_open_on_a_site_missing_from_the_allow_list(
        live_server: LiveServer, host_sites, browser, screen: dict[str, int]) -> None:
    _, stranger, folder = host_sites
    page = browser.new_page(viewport=screen)
    page.goto(f"{stranger.origin}/{host_page(folder, live_server.url, 'stranger.html')}")
    page.locator("care-widget .launcher").click()
    notice = page.locator("care-widget .notice")
    notice.wait_for(timeout=10_000)
    assert "not switched on for this website" in notice.inner_text() and stranger.origin in notice.inner_text()
    assert page.locator("care-widget iframe").count() == 0, "no blank frame"
    box = notice.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= screen["width"], "the notice fits"
    page.close()


def chinese_host_page(folder: Path, server_url: str, name: str) -> str:
    name = host_page(folder, server_url, name)
    host = (folder / name).read_text(encoding="utf-8")
    (folder / name).write_text(host.replace('data-hospital="renji" data-color', 'data-hospital="renji" data-lang="zh" '
                                                                           'data-color'), encoding="utf-8")
    return name


def test_a_chinese_widget_speaks_chinese_from_its_launcher_to_its_emergency_banner(
        live_server: LiveServer, host_sites, browser, shots: Path) -> None:
    allowed, _, folder = host_sites
    name = chinese_host_page(folder, live_server.url, "chinese.html")
    page = browser.new_page(viewport=DESKTOP)
    chat = open_widget(page, f"{allowed.origin}/{name}")
    chat.locator("#care-chat :text('您好')").wait_for(timeout=30_000)
    assert chat.locator("#care-send-message").inner_text() == "发送"
    assert "仁济医院" in chat.locator("h3").first.inner_text()
    ask(chat, "我妈妈突然倒地，叫不醒")
    banner = chat.locator("#care-banner .care-emergency")
    banner.wait_for(timeout=30_000)
    assert "这可能是急症" in banner.inner_text() and "中国大陆 120" in banner.inner_text()
    chat.locator("#care-chat :text('请立即拨打急救电话')").first.wait_for(timeout=10_000)
    page.screenshot(path=str(shots / "widget-zh.png"))
    page.close()


def test_on_a_phone_a_chinese_family_gets_chinese_cards_and_sends_a_referral_from_a_chinese_panel(
        live_server: LiveServer, host_sites, browser, shots: Path) -> None:
    allowed, _, folder = host_sites
    page = browser.new_page(viewport=PHONE)
    chat = open_widget(page, f"{allowed.origin}/{chinese_host_page(folder, live_server.url, 'chinese-referral.html')}")
    ask(chat, "我们的女儿8个月大，胆道闭锁，葛西手术没有成功，想做肝移植")
    card = chat.locator(".care-card").first
    card.wait_for(timeout=60_000)
    assert "仁济医院" in card.inner_text() and "来源" in card.inner_text()
    chat.get_by_text("向医院发送转诊摘要").click()
    chat.locator("#care-preview").click()
    chat.locator("#care-summary :text('转诊摘要')").first.wait_for(timeout=30_000)
    panel = chat.locator("#care-referral").inner_text()
    assert "我同意" in panel and "Send a referral" not in panel and "I agree" not in panel
    assert chat.locator("#care-send").inner_text() == "发送给医院"
    assert chat.locator("#care-preview").inner_text() == "预览摘要"
    assert "隐私说明" in chat.locator("#care-privacy").inner_text()
    assert "对照来源核实" in chat.locator("#care-footer").inner_text()
    chat.locator("#care-contact textarea, #care-contact input").fill("wechat: lin_family")
    assert chat.locator("#care-send").is_disabled(), "nothing is sent before the consent box is ticked"
    chat.locator("#care-consent input[type=checkbox]").check()
    chat.locator("#care-send").click()
    chat.locator("#care-sent :text('已发送')").wait_for(timeout=30_000)
    assert "仁济医院" in chat.locator("#care-sent").inner_text()
    page.screenshot(path=str(shots / "widget-zh-referral-phone.png"))
    page.close()


def test_on_a_phone_the_widget_keeps_the_emergency_call_to_action_in_view_in_the_hospitals_colour(
        live_server: LiveServer, host_sites, browser, shots: Path) -> None:
    allowed, _, folder = host_sites
    page = browser.new_page(viewport=PHONE)
    chat = open_widget(page, f"{allowed.origin}/{host_page(folder, live_server.url, 'phone.html')}")
    bar = page.locator("care-widget .bar")
    assert bar.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(138, 21, 56)"  # data-color #8a1538
    ask(chat, "my mum collapsed and is not breathing properly")
    banner = chat.locator("#care-banner .care-emergency")
    banner.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    frame, shown = page.locator("care-widget iframe").bounding_box(), banner.bounding_box()
    assert frame is not None and shown is not None
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= 390, "the panel fits the phone's width"
    assert frame["y"] <= shown["y"] and shown["y"] + shown["height"] <= frame["y"] + frame["height"], \
        "the call to action is inside the visible panel"
    page.screenshot(path=str(shots / "widget-phone-emergency.png"))
    page.close()




def test_two_browsers_never_see_each_others_conversation(live_server: LiveServer, browser) -> None:
    first, second = browser.new_context(), browser.new_context()
    mine, theirs = first.new_page(), second.new_page()
    mine.goto(live_server.url)
    theirs.goto(live_server.url)
    ask(mine, MYELOMA)
    mine.wait_for_selector(".care-card[data-hospital=ruijin]", timeout=60_000)
    ask(theirs, "Tell me more about the first one")
    theirs.wait_for_selector("#care-chat :text('Tell me more about the first one')", timeout=30_000)
    theirs.wait_for_timeout(1500)
    assert theirs.locator(".care-card").count() == 0
    assert "Ruijin" not in theirs.locator("#care-chat").inner_text()
    first.close()
    second.close()


CONTRAST_OF_EVERY_TEXT = """(root) => {
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = (rgb) => { const [r, g, b] = rgb.match(/[0-9.]+/g).map(Number);
                               return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b); };
  const background = (el) => { for (; el; el = el.parentElement) { const bg = getComputedStyle(el).backgroundColor;
                                 if (bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg; }
                               return 'rgb(255, 255, 255)'; };
  return [root, ...root.querySelectorAll('*')].filter((el) => el.childNodes.length &&
      [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())).map((el) => {
    const [a, b] = [luminance(getComputedStyle(el).color), luminance(background(el))];
    return [el.tagName, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  });
}"""


def test_the_page_opens_with_a_welcome_two_examples_and_a_send_button_and_no_quick_replies_yet(
        live_server: LiveServer, browser, kb, screen: dict[str, int]) -> None:
    page = browser.new_page(viewport=screen)
    page.goto(live_server.url)
    page.wait_for_selector("#care-chat :text('Hello!')", timeout=30_000)
    assert page.locator("#care-send-message").is_visible() and fits_the_width(page)
    oldest, newest = kb.checked_range
    assert f"between {oldest} and {newest}" in page.locator("#care-footer").inner_text(), "the knowledge's date"
    assert page.locator("#care-example-1").is_visible() and page.locator("#care-example-2").is_visible()
    assert not page.get_by_role("button", name="How do I pay?").is_visible()
    page.click("#care-example-1")
    page.wait_for_selector(".care-card[data-hospital=ruijin]", timeout=60_000)
    page.get_by_role("button", name="How do I pay?").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#care-example-1").is_visible(), "the examples are for an empty conversation"
    page.close()


def test_a_long_reply_is_shown_from_its_start_not_its_source_list(live_server: LiveServer, browser,
                                                                  screen: dict[str, int]) -> None:
    page = browser.new_page(viewport=screen)
    page.goto(live_server.url)
    page.fill("#care-input textarea", MYELOMA)
    page.click("#care-send-message")
    page.wait_for_selector(".care-card[data-hospital=ruijin]", timeout=60_000)
    page.wait_for_timeout(500)
    top = page.evaluate("""() => { const replies = document.querySelectorAll('#care-chat [data-testid="bot"]');
                                   const reply = replies[replies.length - 1].getBoundingClientRect();
                                   return [reply.top, window.innerHeight]; }""")
    assert -1 < top[0] < top[1], "the reply's first line is on screen (to within the browser's sub-pixel rounding)"
    page.close()


def test_an_emergency_shows_a_readable_banner_and_clears_the_previous_cases_cards(
        live_server: LiveServer, browser, shots: Path, screen: dict[str, int]) -> None:
    page = browser.new_page(viewport=screen)
    page.goto(live_server.url)
    ask(page, MYELOMA)
    page.wait_for_selector(".care-card[data-hospital=ruijin]", timeout=60_000)
    ask(page, "My husband has crushing chest pain and is sweating, right now")
    banner = page.wait_for_selector("#care-banner .care-emergency", timeout=30_000)
    assert "emergency" in banner.inner_text().lower()
    page.wait_for_function("document.querySelectorAll('.care-card').length === 0", timeout=10_000)
    assert not page.get_by_role("button", name="How do I pay?").is_visible()
    contrasts = page.evaluate(CONTRAST_OF_EVERY_TEXT, banner)
    assert contrasts and all(ratio >= 4.5 for _, ratio in contrasts), contrasts
    page.wait_for_timeout(500)
    assert in_view(page, "#care-banner .care-emergency"), "the call to action is on screen after the reply"
    page.mouse.wheel(0, 600)
    page.wait_for_timeout(300)
    assert in_view(page, "#care-banner .care-emergency"), "the banner stays pinned while the reply is read"
    page.screenshot(path=shot(shots, "emergency", screen))
    page.close()


def test_start_over_leaves_no_cards_or_departments_of_the_old_case(live_server: LiveServer, browser,
                                                                   screen: dict[str, int]) -> None:
    page = browser.new_page(viewport=screen)
    page.goto(live_server.url)
    ask(page, MYELOMA)
    page.wait_for_selector(".care-card[data-hospital=ruijin]", timeout=60_000)
    page.click("#care-start-over")
    page.wait_for_function("document.querySelectorAll('.care-card').length === 0", timeout=30_000)
    page.get_by_text("Send a referral to the hospital").click()
    page.click("#care-preview")
    page.wait_for_selector("#care-summary :text('Ask for recommendations first')", timeout=10_000)
    page.close()


def test_user_markup_never_runs_in_the_page_or_the_widget(live_server: LiveServer, host_sites, browser) -> None:
    allowed, _, folder = host_sites
    markup = ("I'm 40 with lupus <img src=x onerror=\"window.top.pwned=1\"><script>window.top.pwned=2</script> "
              "![pixel](http://127.0.0.1:9/track.png)")
    page = browser.new_page()
    page.goto(live_server.url)
    ask(page, markup)
    page.wait_for_selector(".care-card", timeout=60_000)  # a second submit while the first runs is ignored
    ask(page, "prepare a referral summary")
    page.wait_for_selector("#care-chat :text('Referral summary')", timeout=30_000)
    assert page.evaluate("window.pwned") is None
    assert page.locator("#care-chat img[src=x], #care-chat img[src*=track], #care-chat script").count() == 0
    chat = open_widget(page, f"{allowed.origin}/{host_page(folder, live_server.url, 'markup.html')}")
    ask(chat, markup)
    chat.locator("#care-chat :text('lupus')").first.wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    assert page.evaluate("window.pwned") is None
    assert chat.locator("#care-chat img[src=x], #care-chat img[src*=track], #care-chat script").count() == 0
    page.close()


def test_the_inbox_page_shows_a_hospital_its_referrals_and_works_their_status(live_server: LiveServer, browser,
                                                                              shots: Path,
                                                                              screen: dict[str, int]) -> None:
    from assistant.store.database import Store

    key = Store.open(f"sqlite:///{live_server.database}").create_key("ruijin")
    api = f"{live_server.url}/api/v1"
    conversation_id = httpx.post(f"{api}/conversations").json()["conversation_id"]
    httpx.post(f"{api}/conversations/{conversation_id}/messages", json={"text": MYELOMA + " <b>urgent</b>"},
               timeout=30)
    referral_id = httpx.post(f"{api}/conversations/{conversation_id}/referral", timeout=30,
                             headers={"Idempotency-Key": f"inbox-page-{conversation_id}"},
                             json={"consent": True, "contact": "lin.family@example.org",
                                   "department_id": "ruijin/hematology"}).json()["referral_id"]
    page = browser.new_page(viewport=screen)
    page.goto(f"{live_server.url}/inbox")
    page.fill("#key", "care_wrong_key")
    page.click("button[type=submit]")
    page.wait_for_selector("#problem:has-text('not recognised')", timeout=10_000)
    assert "Bearer" not in page.inner_text("#problem"), "a person reads this, not an HTTP client"
    page.fill("#key", key)
    page.click("button[type=submit]")
    card = page.locator(f"[data-referral='{referral_id}']")
    card.wait_for(timeout=10_000)
    assert "Inbox of Ruijin Hospital" in page.inner_text("#owner")
    assert "lin.family@example.org" in card.inner_text() and "<b>urgent</b>" in card.inner_text()
    assert "age 62 years" in card.inner_text()
    assert "Questions for your team" in card.inner_text() and "online consultation" in card.inner_text()
    assert card.locator("b").count() == 0  # the patient's text is shown, never rendered
    card.locator("select.status").select_option("contacted")
    page.wait_for_timeout(500)
    inbox = httpx.get(f"{api}/inbox", headers={"Authorization": f"Bearer {key}"}).json()
    assert next(r for r in inbox if r["referral_id"] == referral_id)["status"] == "contacted"
    assert fits_the_width(page)
    page.screenshot(path=shot(shots, "inbox", screen))
    page.close()
