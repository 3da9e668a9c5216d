"""The IMAP commands the mail fetcher uses, over ``imapclient`` (blocking: call each
method in a thread).

Mailboxes are opened read-only (EXAMINE) and bodies read with ``BODY.PEEK[]``, so
fetching changes nothing on the server: no message becomes \\Seen.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from datetime import UTC, date, datetime

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from functions.mail.settings import ImapAccount

__all__ = ["ImapSession", "MailboxMissing", "MessageInfo"]


class MailboxMissing(Exception):
    """A mailbox of the account cannot be opened (it does not exist, say)."""


@dataclass(frozen=True)
class MessageInfo:
    """What is known of a message before its body is read."""

    uid: int
    size: int  # RFC822.SIZE
    flags: tuple[str, ...]
    received_at: datetime  # INTERNALDATE, in UTC


class ImapSession:
    """One logged-in connection to one account."""

    def __init__(self, account: ImapAccount, connect_timeout: float, read_timeout: float) -> None:
        self.account = account
        self._timeout = SocketTimeout(connect=connect_timeout, read=read_timeout)
        self._client: IMAPClient | None = None

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise RuntimeError("the IMAP session is not open")
        return self._client

    def open(self) -> None:
        account = self.account
        context = ssl.create_default_context()
        client = IMAPClient(account.host, port=account.imap_port, ssl=account.security == "ssl",
                            ssl_context=context, timeout=self._timeout)  # fmt: skip
        try:
            client.normalise_times = False  # INTERNALDATE with its offset, not local time
            # imapclient sets imaplib's debug level to 5, at which imaplib writes every
            # answer as text for its logger, whole messages too, whether or not anything
            # logs it: three times a message's size in memory, and its text at DEBUG.
            client._imap.debug = 0
            if account.security == "starttls":
                client.starttls(context)
            client.login(account.username, account.password.get_secret_value())
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 — gone already: just drop the socket
            with contextlib.suppress(Exception):
                client.shutdown()

    def examine(self, mailbox: str) -> int:
        """Open ``mailbox`` read-only; returns its UIDVALIDITY."""
        try:
            status = self.client.select_folder(mailbox, readonly=True)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            raise MailboxMissing(f"mailbox {mailbox!r}: {exc}") from None
        return int(status[b"UIDVALIDITY"])

    def uids_after(self, uid: int) -> list[int]:
        """UIDs above ``uid``, ascending (``n:*`` also matches the last message when no
        UID is as high as ``n``: that one is left out)."""
        found = self.client.search(["UID", f"{uid + 1}:*"])
        return sorted(u for u in found if u > uid)

    def newest_uids(self, since: date | None, limit: int) -> tuple[list[int], int]:
        """The UIDs a first read takes (received since ``since``, the newest ``limit``;
        0: any number), and the highest UID in the mailbox (0 when empty)."""
        every = self.client.search("ALL")
        chosen = sorted(self.client.search(["SINCE", since]) if since else every)
        if limit:
            chosen = chosen[-limit:]
        return chosen, max(every, default=0)

    def info(self, uids: list[int]) -> list[MessageInfo]:
        """Size, flags and arrival of ``uids`` (those still there), by UID."""
        found = self.client.fetch(uids, ["FLAGS", "INTERNALDATE", "RFC822.SIZE"])
        infos = []
        for uid, item in sorted(found.items()):
            received = item.get(b"INTERNALDATE")
            if not isinstance(received, datetime):
                received = datetime.now(UTC)
            elif received.tzinfo is None:
                received = received.replace(tzinfo=UTC)
            flags = tuple(dict.fromkeys(_text(f) for f in item.get(b"FLAGS", ())))
            infos.append(MessageInfo(int(uid), int(item.get(b"RFC822.SIZE", 0)), flags,
                                     received.astimezone(UTC)))  # fmt: skip
        return infos

    def bodies(self, uids: list[int], *, headers_only: bool = False) -> dict[int, bytes]:
        """The RFC 822 bytes (or only the header) of ``uids``, leaving them unseen."""
        if not uids:
            return {}
        part = "BODY.PEEK[HEADER]" if headers_only else "BODY.PEEK[]"
        answer = "BODY[HEADER]" if headers_only else "BODY[]"
        found = self.client.fetch(uids, [part])
        return {int(uid): bytes(item[answer.encode()]) for uid, item in found.items()
                if isinstance(item.get(answer.encode()), bytes)}  # fmt: skip


def _text(flag: bytes | str) -> str:
    return flag.decode("utf-8", "replace") if isinstance(flag, bytes) else str(flag)
