"""A Hacker News stand-in: a real HTTP server on 127.0.0.1 with the site's favourites,
upvoted and login pages (the site's own markup), the API's items, and linked pages."""

from __future__ import annotations

import html
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from functions.hackernews.settings import HackerNewsSettings, HnAccount

BASE_TIME = 1_795_679_880  # 2026-11-25T07:58:00Z


@dataclass(frozen=True)
class Asked:
    method: str
    path: str
    query: dict[str, list[str]]
    cookie: str | None
    user_agent: str | None
    form: dict[str, list[str]]


@dataclass
class FakeHackerNews:
    """The site's state (lists newest first), what it answers, and what it was asked."""

    url: str = ""
    page_size: int = 30
    users: set[str] = field(default_factory=set)
    favorites: dict[str, list[int]] = field(default_factory=dict)
    upvoted: dict[str, list[int]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # cookie value -> user
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    pages: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    fail: int | None = None  # every site page answers this status
    fail_pages: set[int] = field(default_factory=set)  # list pages p=N answer 500
    delay: float = 0.0  # before answering linked pages
    asked: list[Asked] = field(default_factory=list)

    def like(self, user: str, item_id: int, kind: str = "favorites") -> None:
        """``user`` likes ``item_id`` now: it goes to the top of the list."""
        listed = getattr(self, kind).setdefault(user, [])
        if item_id in listed:
            listed.remove(item_id)
        listed.insert(0, item_id)

    def session(self, user: str) -> str:
        """A logged-in browser's ``user`` cookie value for ``user``."""
        value = f"{user}&{secrets.token_hex(8)}"
        self.sessions[value] = user
        return value

    def serve(self, path: str, body: bytes | str, content_type: str = "text/html",
              status: int = 200, **headers: str) -> str:  # fmt: skip
        raw = body.encode() if isinstance(body, str) else body
        self.pages[path] = (status, {"Content-Type": content_type, **headers}, raw)
        return f"{self.url}{path}"

    def requests(self, path: str) -> list[Asked]:
        return [a for a in self.asked if a.path == path]

    def settings(self, *accounts: dict[str, Any], **kw: Any) -> HackerNewsSettings:
        return HackerNewsSettings(
            hackernews_accounts=[HnAccount.model_validate(a) for a in accounts],
            hackernews_site_url=self.url, hackernews_api_url=self.url,
            hackernews_page_delay_seconds=0, **kw,
        )  # fmt: skip


# ── the site's markup ────────────────────────────────────────────────────────


def _top(title: str, goto: str) -> str:
    return f"""<html lang="en" op="favorites"><head><meta name="referrer" content="origin">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" type="text/css" href="news.css?Zx1Y2"><title>{html.escape(title)}</title>
</head><body><center><table id="hnmain" border="0" cellpadding="0" cellspacing="0" width="85%"
bgcolor="#f6f6ef"><tr><td bgcolor="#ff6600"><table border="0" cellpadding="0" cellspacing="0"
width="100%" style="padding:2px"><tr><td style="width:18px;padding-right:4px"><a
href="https://news.ycombinator.com"><img src="y18.svg" width="18" height="18"></a></td>
<td style="line-height:12pt; height:10px;"><span class="pagetop"><b class="hnname"><a
href="news">Hacker News</a></b><a href="newest">new</a> | <a href="front">past</a> | <a
href="newcomments">comments</a> | <a href="ask">ask</a> | <a href="show">show</a> | <a
href="jobs">jobs</a> | <a href="submit" rel="nofollow">submit</a></span></td><td
style="text-align:right;padding-right:4px;"><span class="pagetop"><a
href="login?goto={quote(goto, safe="")}">login</a></span></td></tr></table></td></tr>
<tr id="pagespace" title="{html.escape(title)}" style="height:10px"></tr>"""


_BOTTOM = """<tr><td><img src="s.gif" height="10" width="0"><table width="100%" cellspacing="0"
cellpadding="1"><tr><td bgcolor="#ff6600"></td></tr></table><br><center><span
class="yclinks"><a href="newsguidelines.html">Guidelines</a> | <a href="newsfaq.html">FAQ</a>
| <a href="lists">Lists</a> | <a href="https://github.com/HackerNews/API">API</a></span><br>
<br><form method="get" action="//hn.algolia.com/">Search: <input type="text" name="q"
size="17" autocorrect="off" spellcheck="false" autocapitalize="off" autocomplete="off">
</form></center></td></tr></table></center></body><script type="text/javascript"
src="hn.js?Zx1Y2"></script></html>"""


def _row(item: dict[str, Any], rank: int, goto: str) -> str:
    i, title = item["id"], html.escape(item.get("title", ""))
    if item.get("url"):
        site = urlsplit(item["url"]).hostname or ""
        link = (
            f'<a href="{html.escape(item["url"])}">{title}</a><span class="sitebit comhead">'
            f' (<a href="from?site={site}"><span class="sitestr">{site}</span></a>)</span>'
        )
    else:
        link = f'<a href="item?id={i}">{title}</a>'
    by, when = item.get("by", "someone"), item.get("time", BASE_TIME)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when))
    g = quote(goto, safe="")
    return f"""<tr class="athing submission" id="{i}">
      <td align="right" valign="top" class="title"><span class="rank">{rank}.</span></td>
      <td valign="top" class="votelinks"><center><a id="up_{i}" href="vote?id={i}&amp;how=up&amp;goto={g}"><div class="votearrow" title="upvote"></div></a></center></td><td class="title"><span class="titleline">{link}</span></td></tr><tr><td colspan="2"></td><td class="subtext"><span class="subline">
          <span class="score" id="score_{i}">{item.get("score", 1)} points</span> by <a href="user?id={by}" class="hnuser">{by}</a> <span class="age" title="{stamp} {when}"><a href="item?id={i}">2 hours ago</a></span> <span id="unv_{i}"></span> | <a href="hide?id={i}&amp;goto={g}">hide</a> | <a href="item?id={i}">{item.get("descendants", 0)}&nbsp;comments</a>        </span>
              </td></tr>
      <tr class="spacer" style="height:5px"></tr>"""  # noqa: E501


def list_page(fake: FakeHackerNews, kind: str, user: str, page: int) -> str:
    ids = getattr(fake, kind).get(user, [])
    start = (page - 1) * fake.page_size
    shown = ids[start : start + fake.page_size]
    goto = f"{kind}?id={user}" + (f"&p={page}" if page > 1 else "")
    rows = "".join(_row(fake.items.get(i, {"id": i}), start + n + 1, goto)
                   for n, i in enumerate(shown))  # fmt: skip
    more = ""
    if start + fake.page_size < len(ids):
        more = (f'<tr class="morespace" style="height:10px"></tr><tr><td colspan="2"></td>'
                f'<td class="title"><a href="{kind}?id={user}&amp;p={page + 1}" class="morelink"'
                f' rel="next">More</a></td></tr>')  # fmt: skip
    return (f"{_top(f'{user}' + chr(39) + f's {kind} | Hacker News', goto)}<tr><td><table "
            f'border="0" cellpadding="0" cellspacing="0"><tr><td class="subtext"><span '
            f'class="topsel"><a href="{kind}?id={user}"><font color="#ff6600">submissions'
            f'</font></a></span> | <a href="{kind}?id={user}&amp;comments=t">comments</a></td>'
            f'</tr>{rows}{more}</table></td></tr>{_BOTTOM}')  # fmt: skip


def message_page(text: str) -> str:
    return f"<html><head></head><body>{html.escape(text)}</body></html>"


def login_page(notice: str = "") -> str:
    return f"""<html lang="en"><head><meta name="referrer" content="origin"><title>Login |
Hacker News</title></head><body>{html.escape(notice)}<br><br><b>Login</b><br><br>
<form action="login" method="post"><input type="hidden" name="goto" value="news"><table
border="0"><tr><td>username:</td><td><input type="text" name="acct" size="20"
autocorrect="off" spellcheck="false" autocapitalize="off" autofocus="true"></td></tr><tr>
<td>password:</td><td><input type="password" name="pw" size="20"></td></tr></table><br>
<input type="submit" value="login"></form><a href="forgot">Forgot your password?</a><br>
<br><b>Create Account</b><br><br><form action="login" method="post"><input type="hidden"
name="goto" value="news"><input type="hidden" name="creating" value="t"><table border="0">
<tr><td>username:</td><td><input type="text" name="acct" size="20"></td></tr><tr><td>
password:</td><td><input type="password" name="pw" size="20"></td></tr></table><br><input
type="submit" value="create account"></form></body></html>"""


# ── the server ───────────────────────────────────────────────────────────────


def _handler(fake: FakeHackerNews) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: bytes | str, headers: dict[str, str]) -> None:
            raw = body.encode() if isinstance(body, str) else body
            try:
                self.send_response(status)
                headers = {"Content-Type": "text/html; charset=utf-8", **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except OSError:  # the client gave up
                pass

        def _record(self, form: dict[str, list[str]]) -> tuple[str, dict[str, list[str]]]:
            split = urlsplit(self.path)
            query = parse_qs(split.query)
            fake.asked.append(Asked(self.command, split.path, query, self.headers.get("Cookie"),
                                    self.headers.get("User-Agent"), form))  # fmt: skip
            return split.path, query

        def _user(self) -> str | None:
            for part in (self.headers.get("Cookie") or "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == "user":
                    return fake.sessions.get(value)
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            path, _ = self._record(form)
            if path != "/login":
                return self._reply(404, "Unknown.", {})
            if fake.fail:
                return self._reply(fake.fail, "Sorry.", {})
            user, password = form.get("acct", [""])[0], form.get("pw", [""])[0]
            if user and fake.passwords.get(user) == password:
                cookie = fake.session(user)
                return self._reply(
                    302,
                    "",
                    {
                        "Location": "news",
                        "Set-Cookie": f"user={cookie}; Path=/; Max-Age=31536000; Secure; HttpOnly",
                    },
                )
            return self._reply(200, login_page("Bad login."), {})

        def do_GET(self) -> None:
            path, query = self._record({})
            user, page = query.get("id", [""])[0], int(query.get("p", ["1"])[0])
            if path.startswith("/v0/item/"):
                item = fake.items.get(int(path.removeprefix("/v0/item/").removesuffix(".json")))
                return self._reply(200, json.dumps(item), {"Content-Type": "application/json"})
            if path in fake.pages:
                time.sleep(fake.delay)
                status, headers, body = fake.pages[path]
                return self._reply(status, body, headers)
            if path in ("/favorites", "/upvoted", "/login") and fake.fail:
                return self._reply(fake.fail, "Sorry, we're not able to serve your requests "
                                   "this quickly.", {})  # fmt: skip
            if path in ("/favorites", "/upvoted") and page in fake.fail_pages:
                return self._reply(500, "Internal error.", {})
            if path == "/login":
                return self._reply(200, login_page(), {})
            if path == "/favorites":
                if user not in fake.users:
                    return self._reply(200, message_page("No such user."), {})
                return self._reply(200, list_page(fake, "favorites", user, page), {})
            if path == "/upvoted":
                if self._user() != user:
                    return self._reply(200, message_page("Can't display that."), {})
                return self._reply(200, list_page(fake, "upvoted", user, page), {})
            return self._reply(404, "Unknown.", {})

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def story(item_id: int, title: str, url: str | None = None, **more: Any) -> dict[str, Any]:
    item = {"by": "pg_fan", "descendants": 12, "id": item_id, "score": 231, "title": title,
            "time": BASE_TIME - item_id % 1000, "type": "story", **more}  # fmt: skip
    if url is not None:
        item["url"] = url
    return item


@pytest.fixture
def hn() -> Iterator[FakeHackerNews]:
    """The stand-in with two users: ada_hn (7 favourites, public) and grace (password
    ``correct horse``; 2 favourites, 3 upvoted)."""
    fake = FakeHackerNews()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    for n in range(1, 11):
        item_id = 42_000_000 + n
        if n % 3 == 2:
            fake.items[item_id] = story(item_id, f"Ask HN: Question number {n}?",
                                        text=f"I have tried paper, Org mode and a spreadsheet"
                                        f" ({n}).<p>What do you use?")  # fmt: skip
        else:
            fake.items[item_id] = story(item_id, f"Show HN: Project number {n}",
                                        f"{fake.url}/articles/{n}")  # fmt: skip
    fake.users |= {"ada_hn", "grace"}
    fake.favorites["ada_hn"] = [42_000_000 + n for n in (7, 6, 5, 4, 3, 2, 1)]
    fake.favorites["grace"] = [42_000_009, 42_000_008]
    fake.upvoted["grace"] = [42_000_010, 42_000_009, 42_000_001]
    fake.passwords["grace"] = "correct horse"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
