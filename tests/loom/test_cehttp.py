"""The CloudEvents HTTP parser: strict on required attributes, never crashes on junk."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loom import cehttp
from loom.errors import MalformedEvent as BadRequest

ATTRS = {"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "/s", "ce-type": "t.a.b"}


def test_binary_mode_keeps_attributes_and_extensions() -> None:
    headers = {**ATTRS, "content-type": "application/json", "ce-partitionkey": "d1",
               "ce-time": "2026-11-25T08:00:00Z"}  # fmt: skip
    event = cehttp.parse_binary(headers, b'{"a": 1}')
    assert (event.get_id(), event.get_source(), event.get_type()) == ("e1", "/s", "t.a.b")
    assert event.get_extension("partitionkey") == "d1"
    assert event.get_data() == {"a": 1}


@pytest.mark.parametrize("missing", ["ce-id", "ce-source", "ce-type", "ce-specversion"])
def test_binary_mode_requires_each_attribute(missing: str) -> None:
    headers = {k: v for k, v in ATTRS.items() if k != missing}
    if missing == "ce-specversion":  # without it, it is not binary mode at all
        with pytest.raises(BadRequest, match="not a CloudEvent"):
            cehttp.detect_mode(headers)
        return
    with pytest.raises(BadRequest, match=f"missing required attribute.*{missing[3:]}"):
        cehttp.parse_binary(headers, b"{}")


def test_structured_mode_requires_id_which_the_sdk_would_invent() -> None:
    body = json.dumps({"specversion": "1.0", "source": "/s", "type": "t.a.b", "data": {}})
    with pytest.raises(BadRequest, match=r"missing required attribute\(s\): id"):
        cehttp.parse_structured(body.encode())


def test_structured_data_base64_and_data_together_is_an_error() -> None:
    body = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t.a.b", "data": {},
            "data_base64": "e30="}  # fmt: skip
    with pytest.raises(BadRequest, match="mutually exclusive"):
        cehttp.parse_structured(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("content_type", "mode"),
    [
        ("application/cloudevents+json; charset=utf-8", "structured"),
        ("application/cloudevents-batch+json", "batch"),
        ("APPLICATION/CLOUDEVENTS+JSON", "structured"),
    ],
)
def test_mode_detection(content_type: str, mode: str) -> None:
    assert cehttp.detect_mode({"content-type": content_type}) == mode


def test_batch_limits() -> None:
    with pytest.raises(BadRequest, match="at most 2 are accepted"):
        cehttp.parse_batch(b"[{}, {}, {}]", max_events=2)
    with pytest.raises(BadRequest, match="empty"):
        cehttp.parse_batch(b"[]", max_events=2)


header_names = st.sampled_from(
    ["ce-id", "ce-source", "ce-type", "ce-specversion", "ce-time", "ce-partitionkey",
     "content-type", "ce-dataschema", "ce-subject", "ce-x"]
)  # fmt: skip
text = st.text(max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.dictionaries(header_names, text, max_size=8), body=st.binary(max_size=200))
def test_binary_parser_only_ever_raises_bad_request(headers: dict[str, str], body: bytes) -> None:
    try:
        if cehttp.detect_mode(headers) == "binary":
            cehttp.parse_binary(headers, body)
    except BadRequest:
        pass


@settings(max_examples=300, deadline=None)
@given(
    event=st.dictionaries(
        st.sampled_from(["specversion", "id", "source", "type", "time", "data", "data_base64",
                         "datacontenttype", "partitionkey", "subject"]),
        json_values, max_size=9,
    )
)  # fmt: skip
def test_structured_parser_only_ever_raises_bad_request(event: dict[str, object]) -> None:
    with contextlib.suppress(BadRequest):
        cehttp.parse_structured(json.dumps(event).encode())


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_batch_parser_only_ever_raises_bad_request(body: bytes) -> None:
    try:
        for i, item in enumerate(cehttp.parse_batch(body, max_events=50)):
            with contextlib.suppress(BadRequest):
                cehttp.event_from_json(item, f"[{i}]")
    except BadRequest:
        pass


async def test_read_body_refuses_what_is_over_its_limit() -> None:
    from starlette.requests import Request

    from loom.errors import BodyTooLarge

    def request(body: bytes, declared: int | None) -> Request:
        chunks = [body[i : i + 10] for i in range(0, len(body), 10)] or [b""]

        async def receive() -> dict[str, object]:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        headers = [(b"content-length", str(declared).encode())] if declared is not None else []
        return Request({"type": "http", "method": "POST", "headers": headers}, receive)

    assert await cehttp.read_body(request(b"x" * 50, 50), 50) == b"x" * 50
    with pytest.raises(BodyTooLarge, match="body of 51 bytes is over the limit of 50") as info:
        await cehttp.read_body(request(b"x" * 51, 51), 50)
    assert info.value.extra == {"limit_bytes": 50}
    with pytest.raises(BodyTooLarge, match="over the limit of 50 bytes"):
        await cehttp.read_body(request(b"x" * 51, None), 50)  # no Content-Length: counted
