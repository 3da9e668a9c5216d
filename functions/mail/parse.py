"""One email's structure from its RFC 822 bytes, with the standard library's ``email``.

Mail in the wild breaks the rules, so reading is lenient: a header that does not parse
is kept as its decoded text, a part in an unknown charset is read as UTF-8 (else
Windows-1252), a multipart without its boundary is read as text. Only bytes with no
header at all are refused (:class:`NotAnEmail`); a message the parser cannot read at all
(parts nested too deep, say) raises what the parser raised.

The text body is the first ``text/plain`` part that is not an attachment; where there is
none, the first ``text/html`` part as text. Every other leaf part (files, inline images,
a forwarded message, a calendar invitation) is an attachment.

Memory: the bytes are fed to the parser a piece at a time, base64 is decoded in one
step, and bodies are decoded only as far as the schemas' limits, so a message of N bytes
takes four to seven times N (``BytesParser.parsebytes`` and ``get_payload(decode=True)``
alone take ten). :func:`parse_headers` reads the header alone.
"""

from __future__ import annotations

import binascii
import codecs
import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.feedparser import BytesFeedParser
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import formataddr, getaddresses, parsedate_to_datetime
from typing import Any

from functions.mail.htmltext import html_to_text

__all__ = [
    "HTML_CHARS",
    "TEXT_CHARS",
    "Attachment",
    "Headers",
    "NotAnEmail",
    "ParsedMail",
    "parse_headers",
    "parse_message",
]

_MSG_ID = re.compile(r"<[^<>\s]+>")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")
# The schemas' limits: longer values are cut.
HEADER_CHARS, SUBJECT_CHARS, MAX_ADDRESSES = 998, 4096, 1000
TEXT_CHARS, HTML_CHARS = 10_000_000, 20_000_000
_CHUNK = 1024 * 1024  # bytes fed to the parser, or decoded, at a time
_HEADER_BYTES = 1024 * 1024  # a header longer than this is cut
_HEADER_END = re.compile(rb"\r?\n\r?\n")


class NotAnEmail(ValueError):
    """The bytes are not an RFC 822 message."""


@dataclass(frozen=True)
class Attachment:
    filename: str  # as given in the message; "" where it gives none
    content_type: str
    content: bytes
    inline: bool = False  # shown within the message (an image of an HTML body), not a file


@dataclass(frozen=True)
class Headers:
    """What the header of a message says."""

    message_id: str | None
    sender: str  # the From header, decoded
    to: list[str]
    cc: list[str]
    subject: str
    date: datetime | None
    in_reply_to: str | None
    references: list[str]
    multipart_mixed: bool  # a hint of attachments when only the header was read

    @property
    def thread_id(self) -> str | None:
        """The conversation's first message: the oldest reference, else the message
        replied to, else this message itself."""
        return self.references[0] if self.references else self.in_reply_to or self.message_id


@dataclass(frozen=True)
class ParsedMail(Headers):
    """The header, the bodies (cut to ``TEXT_CHARS``, ``HTML_CHARS``) and the attachments."""

    text_body: str
    html_body: str | None
    attachments: list[Attachment]

    def snippet(self, chars: int = 200) -> str:
        """The start of the text body on one line."""
        text = " ".join(self.text_body.split())
        return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def parse_headers(raw: bytes) -> Headers:
    """The header of ``raw`` (the message, or its header alone), the body left unread;
    :class:`NotAnEmail` if it has no header."""
    found = _HEADER_END.search(raw, 0, _HEADER_BYTES)
    head = raw[: found.end() if found else _HEADER_BYTES]
    return _headers(BytesHeaderParser(policy=policy.default).parsebytes(head))


def parse_message(raw: bytes) -> ParsedMail:
    """Headers, bodies and attachments of ``raw``; :class:`NotAnEmail` if it has no header."""
    parser = BytesFeedParser(policy=policy.default)
    for start in range(0, len(raw), _CHUNK):  # parsebytes would copy all of it, as str
        parser.feed(raw[start : start + _CHUNK])
    msg: Any = parser.close()
    head = _headers(msg)
    plain: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for part in _leaves(msg):
        kind, disposition, filename = _content_type(part), _disposition(part), _filename(part)
        body = disposition != "attachment" and not filename
        if body and plain is None and kind in ("text/plain", "broken/multipart"):
            plain = _text(part, TEXT_CHARS)
        elif body and html is None and kind == "text/html":
            html = _text(part, HTML_CHARS)
        else:
            file = disposition == "attachment" or (bool(filename) and disposition != "inline")
            attachments.append(Attachment(filename, _attachment_type(kind), _content(part),
                                          inline=not file))  # fmt: skip
    if plain is None or (not plain.strip() and html):
        text = html_to_text(html[:TEXT_CHARS])[:TEXT_CHARS] if html else (plain or "")
    else:
        text = plain
    return ParsedMail(**vars(head), text_body=text, html_body=html, attachments=attachments)


def _headers(msg: EmailMessage) -> Headers:
    if not msg.keys():
        raise NotAnEmail("no header fields: the bytes are not an RFC 822 message")
    return Headers(
        message_id=_first_id(_header(msg, "message-id")),
        sender=_header(msg, "from")[:HEADER_CHARS],
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        subject=_header(msg, "subject")[:SUBJECT_CHARS],
        date=_date(msg),
        in_reply_to=_first_id(_header(msg, "in-reply-to")),
        references=[r[:HEADER_CHARS] for r in _MSG_ID.findall(_header(msg, "references"))],
        multipart_mixed=msg.get_content_type() == "multipart/mixed",
    )


def _leaves(part: Message) -> list[Message]:
    """The parts that hold content, in order; a message/rfc822 part is one leaf."""
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        payload: Any = part.get_payload()
        return [leaf for sub in payload for leaf in _leaves(sub)]
    return [part]


def _content_type(part: Message) -> str:
    kind = part.get_content_type()
    if kind.startswith("multipart/"):  # a multipart the parser could not split
        return "broken/multipart"
    return kind


def _attachment_type(kind: str) -> str:
    if kind == "broken/multipart":
        return "text/plain"
    return kind if _CONTENT_TYPE.match(kind) and len(kind) <= 255 else "application/octet-stream"


def _disposition(part: Message) -> str | None:
    with contextlib.suppress(Exception):
        return part.get_content_disposition()
    return None


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 — a broken parameter: no name
        return ""
    return _clean(str(name))[:1024] if name else ""


def _content(part: Message) -> bytes:
    """The decoded bytes of a leaf (a message/rfc822 part: the message as bytes)."""
    if part.is_multipart():
        payload: Any = part.get_payload()
        try:
            return b"".join(bytes(sub) for sub in payload)
        except Exception:  # noqa: BLE001 — a message that cannot be written back
            return b"".join(sub.as_string().encode("utf-8", "replace") for sub in payload)
    # What get_payload(decode=True) gives, without its copies: it tries the payload as
    # UTF-8 first (three times its size for 8-bit text), and splits base64 into lines
    # and joins them again before decoding.
    payload = part._payload  # type: ignore[attr-defined]  # get_payload() copies it too
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if isinstance(payload, str) and encoding in ("", "7bit", "8bit", "binary", "base64",
                                                 "quoted-printable"):  # fmt: skip
        with contextlib.suppress(UnicodeEncodeError):  # else as the standard library does
            data = payload.encode("ascii", "surrogateescape")  # the bytes as they came
            if encoding == "base64":
                return _base64(data)
            return binascii.a2b_qp(data) if encoding == "quoted-printable" else data
    try:
        decoded = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 — a transfer encoding beyond repair: no content
        decoded = None
    return decoded if isinstance(decoded, bytes) else b""


def _base64(data: bytes) -> bytes:
    """Base64 decoded, characters outside its alphabet (line breaks) skipped; padding
    missing at the end is made up for (extra padding is ignored), a length beyond repair
    leaves the bytes as they are (as the standard library does)."""
    for padding in (b"", b"=="):
        with contextlib.suppress(binascii.Error):
            return binascii.a2b_base64(data + padding)
    return data


def _text(part: Message, limit: int) -> str:
    """A text part as str, in its charset, its first ``limit`` characters; unknown or
    wrong charsets read leniently."""
    data = _content(part)
    charset = str(part.get_content_charset() or "utf-8")
    for attempt in (charset, "utf-8"):
        try:
            return _decode(data, attempt, "strict", limit)
        except (LookupError, ValueError):  # no such codec; bytes not of it; a NUL in its name
            continue
    return _decode(data, "cp1252", "replace", limit)


def _decode(data: bytes, charset: str, errors: str, limit: int) -> str:
    """``data`` decoded a piece at a time until ``limit`` characters, with LF line ends
    and without NUL (JSON allows it, PostgreSQL's jsonb does not)."""
    codec = codecs.lookup(charset)  # LookupError: no such codec; ValueError: a NUL in its name
    if not getattr(codec, "_is_text_encoding", True) or codec.incrementaldecoder is None:
        raise LookupError(f"{charset!r} is not a text encoding")  # zlib_codec, rot13…
    decoder = codec.incrementaldecoder(errors)
    pieces: list[str] = []
    size, carry = 0, ""
    for start in range(0, len(data), _CHUNK):
        last = start + _CHUNK >= len(data)
        piece = carry + decoder.decode(data[start : start + _CHUNK], final=last)
        carry = ""
        if piece.endswith("\r") and not last:  # maybe the first half of a CRLF
            piece, carry = piece[:-1], "\r"
        piece = piece.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        pieces.append(piece[: limit - size])  # cut here: no third copy of a long text
        size += len(piece)
        if size >= limit:
            break
    return "".join(pieces)


def _clean(text: str) -> str:
    """One line, without the surrogates the parser uses for undecodable bytes, or NULs."""
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return " ".join(text.split())


def _header(msg: EmailMessage, name: str) -> str:
    """A header, decoded ("" where absent); one that does not parse is decoded by hand."""
    try:
        value = msg.get(name)
        return _clean(str(value)) if value is not None else ""
    except Exception:  # noqa: BLE001 — fall back to the raw header below
        pass
    for key, raw in msg.raw_items():
        if key.lower() == name:
            try:
                return _clean(str(make_header(decode_header(str(raw)))))
            except Exception:  # noqa: BLE001 — an encoded word that does not decode
                return _clean(str(raw))
    return ""


def _addresses(msg: EmailMessage, name: str) -> list[str]:
    """The addresses of every ``name`` header, as ``Name <addr>`` or ``addr``."""
    found: list[str] = []
    try:
        for header in msg.get_all(name) or ():
            for address in getattr(header, "addresses", ()):
                if text := _clean(str(address)):
                    found.append(text)
    except Exception:  # noqa: BLE001 — read the decoded text instead
        found = [_clean(formataddr(pair)) for pair in getaddresses([_header(msg, name)])
                 if pair[1]]  # fmt: skip
    return [a[:HEADER_CHARS] for a in found if a][:MAX_ADDRESSES]


def _date(msg: EmailMessage) -> datetime | None:
    moment: datetime | None = None
    try:
        header = msg.get("date")
        moment = getattr(header, "datetime", None)
    except Exception:  # noqa: BLE001 — try the plain parser below
        moment = None
    if moment is None:
        with contextlib.suppress(Exception):
            moment = parsedate_to_datetime(_header(msg, "date"))
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _first_id(value: str) -> str | None:
    """The first ``<id>`` of a header, else its text; cut to a header's longest line."""
    found = _MSG_ID.search(value)
    return (found.group(0) if found else value.strip())[:HEADER_CHARS] or None
