"""Settings of the ``mail`` fetcher and function (``LOOM_MAIL_*`` besides the shared ``LOOM_*``).

Accounts are one JSON list in ``LOOM_MAIL_ACCOUNTS``::

    LOOM_MAIL_ACCOUNTS='[{"name": "work", "host": "imap.fastmail.com",
                          "username": "ada@fastmail.com", "password": "app-password",
                          "mailboxes": ["INBOX", "Sent"]}]'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from loom.settings import LoomSettings, settings_for

__all__ = ["ImapAccount", "MailSettings", "mail_settings"]


class ImapAccount(BaseModel):
    """One IMAP login and the mailboxes of it that are read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = Field(
        default=None, min_length=1, max_length=128,
        description="What the account is called in logs, cursors, events and "
        "`loom fetch --account`; default username@host. Renaming it starts over.",
    )  # fmt: skip
    host: str = Field(min_length=1, max_length=255, description="IMAP server name.")
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Default 993 with ssl, else 143."
    )
    security: Literal["ssl", "starttls", "none"] = Field(
        default="ssl",
        description="ssl: TLS from the start (port 993); starttls: upgrade a plain "
        "connection (port 143); none: no encryption (a server on this machine only).",
    )
    username: str = Field(min_length=1, description="Login name.")
    password: SecretStr = Field(description="Password or app password; never logged.")
    mailboxes: list[str] = Field(
        default_factory=lambda: ["INBOX"], min_length=1, max_length=100,
        description="Mailboxes (folders) read, by their IMAP names.",
    )  # fmt: skip

    @field_validator("mailboxes")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if any(not name for name in value):
            raise ValueError("a mailbox name is empty")
        if len(set(value)) != len(value):
            raise ValueError("a mailbox is named twice")
        return value

    @property
    def key(self) -> str:
        """Names the account in cursors and logs; holds no secret."""
        return self.name or f"{self.username}@{self.host}"

    @property
    def imap_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)


class MailSettings(LoomSettings):
    """Which IMAP accounts are read, how much at a time, and where big messages go."""

    mail_accounts: list[ImapAccount] = Field(
        default_factory=list,
        description="IMAP accounts as a JSON list of {name, host, port, security, "
        "username, password, mailboxes}; none: the fetcher does nothing.",
    )
    mail_batch_size: int = Field(
        default=50, ge=1, le=1000,
        description="Messages fetched (and acknowledged by Kafka, cursor saved) at a time.",
    )  # fmt: skip
    mail_batch_max_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024,
        description="A batch also ends once its messages add up to this many bytes.",
    )  # fmt: skip
    mail_initial_days: int = Field(
        default=30, ge=0,
        description="The first run of a mailbox (or after its UIDVALIDITY changed) reads "
        "messages received in the last this many days; 0: no date limit.",
    )  # fmt: skip
    mail_initial_max_messages: int = Field(
        default=500, ge=0,
        description="... and at most this many of them, the newest; 0: no limit. Older "
        "messages are never read; later runs read every message that arrives.",
    )  # fmt: skip
    mail_inline_max_bytes: int = Field(
        default=128 * 1024, ge=0, le=1_000_000,
        description="Messages up to this size travel inline (base64) in external.email.raw; "
        "larger ones go to the blob store (LOOM_STORE_BLOB_URL) and the event refers to them.",
    )  # fmt: skip
    mail_max_message_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024,
        description="Messages larger than this are not downloaded: only their headers "
        "(external.email.events.raw), no external.email.raw. The mail function's memory "
        "(512Mi) is sized for this default: raise both together.",
    )  # fmt: skip
    mail_connect_timeout_seconds: float = Field(
        default=30.0, gt=0, le=600, description="Connecting to the IMAP server."
    )
    mail_read_timeout_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="Waiting for any one answer of the server."
    )

    @property
    def accounts(self) -> list[ImapAccount]:
        """What the fetcher host reads."""
        return self.mail_accounts


def mail_settings(settings: LoomSettings) -> MailSettings:
    """``settings`` as MailSettings: its shared values, ``LOOM_MAIL_*`` from the env."""
    return settings_for(MailSettings, settings)
