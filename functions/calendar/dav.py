"""Talking to a CalDAV server with the ``caldav`` client: log in, find the calendars, list
what changed, load objects. Every call here blocks (``requests`` underneath): the
fetcher runs each in a thread.

What changed is asked by sync token (RFC 6578 sync-collection) where the server has
it; a token the server no longer knows means a full listing, and a server without
sync-collection (or ``LOOM_CALENDAR_SYNC_TOKENS=false``) is listed by PROPFIND with
every object's ETag, which the fetcher compares with the ETags it kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from caldav.collection import Calendar
from caldav.davclient import DAVClient
from caldav.elements import dav
from caldav.lib import error

from functions.calendar.settings import CalDavAccount
from loom.errors import LoomError

__all__ = ["CalDavError", "Listing", "Loaded", "Member", "calendars", "changes", "connect", "load"]


class CalDavError(LoomError):
    """The server refused the login, or a configured calendar is not there."""


@dataclass(frozen=True)
class Member:
    """One object of a calendar as a listing names it: its name in the collection, URL
    and ETag (None where the server gave none)."""

    name: str
    url: Any  # caldav's URL
    etag: str | None


@dataclass(frozen=True)
class Listing:
    """What a calendar holds, or what changed in it since ``token``."""

    members: list[Member]  # changed ones, or every one where ``full``
    deleted: set[str]  # names the server says are gone (a sync-collection delta)
    token: str | None  # the sync token to keep once ``members`` are handled
    full: bool  # every object is listed: one the fetcher knew but is not here is gone


@dataclass(frozen=True)
class Loaded:
    name: str
    etag: str | None
    data: str
    href: str = ""  # its URL, to load it again later


def object_name(url: Any) -> str:
    """``u1%40example.ics`` of ``…/calendars/work/u1%40example.ics``, unquoted."""
    return unquote(str(url.path).rstrip("/").rsplit("/", 1)[-1])


def connect(account: CalDavAccount, timeout: float) -> DAVClient:
    return DAVClient(
        url=account.url,
        username=account.username,
        password=account.password.get_secret_value(),
        timeout=timeout,  # type: ignore[arg-type]  # requests takes a float of seconds
        ssl_verify_cert=account.verify_tls,
    )


def calendars(client: DAVClient, account: CalDavAccount) -> list[Calendar]:
    """The account's calendars that are read (all, or those ``account.calendars`` names)."""
    try:
        found = list(client.get_principal().get_calendars())
    except error.AuthorizationError as exc:
        raise CalDavError(
            f"{account.url} refused the login of {account.username!r} "
            f"({getattr(exc, 'status', '') or ''} {getattr(exc, 'reason', '') or ''}".rstrip()
            + "): check the account's username and password"
        ) from None
    if not account.calendars:
        return found
    names: dict[str, Calendar] = {}
    for calendar in found:
        for name in (calendar.id, calendar.get_display_name()):
            if name:
                names.setdefault(str(name).casefold(), calendar)
    missing = [n for n in account.calendars if n.casefold() not in names]
    if missing:
        known = ", ".join(sorted({str(c.get_display_name() or c.id) for c in found})) or "none"
        raise CalDavError(f"the account has no calendar named {missing} (it has: {known})")
    chosen = {str(names[n.casefold()].url): names[n.casefold()] for n in account.calendars}
    return list(chosen.values())


def changes(calendar: Calendar, token: str | None, use_sync: bool) -> Listing:
    """What changed in ``calendar`` since ``token`` (everything when None)."""
    if use_sync:
        try:
            return _sync(calendar, token)
        except error.AuthorizationError as exc:
            if dav.ValidSyncToken.tag not in exc.preconditions:
                raise
            return _sync(calendar, None)  # the server forgot the token: list everything
        except error.DAVError:
            pass  # no sync-collection here: compare ETags
    return _propfind(calendar)


def _sync(calendar: Calendar, token: str | None) -> Listing:
    result = calendar.get_objects_by_sync_token(token, load_objects=False, disable_fallback=True)
    deleted = {object_name(url) for url in result.deleted_urls}
    members = [
        Member(object_name(obj.url), obj.url, (obj.props or {}).get(dav.GetEtag.tag))
        for obj in result
        if object_name(obj.url) not in deleted
    ]
    full = token is None and not result.truncated
    new_token = str(result.sync_token) if result.sync_token else None
    return Listing(members, deleted, new_token, full)


def _propfind(calendar: Calendar) -> Listing:
    response = calendar.get_properties([dav.GetEtag()], depth=1, parse_response_xml=False)
    home = calendar.url.canonical().strip_trailing_slash()
    members = []
    for href, props in response.expand_simple_props([dav.GetEtag()]).items():
        url = calendar.url.join(href)
        if str(href).endswith("/") or url.canonical().strip_trailing_slash() == home:
            continue  # the calendar itself, or a collection inside it
        members.append(Member(object_name(url), url, props.get(dav.GetEtag.tag)))
    return Listing(members, set(), None, True)


def load(calendar: Calendar, members: list[Member]) -> list[Loaded]:
    """The data and current ETag of ``members`` (one calendar-multiget REPORT); an object
    deleted since it was listed is left out."""
    loaded = []
    for obj in calendar.multiget([m.url for m in members]):
        data = obj.data
        if data:
            etag = (obj.props or {}).get(dav.GetEtag.tag)
            name, tag = object_name(obj.url), str(etag) if etag else None
            loaded.append(Loaded(name, tag, str(data), str(obj.url)))
    return loaded
