"""The V2 model client against a real local HTTP server: a server that is waking up
(502/503, refused connections) is waited for, a 4xx is a dead letter, silence is
"unavailable"."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loom.runtime.model_client import (
    HttpModelClient,
    ModelFailed,
    ModelRefused,
    ModelUnavailable,
    v2_decode,
)


class Server:
    """Answers ``waking`` 503s first, then the JSON document sent, upper-cased."""

    def __init__(self) -> None:
        self.waking = 0
        self.waking_status = 503
        self.status = 200
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.paths.append(self.path)
                if outer.waking:
                    outer.waking -= 1
                    self._send(outer.waking_status, {"error": "starting"})
                elif outer.status != 200:
                    self._send(outer.status, {"error": "the audio is not 16-bit PCM"})
                else:
                    text = body["inputs"][0]["data"][0]
                    document = {k: str(v).upper() for k, v in json.loads(text).items()}
                    self._send(200, {"model_name": "stt", "outputs": [
                        {"name": "response", "shape": [1], "datatype": "BYTES",
                         "data": [json.dumps(document)]}]})  # fmt: skip

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()


async def test_a_waking_server_is_waited_for(server: Server) -> None:
    server.waking = 2
    client = HttpModelClient("stt", server.url, wake_seconds=30)
    try:
        assert await client.infer({"text": "hello"}) == {"text": "HELLO"}
    finally:
        await client.aclose()
    assert server.paths == ["/v2/models/stt/infer"] * 3


async def test_a_refusal_is_a_dead_letter_and_silence_unavailable(server: Server) -> None:
    server.status = 422
    client = HttpModelClient("stt", server.url, wake_seconds=1)
    with pytest.raises(ModelRefused, match=r"422.*16-bit PCM"):
        await client.infer({"text": "hello"})
    server.status, server.waking = 200, 100
    with pytest.raises(ModelUnavailable, match="answered 503 for 1 s"):
        await client.infer({"text": "hello"})
    await client.aclose()
    nobody = HttpModelClient("stt", "http://127.0.0.1:9", wake_seconds=0.5)
    with pytest.raises(ModelUnavailable, match="unreachable"):
        await nobody.infer({})
    await nobody.aclose()


def test_an_answer_without_the_response_output_is_a_failure() -> None:
    with pytest.raises(ModelFailed, match="no 'response' output"):
        v2_decode({"outputs": [{"name": "logits", "data": [1.0]}]})


async def test_a_busy_server_is_waited_for_and_a_failing_one_is_not(server: Server) -> None:
    server.waking, server.waking_status = 1, 429
    client = HttpModelClient("stt", server.url, wake_seconds=30)
    try:
        started = time.monotonic()
        assert await client.infer({"text": "hi"}) == {"text": "HI"}
        assert time.monotonic() - started >= 0.8  # its Retry-After: 1 s, not 0.5
        server.status = 500
        with pytest.raises(ModelFailed, match="answered 500"):
            await client.infer({"text": "hi"})
    finally:
        await client.aclose()
