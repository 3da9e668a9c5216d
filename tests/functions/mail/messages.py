"""Emails for the mail tests, made with the standard library as mail programs send them."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

# A small but well-formed PDF (one empty page).
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
) + bytes(range(256))  # binary content, as real PDFs have


def _wire(msg: EmailMessage) -> bytes:
    """As it travels: lines end in CRLF."""
    return msg.as_bytes(policy=SMTP)


def _headers(msg: EmailMessage, subject: str, sender: str, to: str) -> None:
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 25, 8, 14, 50, tzinfo=UTC))
    msg["Message-ID"] = make_msgid(domain="example.com")


def plain(subject: str = "hello", body: str = "Hello Ada,\nsee you.\n",
          sender: str = "Grace Hopper <grace@example.com>",
          to: str = "ada@example.com") -> bytes:  # fmt: skip
    msg = EmailMessage()
    _headers(msg, subject, sender, to)
    msg.set_content(body)
    return _wire(msg)


def with_pdf(subject: str = "slides", filename: str = "slides-v3.pdf") -> bytes:
    msg = EmailMessage()
    _headers(msg, subject, "Grace Hopper <grace@example.com>", "ada@example.com")
    msg["Cc"] = "Team <team@example.com>"
    msg["In-Reply-To"] = "<root@example.com>"
    msg["References"] = "<root@example.com>"
    msg.set_content("Looks good to me, one comment on slide 4.\n\nGrace\n")
    msg.add_alternative("<p>Looks good to me, one comment on <b>slide 4</b>.</p><p>Grace</p>",
                        subtype="html")  # fmt: skip
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename=filename)
    return _wire(msg)


def html_only(subject: str = "newsletter") -> bytes:
    msg = EmailMessage()
    _headers(msg, subject, "News <news@example.org>", "ada@example.com")
    msg.set_content(
        "<html><head><style>p {color: red}</style><title>News</title></head><body>"
        "<h1>This week</h1><p>Three things&nbsp;happened.</p>"
        "<ul><li>One</li><li>Two</li></ul>"
        "<p><a href='https://example.org/more'>Read more</a></p></body></html>",
        subtype="html",
    )
    return _wire(msg)


def sized(size: int, subject: str = "big") -> bytes:
    """A plain message of about ``size`` bytes."""
    line = "All work and no play makes Jack a dull boy.\n"
    return plain(subject, line * (size // len(line) + 1))


def file_content(size: int) -> bytes:
    """``size`` random bytes, the same for the same size."""
    return random.Random(size).randbytes(size)


def with_file(size: int, subject: str = "the data") -> bytes:
    """A note with ``file_content(size)`` attached (base64 on the wire, as mail has it)."""
    msg = EmailMessage()
    _headers(msg, subject, "Grace Hopper <grace@example.com>", "ada@example.com")
    msg.set_content("Here is the file.\n")
    msg.add_attachment(file_content(size), maintype="application", subtype="octet-stream",
                       filename="data.bin")  # fmt: skip
    return _wire(msg)


def nested(depth: int = 800, subject: str = "deep") -> bytes:
    """A text ``depth`` multipart/mixed parts deep (800: 56 kB); the standard library's
    parser gives up at about 450."""
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
                       for n in range(depth))  # fmt: skip
    closing = b"".join(b"\r\n--b%d--\r\n" % n for n in reversed(range(depth)))
    head = f"From: mallory@example.com\r\nTo: ada@example.com\r\nSubject: {subject}\r\n"
    return (head.encode() + b"MIME-Version: 1.0\r\n" + opening
            + b"Content-Type: text/plain\r\n\r\nthe hidden text" + closing)  # fmt: skip
