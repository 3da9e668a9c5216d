"""A local HTTP server that speaks the part of Ollama's API Loom uses: ``POST /api/chat``
(``stream: false``, ``format`` a JSON schema) and ``GET /api/tags``, with its errors.

Each chat request is kept in ``requests``; the answer comes from ``answer(request)``,
which returns the assistant's text (an ``Ollama`` answers 200 with it) or an
``(status, body)`` pair for an error.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = str | tuple[int, dict[str, Any]]


class FakeOllama:
    def __init__(self, answer: Callable[[dict[str, Any]], Answer]) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.models = ["mistral-small3.2:latest"]
        self.delay = 0.0  # seconds each chat answer waits
        self.done_reason = "stop"
        self.url = ""

    def user_texts(self) -> list[str]:
        """The last user message of each chat request."""
        return [[m for m in r["messages"] if m["role"] == "user"][-1]["content"]
                for r in self.requests]  # fmt: skip

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                if self.path == "/api/tags":
                    self._send(200, {"models": [{"name": m, "model": m} for m in fake.models]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/api/chat":
                    self._send(404, {"error": "not found"})
                    return
                request = json.loads(raw)
                fake.requests.append(request)
                if fake.delay:
                    time.sleep(fake.delay)
                answer = fake.answer(request)
                if isinstance(answer, tuple):
                    self._send(*answer)
                    return
                self._send(200, {
                    "model": request["model"],
                    "created_at": "2026-11-25T08:15:30.123456Z",
                    "message": {"role": "assistant", "content": answer},
                    "done": True,
                    "done_reason": fake.done_reason,
                    "total_duration": 1_000_000,
                    "prompt_eval_count": 100,
                    "eval_count": 40,
                })  # fmt: skip

        return Handler

    @contextmanager
    def serve(self) -> Iterator[FakeOllama]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()


def refused_url() -> str:
    """A local address where nothing listens (its connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def echo(request: dict[str, Any]) -> str:
    """A valid answer whose summary is the last line of the user's message."""
    user = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    return json.dumps({
        "context_type": "summary",
        "summary": user.splitlines()[-1][:200] or "nothing",
        "entities": [{"name": "Anna", "kind": "person"}],
        "confidence": 0.8,
    })  # fmt: skip
