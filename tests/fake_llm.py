"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the language-model tests.

It speaks the real wire protocol (JSON and server-sent events), so the real langchain-openai
client runs end to end. The requested model name picks the behaviour:

    good            echoes the draft with a friendly first line (streamed or not)
    chinese         the draft with a Chinese first line
    spanish         the draft with a Spanish first line
    invent-hospital adds a hospital that is not in the evidence
    fake-phone      adds a phone number
    fake-price      adds a price
    drop-emergency  answers without the emergency instruction
    foreign-link    adds a link to a domain no source of the reply has
    image           adds a markdown image (the browser would fetch it unasked)
    html            adds raw markup with an event handler
    invent-hospital-zh  adds a made-up hospital in Chinese
    price-in-words  adds a price spelled out in words
    invent-hospital-es  adds a made-up hospital in Spanish word order
    price-in-words-es   adds a price spelled out in Spanish
    slow            waits longer than the client's timeout
    slow-stream     sends a first chunk, then stalls
    steady          answers like good, after 0.8 s
    error500        answers HTTP 500
    malformed       answers 200 with a body that is not JSON
    empty           answers with empty content
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What a misbehaving model adds after the draft: each one something the guard must catch.
ADDED_AFTER_THE_DRAFT = {
    "invent-hospital": "You could also try Springfield General Hospital, which is excellent.",
    "fake-phone": "Call the department on +86 21 5555 0199 to book.",
    "fake-price": "Treatment costs about USD 30,000.",
    "foreign-link": "More details: [patient guide](https://medical-tourism-deals.example/ruijin)",
    "image": "![map](https://tracker.example/pixel.png?c=conversation)",
    "html": '<div onmouseover="fetch(\'/api/v1/inbox\')">Hover for the price list</div>',
    "invent-hospital-zh": "也可以考虑上海国际友好康复医院，口碑很好。",
    "price-in-words": "Expect to pay around thirty thousand US dollars for the whole treatment.",
    "invent-hospital-es": "También puede consultar el Hospital General de Springfield, que es excelente.",
    "price-in-words-es": "El tratamiento completo cuesta unos treinta mil dólares.",
}


def answer_for(model: str, draft: str) -> str:
    if model == "chinese":
        return "以下是为您整理的信息：\n\n" + draft
    if model == "spanish":
        return "Esto es lo que encontré para usted.\n\n" + draft
    if model in ADDED_AFTER_THE_DRAFT:
        return draft + "\n\n" + ADDED_AFTER_THE_DRAFT[model]
    if model == "drop-emergency":
        return "Please rest and drink water; you will feel better soon."
    if model == "empty":
        return ""
    return "Here is what I found for you.\n\n" + draft


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests: list[dict] = []

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        Handler.requests.append(body)
        model = body.get("model", "good")
        draft = body["messages"][-1]["content"]
        if model == "error500":
            self._send(500, b'{"error": {"message": "internal error"}}')
            return
        if model == "malformed":
            self._send(200, b"this is { not json")
            return
        if model == "slow":
            time.sleep(3)
        if model == "steady":
            time.sleep(0.8)
        text = answer_for(model, draft)
        if body.get("stream"):
            self._stream(model, text)
        else:
            payload = {
                "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            self._send(200, json.dumps(payload).encode())

    def _send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, model: str, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        pieces = [text[i : i + 40] for i in range(0, len(text), 40)] or [""]
        for number, piece in enumerate(pieces):
            chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            if model == "slow-stream" and number == 0:
                time.sleep(3)
        done = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()
        self.close_connection = True


class Server(ThreadingHTTPServer):
    request_queue_size = 64  # the default backlog of 5 would make a burst of turns wait a SYN retry (1 s)


class FakeLLMServer:
    def __init__(self) -> None:
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[dict]:
        return Handler.requests

    def __enter__(self) -> FakeLLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
