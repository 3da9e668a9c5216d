"""The mail fetcher against a real IMAP server: each message once, new ones alone, nothing
marked read, renumbered mailboxes start over, a wrong password backs off unquoted, no
message stops a mailbox, big ones are stored without being parsed."""

from __future__ import annotations

import base64
import hashlib
import logging
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import structlog

from functions.mail.fetcher import ENVELOPE, RAW, fetch
from functions.mail.settings import ImapAccount, MailSettings
from loom.kafka.producer import KafkaUnavailable
from loom.runtime.event import Event
from loom.testing import FetcherHarness
from tests.functions.mail.conftest import ImapServer
from tests.functions.mail.messages import nested, plain, sized, with_file, with_pdf


@pytest.fixture(autouse=True)
def blob_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Big messages go to a blob store in a temporary directory."""
    where = tmp_path / "blobs"
    monkeypatch.setenv("LOOM_STORE_BLOB_URL", where.as_uri())
    return where


def stored(uri: str) -> bytes:
    return Path(urlparse(uri).path).read_bytes()


def harness(*accounts: ImapAccount, **settings: Any) -> FetcherHarness:
    return FetcherHarness(fetch, settings=MailSettings(mail_accounts=list(accounts), **settings))


def of(events: list[Event], type_: str) -> list[Event]:
    return [e for e in events if e.type == type_]


def subjects(events: list[Event]) -> list[str]:
    return [e.data["subject"] for e in of(events, ENVELOPE)]


async def test_each_message_once_then_only_new_ones(imap: ImapServer) -> None:
    box = imap.mailbox()
    uids = [imap.append(box, plain(f"message {n}")) for n in range(5)]
    h = harness(imap.account(box), mail_batch_size=2)
    (report,) = await h.run()
    assert (report.status, report.emitted, report.batches) == ("ok", 10, 3)
    assert subjects(h.events) == [f"message {n}" for n in range(5)]
    assert [e.data["message_uid"] for e in of(h.events, RAW)] == uids
    assert len({e.id for e in h.events}) == 10

    (again,) = await h.run()
    assert (again.status, again.emitted) == ("ok", 0)

    newest = imap.append(box, plain("message 5"))
    (third,) = await h.run()
    assert third.emitted == 2
    assert subjects(h.events[10:]) == ["message 5"]
    row = await h.cursors.get("mail", f"ada@{imap.host}")
    uidvalidity = h.events[0].data["uid_validity"]
    assert row.cursor == {"mailboxes": {box: {"uidvalidity": uidvalidity, "uid": newest}}}


async def test_the_events_carry_the_envelope_and_the_bytes(imap: ImapServer) -> None:
    box = imap.mailbox()
    raw = with_pdf()
    uid = imap.append(box, raw)
    h = harness(imap.account(box, name="work"))
    await h.run()
    (envelope,) = of(h.events, ENVELOPE)
    (message,) = of(h.events, RAW)
    data = envelope.data
    assert (data["account"], data["mailbox"], data["message_uid"]) == ("work", box, uid)
    assert data["from"] == "Grace Hopper <grace@example.com>"
    assert (data["to"], data["cc"]) == (["ada@example.com"], ["Team <team@example.com>"])
    assert data["subject"] == "slides"
    assert data["has_attachments"] is True
    assert data["snippet"].startswith("Looks good to me, one comment on slide 4.")
    assert data["message_id_header"].endswith("@example.com>")
    assert data["uid_validity"] >= 1
    assert base64.b64decode(message.data["raw_base64"]) == raw
    assert message.data["size_bytes"] == len(raw)
    assert message.data["derived_from"] == {"type": ENVELOPE, "source": envelope.source,
                                            "id": envelope.id}  # fmt: skip
    assert envelope.source == "/loom/fetchers/mail"
    assert envelope.time == message.time
    assert abs(envelope.time - datetime.now(UTC)) < timedelta(minutes=5)  # INTERNALDATE


async def test_fetching_leaves_messages_unseen(imap: ImapServer) -> None:
    box = imap.mailbox()
    for n in range(3):
        imap.append(box, plain(f"unread {n}"))
    h = harness(imap.account(box))
    (report,) = await h.run()
    assert report.emitted == 6
    assert all(b"\\Seen" not in flags for flags in imap.flags(box).values())
    assert all("\\Seen" not in e.data["flags"] for e in of(h.events, ENVELOPE))


async def test_the_same_messages_make_the_same_ids(imap: ImapServer) -> None:
    box = imap.mailbox()
    imap.append(box, plain())
    first, second = harness(imap.account(box)), harness(imap.account(box))
    await first.run()
    await second.run()  # another run from no cursor: a crash before the cursor was saved
    assert [e.id for e in first.events] == [e.id for e in second.events]


async def test_a_batch_kafka_refuses_is_fetched_again(imap: ImapServer) -> None:
    box = imap.mailbox()
    for n in range(3):
        imap.append(box, plain(f"m{n}"))
    h = harness(imap.account(box))
    h.sink_error = KafkaUnavailable("broker down")
    (failed,) = await h.run()
    assert (failed.status, failed.emitted) == ("failed", 0)
    (retried,) = await h.run(force=True)
    assert (retried.status, retried.emitted) == ("ok", 6)
    assert subjects(h.events) == ["m0", "m1", "m2"]


async def test_the_first_run_takes_only_recent_messages(imap: ImapServer) -> None:
    box = imap.mailbox()
    imap.append(box, plain("last season"), when=datetime.now(UTC) - timedelta(days=90))
    for n in range(3):
        imap.append(box, plain(f"recent {n}"))
    h = harness(imap.account(box), mail_initial_days=30, mail_initial_max_messages=2)
    await h.run()
    assert subjects(h.events) == ["recent 1", "recent 2"]
    imap.append(box, plain("new"), when=datetime.now(UTC) - timedelta(days=365))
    await h.run()
    assert subjects(h.events) == ["recent 1", "recent 2", "new"]  # new by UID, whatever its date


async def test_an_empty_first_run_still_marks_where_it_stopped(imap: ImapServer) -> None:
    box = imap.mailbox()
    imap.append(box, plain("too old"), when=datetime.now(UTC) - timedelta(days=90))
    h = harness(imap.account(box), mail_initial_days=7)
    (report,) = await h.run()
    assert (report.status, report.emitted) == ("ok", 0)
    imap.append(box, plain("fresh"))
    await h.run()
    assert subjects(h.events) == ["fresh"]


async def test_a_renumbered_mailbox_starts_over(imap: ImapServer) -> None:
    box = imap.mailbox()
    imap.append(box, plain("before"))
    h = harness(imap.account(box))
    await h.run()
    (before,) = of(h.events, ENVELOPE)
    with imap.client() as client:  # the server renumbers: a new UIDVALIDITY
        client.delete_folder(box)
        client.create_folder(box)
    imap.append(box, plain("before"))
    imap.append(box, plain("after"))
    (report,) = await h.run()
    assert report.emitted == 4
    assert subjects(h.events) == ["before", "before", "after"]
    again = of(h.events, ENVELOPE)[1]
    assert again.data["message_uid"] == before.data["message_uid"]
    assert again.data["uid_validity"] != before.data["uid_validity"]
    assert again.id != before.id  # the old UID of another epoch is another event


async def test_a_big_message_travels_as_a_blob(imap: ImapServer, blob_dir: Path) -> None:
    box = imap.mailbox()
    raw = sized(20_000)
    imap.append(box, raw)
    h = harness(imap.account(box), mail_inline_max_bytes=4096)
    await h.run()
    (message,) = of(h.events, RAW)
    ref = message.data["raw"]
    assert "raw_base64" not in message.data
    assert (ref["sha256"], ref["size_bytes"]) == (hashlib.sha256(raw).hexdigest(), len(raw))
    assert ref["content_type"] == "message/rfc822"
    assert ref["uri"].startswith(blob_dir.as_uri())
    assert stored(ref["uri"]) == raw


async def test_a_message_over_the_limit_is_only_announced(imap: ImapServer) -> None:
    box = imap.mailbox()
    imap.append(box, sized(8_000, subject="huge"))
    imap.append(box, plain("small"))
    h = harness(imap.account(box), mail_max_message_bytes=4096)
    (report,) = await h.run()
    assert report.emitted == 3
    assert subjects(h.events) == ["huge", "small"]
    assert [e.data["message_uid"] for e in of(h.events, RAW)] == [
        of(h.events, ENVELOPE)[1].data["message_uid"]
    ]


async def test_a_message_the_parser_gives_up_on_stops_nothing(imap: ImapServer) -> None:
    """Anyone can mail a message nested deeper than the parser follows: its envelope says
    what its header says, its bytes still go out (the function dead-letters them), the
    failure is logged without the text, and the mailbox goes on past it."""
    box = imap.mailbox()
    imap.append(box, plain("before"))
    raw = nested()
    uid = imap.append(box, raw)
    imap.append(box, plain("after"))
    h = harness(imap.account(box))
    with structlog.testing.capture_logs() as logs:
        (report,) = await h.run()
    assert (report.status, report.emitted) == ("ok", 6)
    assert subjects(h.events) == ["before", "deep", "after"]
    odd = of(h.events, ENVELOPE)[1].data
    assert (odd["message_uid"], odd["from"], odd["to"]) == (uid, "mallory@example.com",
                                                            ["ada@example.com"])  # fmt: skip
    assert (odd["snippet"], odd["has_attachments"]) == ("", True)  # multipart/mixed
    message = of(h.events, RAW)[1]
    assert base64.b64decode(message.data["raw_base64"]) == raw
    (logged,) = [entry for entry in logs if entry["event"] == "mail.unparsable"]
    assert (logged["mailbox"], logged["uid"], logged["error"]) == (box, uid, "RecursionError")
    assert "hidden text" not in repr(logged)
    (again,) = await h.run()
    assert (again.status, again.emitted) == ("ok", 0)


async def test_a_big_message_is_stored_not_parsed(imap: ImapServer) -> None:
    """Of a big message the fetcher parses the header and a preview (the snippet) and
    stores the bytes: it holds about one copy of them at a time, not a parse of them."""
    box = imap.mailbox()
    raw = with_file(8 * 1024 * 1024)
    size = len(raw)
    imap.append(box, raw)
    imap.append(box, with_file(8 * 1024 * 1024 + 1, subject="more data"))
    h = harness(imap.account(box))
    tracemalloc.start()
    try:
        (report,) = await h.run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (report.status, report.emitted) == ("ok", 4)
    first, second = (e.data for e in of(h.events, ENVELOPE))
    assert (first["subject"], first["snippet"], first["has_attachments"]) == (
        "the data", "Here is the file.", True)  # fmt: skip
    assert second["subject"] == "more data"
    assert stored(of(h.events, RAW)[0].data["raw"]["uri"]) == raw
    assert peak < 2 * size, f"{peak / size:.1f} times the message's size"


async def test_a_missing_mailbox_fails_the_account_but_not_the_others(imap: ImapServer) -> None:
    box = imap.mailbox()
    imap.append(box, plain("here"))
    h = harness(imap.account(box, "NoSuchBox"))
    (report,) = await h.run()
    assert report.status == "failed"
    assert report.error is not None
    assert "NoSuchBox" in report.error
    assert subjects(h.events) == ["here"]


async def test_a_wrong_password_fails_backs_off_and_is_never_shown(
    imap: ImapServer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-Tr0ub4dor&3"
    h = harness(imap.account("INBOX", password=secret))
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        (report,) = await h.run()
    assert report.status == "failed"
    assert report.error is not None
    assert "LoginError" in report.error
    assert secret not in report.error
    assert report.next_attempt_at is not None
    assert report.next_attempt_at > datetime.now(UTC)
    assert any(entry["event"] == "fetch.failed" for entry in logs)
    assert secret not in repr(logs)
    assert secret not in caplog.text
    row = await h.cursors.get("mail", f"ada@{imap.host}")
    assert (row.failures, row.last_error) == (1, report.error)
    assert h.events == []
    (waiting,) = await h.run()
    assert waiting.status == "backing off"


def test_accounts_come_from_one_json_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from loom.errors import ConfigError
    from loom.settings import load_settings

    monkeypatch.setenv("LOOM_MAIL_ACCOUNTS", '[{"host": "imap.example.com", "username": "ada",'
                       ' "password": "pw-1234", "mailboxes": ["INBOX", "Sent"]}]')  # fmt: skip
    (account,) = load_settings(MailSettings).accounts
    assert (account.key, account.imap_port, account.mailboxes) == (
        "ada@imap.example.com", 993, ["INBOX", "Sent"])  # fmt: skip
    assert "pw-1234" not in repr(account)
    monkeypatch.setenv(
        "LOOM_MAIL_ACCOUNTS", '[{"host": "imap.example.com", "password": "pw-1234"}]'
    )
    with pytest.raises(ConfigError) as info:
        load_settings(MailSettings)
    assert "username" in str(info.value)
    assert "pw-1234" not in str(info.value)
