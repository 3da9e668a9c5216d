"""Reading emails as they come: encoded headers, odd charsets, alternatives, broken MIME,
the header alone, bodies cut at the schemas' limits."""

from __future__ import annotations

import base64
import zlib
from datetime import UTC, datetime, timedelta

import pytest

from functions.mail import parse
from functions.mail.htmltext import html_to_text
from functions.mail.parse import NotAnEmail, parse_headers, parse_message
from tests.functions.mail.messages import PDF, html_only, nested, plain, with_pdf


def wire(text: str, *, encoding: str = "utf-8") -> bytes:
    """``text`` (written with \\n) as it travels: CRLF line ends."""
    return text.replace("\n", "\r\n").encode(encoding)


def test_encoded_headers_are_decoded() -> None:
    parsed = parse_message(wire(
        "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.de>\n"
        "To: =?iso-8859-1?q?Ren=E9?= <rene@example.fr>, bob@example.com\n"
        'Cc: "Team, all" <team@example.com>\n'
        "Subject: =?iso-8859-1?q?Gr=FC=DFe?= aus =?utf-8?b?TcO8bmNoZW4=?=\n"
        "Date: Tue, 25 Nov 2026 09:14:50 +0100\n"
        "Message-ID: <abc.123@example.de>\n"
        "\n"
        "Hallo!\n"
    ))  # fmt: skip
    assert parsed.sender == "Jürgen Müller <j@example.de>"
    assert parsed.to == ["René <rene@example.fr>", "bob@example.com"]
    assert parsed.cc == ['"Team, all" <team@example.com>']
    assert parsed.subject == "Grüße aus München"
    assert parsed.date == datetime(2026, 11, 25, 8, 14, 50, tzinfo=UTC)
    assert parsed.date.utcoffset() == timedelta(hours=1)
    assert parsed.message_id == "<abc.123@example.de>"
    assert parsed.text_body == "Hallo!\n"
    assert parsed.attachments == []


QUOTED = "\u201cquoted\u201d \u2013 dash \u20ac"  # typographic quotes and dash, euro


@pytest.mark.parametrize(
    ("charset", "encoding", "body", "text"),
    [
        ("iso-8859-1", "8bit", "Grüße, café".encode("latin-1"), "Grüße, café"),
        ("windows-1252", "8bit", QUOTED.encode("cp1252"), QUOTED),
        ("koi8-r", "8bit", "Привет".encode("koi8-r"), "Привет"),
        ("utf-8", "base64", b"8J+RiyBoaSDDqXTDqQ==", "👋 hi été"),
        ("iso-8859-15", "quoted-printable", b"Prix: 5 =A4", "Prix: 5 €"),
    ],
)
def test_bodies_are_read_in_their_charset(
    charset: str, encoding: str, body: bytes, text: str
) -> None:
    raw = wire(f"From: a@example.com\nSubject: x\nContent-Type: text/plain; charset={charset}\n"
               f"Content-Transfer-Encoding: {encoding}\n\n") + body  # fmt: skip
    assert parse_message(raw).text_body == text


def test_an_unknown_or_wrong_charset_is_read_leniently() -> None:
    unknown = wire("Subject: x\nContent-Type: text/plain; charset=x-no-such-charset\n\nplain ascii")
    assert parse_message(unknown).text_body == "plain ascii"
    wrong = wire("Subject: x\nContent-Type: text/plain; charset=utf-8\n\n")
    wrong += "café".encode("cp1252")  # declared UTF-8, written in Windows-1252
    assert parse_message(wrong).text_body == "café"
    raw_header = b"Subject: caf\xe9 au lait\r\nFrom: a@example.com\r\n\r\nbody"
    assert parse_message(raw_header).subject.startswith("caf")


def test_multipart_alternative_keeps_the_text_and_the_html() -> None:
    parsed = parse_message(with_pdf())
    assert parsed.text_body == "Looks good to me, one comment on slide 4.\n\nGrace\n"
    assert parsed.html_body is not None
    assert "<b>slide 4</b>" in parsed.html_body
    (pdf,) = parsed.attachments
    assert (pdf.filename, pdf.content_type, pdf.content, pdf.inline) == (
        "slides-v3.pdf", "application/pdf", PDF, False)  # fmt: skip
    assert parsed.thread_id == "<root@example.com>"
    assert parsed.snippet(20) == "Looks good to me, o…"


def test_an_html_only_message_gets_a_text_body() -> None:
    parsed = parse_message(html_only())
    assert parsed.text_body == (
        "This week\n\nThree things happened.\n\n- One\n- Two\n\n"
        "Read more <https://example.org/more>"
    )
    assert parsed.html_body is not None
    assert parsed.html_body.startswith("<html>")


def test_html_to_text_drops_what_is_not_shown() -> None:
    html = ("<html><head><title>T</title><script>alert(1)</script></head><body>"
            "<div>Hi<br>there</div><table><tr><td>a</td><td>b</td></tr></table>"
            "<a href='https://x.org'>https://x.org</a> <img src='l.png' alt='logo'>"
            "</body></html>")  # fmt: skip
    assert html_to_text(html) == "Hi\nthere\n\na b\n\nhttps://x.org logo"


def test_threads_follow_references_then_in_reply_to() -> None:
    def thread(headers: str) -> str | None:
        return parse_message(wire(f"Subject: x\n{headers}\nhi")).thread_id

    assert thread("Message-ID: <c@x>\nIn-Reply-To: <b@x>\nReferences: <a@x> <b@x>\n") == "<a@x>"
    assert thread("Message-ID: <c@x>\nIn-Reply-To: <b@x>\n") == "<b@x>"
    assert thread("Message-ID: <c@x>\n") == "<c@x>"
    assert thread("") is None


def test_rfc2231_file_names_and_inline_images() -> None:
    raw = wire(
        "From: a@example.com\nSubject: photos\nMIME-Version: 1.0\n"
        'Content-Type: multipart/related; boundary="R"\n\n'
        "--R\nContent-Type: text/html; charset=utf-8\n\n<p>see <img src='cid:logo'></p>\n"
        "--R\nContent-Type: image/png\nContent-ID: <logo>\nContent-Disposition: inline\n"
        "Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n"
        "--R\nContent-Type: application/octet-stream\n"
        "Content-Disposition: attachment; filename*=utf-8''%C3%A9t%C3%A9%20photo.jpg\n"
        "Content-Transfer-Encoding: base64\n\n/9j/4AAQ\n--R--\n"
    )
    parsed = parse_message(raw)
    assert parsed.text_body == "see"
    logo, photo = parsed.attachments
    assert (logo.filename, logo.content_type, logo.inline) == ("", "image/png", True)
    assert logo.content == b"\x89PNG\r\n\x1a\n"
    assert (photo.filename, photo.inline) == ("été photo.jpg", False)


def test_a_forwarded_message_is_one_attachment() -> None:
    inner = plain("the original")
    raw = (
        wire(
            "From: a@example.com\nSubject: Fwd: the original\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="M"\n\n'
            "--M\nContent-Type: text/plain\n\nSee below.\n"
            "--M\nContent-Type: message/rfc822\n\n"
        )
        + inner
        + wire("\n--M--\n")
    )
    parsed = parse_message(raw)
    assert parsed.text_body == "See below."
    (forwarded,) = parsed.attachments
    assert forwarded.content_type == "message/rfc822"
    assert parse_message(forwarded.content).subject == "the original"


def test_broken_mime_is_read_as_far_as_it_goes() -> None:
    no_boundary = wire("Subject: broken\nContent-Type: multipart/mixed\n\nJust some text.\n")
    assert parse_message(no_boundary).text_body.strip() == "Just some text."
    never_closed = wire(
        'Subject: cut\nContent-Type: multipart/mixed; boundary="Z"\n\n--Z\n'
        "Content-Type: text/plain\n\nthe start\n--Z\nContent-Type: application/pdf\n"
        'Content-Disposition: attachment; filename="x.pdf"\nContent-Transfer-Encoding: base64\n\n'
        "JVBERi0xLj"  # base64 cut short, no closing boundary
    )
    parsed = parse_message(never_closed)
    assert parsed.text_body == "the start"
    (cut,) = parsed.attachments
    assert (cut.filename, cut.content_type) == ("x.pdf", "application/pdf")
    assert cut.content.startswith(b"%PDF-1.")
    odd = parse_message(wire(
        "From: <<not an address\nTo: ;;;, @@@, ada@example.com\nDate: the day after tomorrow\n"
        "Content-Type: text/plain; charset=\nSubject: still here\n\nbody"
    ))  # fmt: skip
    assert odd.subject == "still here"
    assert odd.date is None
    assert "ada@example.com" in odd.to
    assert odd.text_body == "body"


def test_a_date_without_a_zone_is_taken_as_utc() -> None:
    parsed = parse_message(wire("Subject: x\nDate: Tue, 25 Nov 2026 09:14:50 -0000\n\nhi"))
    assert parsed.date == datetime(2026, 11, 25, 9, 14, 50, tzinfo=UTC)


@pytest.mark.parametrize("raw", [b"", b"\x00\x01\x02 binary junk", b"no header here\r\n\r\nbody"])
def test_bytes_that_are_no_email_are_refused(raw: bytes) -> None:
    with pytest.raises(NotAnEmail, match="no header fields"):
        parse_message(raw)


def test_the_header_alone_is_read_where_the_parser_gives_up_on_the_rest() -> None:
    raw = nested()
    with pytest.raises(RecursionError):
        parse_message(raw)
    head = parse_headers(raw)
    assert (head.sender, head.to, head.subject) == ("mallory@example.com", ["ada@example.com"],
                                                    "deep")  # fmt: skip
    assert head.multipart_mixed
    assert parse_headers(with_pdf()).thread_id == "<root@example.com>"
    with pytest.raises(NotAnEmail):
        parse_headers(b"no header here\r\n\r\nbody")


BODY = "caf\u00e9 \U0001f600\r\nline two\r\n\r\n\x00nul\rlone CR\r\n" * 50


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7])
def test_bodies_read_in_pieces_read_as_a_whole(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bodies are decoded a piece at a time; where a piece ends (within a character or a
    CRLF) changes nothing."""
    raw = wire("Subject: x\nContent-Type: text/plain; charset=utf-8\n"
               "Content-Transfer-Encoding: 8bit\n\n") + BODY.encode()  # fmt: skip
    whole = parse_message(raw).text_body
    assert whole == BODY.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    monkeypatch.setattr(parse, "_CHUNK", chunk)
    assert parse_message(raw).text_body == whole
    monkeypatch.setattr(parse, "TEXT_CHARS", 100)
    assert parse_message(raw).text_body == whole[:100]


def test_a_charset_that_is_no_text_encoding_is_not_applied() -> None:
    """``charset=zlib_codec`` would inflate the body: it is read as UTF-8 instead."""
    packed = base64.encodebytes(zlib.compress(b"A" * 10_000))
    raw = wire("Subject: x\nContent-Type: text/plain; charset=zlib_codec\n"
               "Content-Transfer-Encoding: base64\n\n") + packed  # fmt: skip
    text = parse_message(raw).text_body
    assert len(text) < 100
    assert "AAAA" not in text
