"""``mail`` fetcher: new messages of IMAP mailboxes, read without marking them read.

Per message two events, with ids that follow from (account, mailbox, UIDVALIDITY, UID):

- ``external.email.events.raw``: what a mail list shows (from, to, subject, flags, a
  snippet, whether it has attachments, when it arrived): small, searchable;
- ``external.email.raw``: the message's RFC 822 bytes, inline (base64) up to
  ``LOOM_MAIL_INLINE_MAX_BYTES``, else in the blob store (``LOOM_STORE_BLOB_URL``) with a
  reference; ``derived_from`` names the first event. The ``mail`` function parses it.

Each mailbox is read by UID from where the cursor stopped (``{"mailboxes": {name:
{"uidvalidity": …, "uid": …}}}``). When the server's UIDVALIDITY of a mailbox changes
(its UIDs were renumbered) that mailbox starts over, and since the ids include the
UIDVALIDITY, the renumbered messages are new events. The first read of a mailbox takes
the last ``LOOM_MAIL_INITIAL_DAYS`` days, at most the newest
``LOOM_MAIL_INITIAL_MAX_MESSAGES``; older messages are left alone for good.

No message can stop a mailbox: the envelope's fields come from the header alone, the
snippet and ``has_attachments`` from the first ``PREVIEW_BYTES`` of the message, and
where either does not parse (parts nested a thousand deep, say) the fields stay empty,
the failure is logged (``mail.unparsable``, without the message's text) and both events
go out as ever; the ``mail`` function dead-letters what it cannot parse.

Memory: messages up to the inline size are fetched together, larger ones one at a time,
each let go once it is in the blob store; no body is parsed whole. A run holds one big
message, a batch's small ones (``LOOM_MAIL_BATCH_SIZE`` of at most
``LOOM_MAIL_INLINE_MAX_BYTES``) and the parse of one preview.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.mail.imap import ImapSession, MailboxMissing, MessageInfo
from functions.mail.parse import NotAnEmail, parse_headers, parse_message
from functions.mail.settings import ImapAccount, MailSettings
from loom.runtime.event import Event
from loom.runtime.fetcher import Batch, FetchContext, fetcher
from loom.settings import settings_for
from loom.store.blobs import BlobStore, open_blob_store
from loom.store.settings import StoreSettings

__all__ = ["ENVELOPE", "PREVIEW_BYTES", "RAW", "fetch"]

ENVELOPE = "external.email.events.raw"
RAW = "external.email.raw"
PREVIEW_BYTES = 256 * 1024  # the snippet and has_attachments are read from this much


@fetcher(produces=[ENVELOPE, RAW], settings=MailSettings)
async def fetch(
    account: ImapAccount, cursor: dict[str, Any], ctx: FetchContext
) -> AsyncIterator[Batch]:
    """New messages of IMAP mailboxes, by UID, without marking them read."""
    config: MailSettings = ctx.settings
    marks: dict[str, dict[str, int]] = {
        name: dict(mark) for name, mark in dict(cursor.get("mailboxes", {})).items()
    }
    session = ImapSession(account, config.mail_connect_timeout_seconds,
                          config.mail_read_timeout_seconds)  # fmt: skip
    blobs = _Blobs(config)
    missing = []
    await asyncio.to_thread(session.open)
    try:
        for mailbox in account.mailboxes:
            try:
                uidvalidity = await asyncio.to_thread(session.examine, mailbox)
            except MailboxMissing as exc:  # the other mailboxes go on
                ctx.log.warning("mail.mailbox_missing", mailbox=mailbox, error=str(exc))
                missing.append(str(exc))
                continue
            reader = _Mailbox(session, mailbox, uidvalidity, marks, ctx, blobs)
            async for batch in reader.batches():
                yield batch
    finally:
        await asyncio.to_thread(session.close)
    if missing:
        raise MailboxMissing("; ".join(missing))


class _Mailbox:
    """One mailbox of one run: which UIDs are new, read in batches."""

    def __init__(
        self,
        session: ImapSession,
        name: str,
        uidvalidity: int,
        marks: dict[str, dict[str, int]],
        ctx: FetchContext,
        blobs: _Blobs,
    ) -> None:
        self.session, self.name, self.uidvalidity = session, name, uidvalidity
        self.marks, self.ctx, self.blobs = marks, ctx, blobs
        self.config: MailSettings = ctx.settings

    def _mark(self, uid: int) -> Batch | None:
        """Move this mailbox's cursor to ``uid``; a batch of no events if it moved."""
        mark = {"uidvalidity": self.uidvalidity, "uid": uid}
        if self.marks.get(self.name) == mark:
            return None
        self.marks[self.name] = mark
        return Batch([], self._cursor())

    def _cursor(self) -> dict[str, Any]:
        return {"mailboxes": {name: dict(mark) for name, mark in self.marks.items()}}

    async def _new_uids(self) -> tuple[list[int], int]:
        config, log = self.config, self.ctx.log
        known = self.marks.get(self.name)
        if known is not None and known.get("uidvalidity") == self.uidvalidity:
            uids = await asyncio.to_thread(self.session.uids_after, known["uid"])
            return uids, max(uids, default=known["uid"])
        if known is not None:
            log.info("mail.uidvalidity_changed", mailbox=self.name, was=known.get("uidvalidity"),
                     now=self.uidvalidity)  # fmt: skip
        days = config.mail_initial_days
        since = (self.ctx.now - timedelta(days=days)).date() if days else None
        uids, top = await asyncio.to_thread(self.session.newest_uids, since,
                                            config.mail_initial_max_messages)  # fmt: skip
        log.info("mail.first_read", mailbox=self.name, messages=len(uids), in_mailbox_up_to=top)
        return uids, top

    async def batches(self) -> AsyncIterator[Batch]:
        uids, top = await self._new_uids()
        size = self.config.mail_batch_size
        for start in range(0, len(uids), size):
            chunk = uids[start : start + size]
            infos = await asyncio.to_thread(self.session.info, chunk)
            for group in _by_bytes(infos, self.config):
                events = await asyncio.to_thread(self._read, group)
                self.marks[self.name] = {"uidvalidity": self.uidvalidity, "uid": group[-1].uid}
                yield Batch(events, self._cursor())
        done = self._mark(max([top, *uids[-1:]]))  # also past messages gone meanwhile
        if done is not None:
            yield done

    def _read(self, group: list[MessageInfo]) -> list[Event]:
        """``group``'s events: messages up to the inline size fetched together, larger
        ones one at a time (each let go once stored), of those too big only the header."""
        limit, inline = self.config.mail_max_message_bytes, self.config.mail_inline_max_bytes
        small = self.session.bodies([i.uid for i in group if i.size <= min(inline, limit)])
        heads = self.session.bodies([i.uid for i in group if i.size > limit], headers_only=True)
        events: list[Event] = []
        for info in group:
            if info.size > limit:
                if info.uid in heads:
                    self.ctx.log.warning("mail.too_big", mailbox=self.name, uid=info.uid,
                                         size_bytes=info.size, limit_bytes=limit)  # fmt: skip
                    events += self._events(info, heads.pop(info.uid), complete=False)
                continue
            events += self._whole(info, small)
        return events

    def _whole(self, info: MessageInfo, small: dict[int, bytes]) -> list[Event]:
        """The events of a message read whole: from ``small``, else fetched alone (and
        let go on return, before the next one is fetched); none if it is gone meanwhile."""
        if info.size <= self.config.mail_inline_max_bytes:
            raw = small.pop(info.uid, None)
        else:
            raw = self.session.bodies([info.uid]).get(info.uid)
        return [] if raw is None else self._events(info, raw, complete=True)

    def _events(self, info: MessageInfo, raw: bytes, *, complete: bool) -> list[Event]:
        ctx, key = self.ctx, f"{self.name}|{self.uidvalidity}|{info.uid}"
        stamp = _iso(info.received_at)
        envelope = self._envelope(info, raw, complete) | {
            "schema_version": "1.0", "timestamp": stamp, "account": ctx.account,
            "mailbox": self.name, "uid_validity": self.uidvalidity, "message_uid": info.uid,
            "received_at": stamp, "flags": [f for f in info.flags if f][:100],
        }  # fmt: skip
        first = ctx.event(ENVELOPE, envelope, key=key, time=info.received_at)
        if not complete:
            return [first]
        data: dict[str, Any] = {
            "schema_version": "1.0", "timestamp": stamp, "account": ctx.account,
            "derived_from": {"type": ENVELOPE, "source": first.source, "id": first.id},
            "mailbox": self.name, "message_uid": info.uid, "size_bytes": len(raw),
        }  # fmt: skip
        if len(raw) <= self.config.mail_inline_max_bytes:
            data["raw_base64"] = base64.b64encode(raw).decode("ascii")
        else:
            data["raw"] = self.blobs.put(raw, "message/rfc822")
        return [first, ctx.event(RAW, data, key=key, time=info.received_at)]

    def _envelope(self, info: MessageInfo, raw: bytes, complete: bool) -> dict[str, Any]:
        """The header fields of external.email.events.raw, from the header alone; the
        snippet and has_attachments from the message's first ``PREVIEW_BYTES`` (with
        ``complete`` false ``raw`` is the header only: a multipart/mixed message most
        likely has attachments). Empty where the bytes are no email or do not parse."""
        fields: dict[str, Any] = {"from": "", "to": [], "cc": [], "subject": "",
                                  "has_attachments": False}  # fmt: skip
        try:
            head = parse_headers(raw)
        except NotAnEmail:
            return fields
        except Exception as exc:  # noqa: BLE001 — a header beyond the parser: empty fields
            self._unparsable(info, "header", exc)
            return fields
        fields |= {"from": head.sender, "to": head.to, "cc": head.cc, "subject": head.subject,
                   "has_attachments": head.multipart_mixed}  # fmt: skip
        if head.message_id:
            fields["message_id_header"] = head.message_id
        if not complete:
            return fields
        try:
            preview = parse_message(raw[:PREVIEW_BYTES])
        except Exception as exc:  # noqa: BLE001 — no snippet; the function dead-letters it
            self._unparsable(info, "body", exc)
            fields["snippet"] = ""
            return fields
        fields["snippet"] = preview.snippet()
        cut = len(raw) > PREVIEW_BYTES and head.multipart_mixed  # the rest may hold some
        fields["has_attachments"] = cut or any(not a.inline for a in preview.attachments)
        return fields

    def _unparsable(self, info: MessageInfo, part: str, exc: Exception) -> None:
        """Log a message whose ``part`` does not parse: where it is and why, not its text."""
        self.ctx.log.warning("mail.unparsable", mailbox=self.name, uid=info.uid, part=part,
                             size_bytes=info.size, error=type(exc).__name__,
                             reason=str(exc)[:200])  # fmt: skip


def _by_bytes(infos: list[MessageInfo], config: MailSettings) -> Iterator[list[MessageInfo]]:
    """``infos`` in runs of at most ``LOOM_MAIL_BATCH_MAX_BYTES`` (one message at least)."""
    group: list[MessageInfo] = []
    total = 0
    for info in infos:
        size = info.size if info.size <= config.mail_max_message_bytes else 0
        if group and total + size > config.mail_batch_max_bytes:
            yield group
            group, total = [], 0
        group.append(info)
        total += size
    if group:
        yield group


class _Blobs:
    """The blob store of LOOM_STORE_BLOB_URL, opened when a message first needs it."""

    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings
        self._store: BlobStore | None = None

    def put(self, content: bytes, content_type: str) -> dict[str, Any]:
        if self._store is None:
            where = settings_for(StoreSettings, self._settings)
            self._store = open_blob_store(where.store_blob_url, where.store_s3_endpoint_url)
        return self._store.put(content, content_type).as_json()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
