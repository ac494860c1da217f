"""An HTTP JSON API (GET {base}/customers, /invoices, /payments, /holds, paginated) → CSV files.

Each entity is read page by page: ``GET {base}/{entity}?page=1``, then ``page=2``, … A page is
either a JSON list of records, or an object holding the records under ``data`` (or ``items`` /
``results``) with an optional ``next`` link (absolute, or relative to the page's URL; also
accepted under ``links.next``). When a page object has a ``next`` key, the link is followed and
a null ``next`` ends the entity; otherwise pages are numbered and the first empty page ends it
(a 404 past page 1 also ends it, as some frameworks answer that past the last page).

JSON numbers are parsed as ``Decimal`` so that amounts stay exact, and every value is written
as text: a number as written in the JSON, ``true``/``false``, null as an empty field, a nested
object or list as JSON. The columns are the contract's columns of the entity followed by any
extra keys of the records (kept in the raw row, ignored by staging).

With a token (env ``RELANCE_SOURCE_TOKEN``, else the Prefect Secret block
``relance-source-token``) each request carries ``Authorization: Bearer <token>`` — only to the
source's own host: a ``next`` link to another host is fetched without it. 429, 500, 502, 503, 504
and connection errors or timeouts are retried with exponential backoff (``RELANCE_HTTP_RETRIES``
attempts in all), honouring ``Retry-After``. ``RELANCE_HTTP_TIMEOUT_S`` bounds each whole request
(connect, headers and the full body), not the wait between two bytes: an API that stalls or
trickles its answer fails the attempt when the time is up.

Pagination that never ends stops with an error naming the URL: a next link (or its cursor
parameter) leading back to a page already read, a page with the same records as the one before,
or EMPTY_PAGES_MAX (3) empty pages in a row that still link to a next one. customers and invoices
are required; payments and holds answering 404 are absent (none of them). Errors name the entity's URL without its query
string, never the token.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from relance.core.errors import SourceError
from relance.core.retry import retry_wait
from relance.core.settings import get_settings, resolve_secret
from relance.core.urls import redact_url
from tasks.sources import COLUMNS, DATE_COLUMNS, ENTITIES, REQUIRED_ENTITIES

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_AFTER_CAP_S = 300.0
MAX_PAGES = 100_000
RECORD_KEYS = ("data", "items", "results")
#: empty pages in a row that still link to a next one before the pagination is called endless
EMPTY_PAGES_MAX = 3
#: query parameters that carry a position in the list (a repeated value = a page already read)
CURSOR_PARAMS = frozenset(
    {
        "cursor",
        "next_cursor",
        "page",
        "page_token",
        "pagetoken",
        "next_page_token",
        "nextpagetoken",
        "after",
        "starting_after",
        "offset",
        "skip",
        "marker",
        "continuation",
        "continuationtoken",
    }
)
USER_AGENT = "relance (accounts-receivable dunning)"


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _entity_url(base: str, entity: str) -> str:
    parts = urlsplit(base)
    path = parts.path.rstrip("/") + "/" + entity
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _with_page(url: str, page: int) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    query.append(("page", str(page)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


# ----------------------------------------------------------------------------- values


def _text(value: Any) -> str:
    """A JSON value as the text a CSV field holds (empty = absent)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))
    return str(value)


#: A date sent as an ISO 8601 datetime at midnight (`2026-03-01T00:00:00Z`, `…T00:00:00.000+01:00`):
#: many JSON APIs serialise a date that way. It is the date written; any other time of day is
#: left as it is, and the row is rejected with the reason (which calendar day is meant is not known).
_MIDNIGHT = re.compile(r"(\d{4}-\d{2}-\d{2})[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]\d{2}:?\d{2})?")


def _date_text(value: str) -> str:
    m = _MIDNIGHT.fullmatch(value.strip())
    return m.group(1) if m else value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # a number inside a nested value: its exact digits, as a string
        return format(value, "f") if value.is_finite() else str(value)
    raise TypeError(type(value).__name__)


def _column(key: str) -> str:
    """A record key as a column: contract columns are matched ignoring case and spaces."""
    norm = key.strip().lower().replace(" ", "_")
    return norm if norm in _ALL_CONTRACT_COLUMNS else key


_ALL_CONTRACT_COLUMNS = frozenset(c for cols in COLUMNS.values() for c in cols)


def _parse_json(content: bytes, where: str, content_type: str) -> Any:
    try:
        return json.loads(content, parse_float=Decimal, parse_constant=lambda c: c)
    except (ValueError, UnicodeDecodeError) as e:
        kind = f" (content type {content_type})" if content_type and "json" not in content_type.lower() else ""
        raise SourceError(f"{where}: the API answered with malformed JSON{kind}: {e}") from None


# ----------------------------------------------------------------------------- HTTP


class _Deadline:
    """One request's time budget: when it runs out, the socket being read is shut down, so a
    read blocked on an API that stalls or trickles its answer returns at once (requests' own
    timeout only bounds the wait between two bytes)."""

    def __init__(self, seconds: float) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.expired = False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True

    def watch(self, sock: socket.socket | None) -> None:
        with self.lock:
            self.sock = sock
            if self.expired:
                _cut(sock)

    def _expire(self) -> None:
        with self.lock:
            self.expired = True
            _cut(self.sock)


def _cut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:  # the plain socket's shutdown, also under TLS: wakes the blocked reader with an EOF
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


_current = threading.local()  # the _Deadline of the request this thread is making


@functools.cache
def _watched(connection_cls: type) -> type:
    """urllib3's connection class, handing its socket to the current request's deadline."""

    class Watched(connection_cls):
        _relance_watched = True

        def getresponse(self, *args, **kwargs):
            deadline = getattr(_current, "deadline", None)
            if deadline is not None:
                deadline.watch(self.sock)
            return super().getresponse(*args, **kwargs)

    Watched.__name__ = f"Watched{connection_cls.__name__}"
    return Watched


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections obey the current request's deadline."""

    def get_connection_with_tls_context(self, *args, **kwargs):
        pool = super().get_connection_with_tls_context(*args, **kwargs)
        if not getattr(pool.ConnectionCls, "_relance_watched", False):
            pool.ConnectionCls = _watched(pool.ConnectionCls)
        return pool


class _Client:
    def __init__(self, base: str, token: str | None, timeout_s: float, attempts: int) -> None:
        self.base_origin = _origin(base)
        self.token = token
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        adapter = _DeadlineAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _get_once(self, url: str, headers: dict) -> requests.Response:
        """One GET whose connect, headers and full body finish within timeout_s (or it raises)."""
        deadline = _Deadline(self.timeout_s)
        _current.deadline = deadline
        deadline.timer.start()
        try:
            response = self.session.get(url, headers=headers, timeout=self.timeout_s, allow_redirects=True)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            if deadline.expired:
                raise _Overdue() from e
            raise
        finally:
            deadline.timer.cancel()
            _current.deadline = None
        if deadline.expired:  # cut while reading: what came may look whole (headers, a body without length)
            response.close()
            raise _Overdue()
        return response

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, where: str) -> requests.Response:
        """GET with retries; returns the final response (any status not retried)."""
        headers = {}
        if self.token and _origin(url) == self.base_origin:
            headers["Authorization"] = f"Bearer {self.token}"
        last = ""
        for attempt in range(1, self.attempts + 1):
            asked: Any = None  # the retried answer's headers
            try:
                response = self._get_once(url, headers)
            except _Overdue:
                last = f"no complete answer within {self.timeout_s:g} s (RELANCE_HTTP_TIMEOUT_S)"
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                last = _describe_network_error(e, self.timeout_s)
            except requests.RequestException as e:
                raise SourceError(
                    f"{where}: the request cannot be made ({type(e).__name__}); check the source URL"
                ) from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                last = f"HTTP {response.status_code}{' ' + response.reason if response.reason else ''}"
                asked = response.headers
                response.close()
            if attempt == self.attempts:
                break
            time.sleep(
                retry_wait(asked, attempt, BACKOFF_BASE_S, BACKOFF_CAP_S, asked_cap=RETRY_AFTER_CAP_S, jitter=False)
            )
        raise SourceError(
            f"{where}: the API did not answer successfully after {self.attempts} attempt"
            f"{'s' if self.attempts > 1 else ''} (last: {last}); try again later or raise RELANCE_HTTP_RETRIES"
        )


class _Overdue(Exception):
    """The whole request did not finish within its time budget."""


def _describe_network_error(e: Exception, timeout_s: float) -> str:
    if isinstance(e, requests.ConnectTimeout):
        return f"connection timed out after {timeout_s:g} s"
    if isinstance(e, requests.Timeout):
        return f"no answer within {timeout_s:g} s"
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return "the connection broke while reading the answer"
    text = str(e).lower()
    if "refused" in text:
        return "connection refused"
    if any(
        s in text
        for s in (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo failed",
            "temporary failure in name resolution",
            "no address associated",
        )
    ):
        return "host name not found"
    if "ssl" in text or "certificate" in text:
        return "TLS/SSL error (check the certificate)"
    if "reset" in text or "aborted" in text or "remote end closed" in text:
        return "the connection was closed by the server"
    return "connection failed"


# ----------------------------------------------------------------------------- pages


def _records_of(body: Any, where: str) -> tuple[list, bool, str | None, bool]:
    """(records, has_next_key, next_link, says_no_more) of one page."""
    if isinstance(body, list):
        return body, False, None, False
    if not isinstance(body, dict):
        raise SourceError(f"{where}: a page must be a JSON list of records or an object with a data list")
    key = next((k for k in RECORD_KEYS if k in body), None)
    if key is None:
        raise SourceError(
            f"{where}: the page object has no data, items or results list (keys: {', '.join(list(body)[:10]) or 'none'})"
        )
    records = body[key]
    if records is None:
        records = []
    if not isinstance(records, list):
        raise SourceError(f"{where}: the page's {key!r} is not a list of records")
    links = body.get("links") if isinstance(body.get("links"), dict) else {}
    if "next" in body and not isinstance(body["next"], dict):
        has_next, link = True, body["next"]
    elif "next" in links:
        has_next, link = True, links["next"]
        if isinstance(link, dict):  # JSON:API style {"href": …}
            link = link.get("href")
    else:
        has_next, link = False, None
    if link is not None and not isinstance(link, str):
        raise SourceError(f"{where}: the page's next link is not a URL")
    no_more = any(body.get(k) is False for k in ("has_more", "has_next", "hasMore", "hasNext"))
    return records, has_next, (link or None), no_more


def _pages(client: _Client, entity_url: str, label: str) -> Iterator[list] | None:
    """The record lists of an entity, page by page; None when the first page is a 404."""
    first = client.get(_with_page(entity_url, 1), f"{label} (page 1)")
    if first.status_code == 404:
        first.close()
        return None
    return _iter_pages(client, entity_url, label, first)


def _page_key(url: str) -> tuple:
    """A page's URL, compared as the server reads it (host case, query order and port written or not aside)."""
    parts = urlsplit(url)
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return (*_origin(url), parts.path or "/", query)


def _cursor_key(url: str) -> tuple | None:
    """The position a URL asks for: its path and cursor-like parameters (None without any)."""
    parts = urlsplit(url)
    cursor = tuple(
        sorted((k.lower(), v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in CURSOR_PARAMS)
    )
    return (parts.path or "/", cursor) if cursor else None


def _iter_pages(client: _Client, entity_url: str, label: str, response: requests.Response) -> Iterator[list]:
    page, url = 1, _with_page(entity_url, 1)
    seen_pages = {_page_key(url)}
    seen_cursors = {_cursor_key(url)} - {None}
    previous_digest = None
    previous_records: list | None = None
    empty_with_next = 0
    while True:
        where = f"{label} (page {page})"
        _check_status(response, where, page, bool(client.token))
        if response.status_code == 404:  # past the last numbered page
            return
        content = response.content
        body = _parse_json(content, where, response.headers.get("Content-Type", ""))
        records, has_next, link, no_more = _records_of(body, where)
        for i, record in enumerate(records, start=1):
            if not isinstance(record, dict):
                raise SourceError(f"{where}: record {i} is not a JSON object")
        if records:
            yield records
        if has_next:
            if not link:
                return
            url = urljoin(response.url or url, link)
            if _page_key(url) in seen_pages:
                raise SourceError(
                    f"{where}: the next link {redact_url(url)} leads back to a page already read; "
                    "the API's pagination loops"
                )
            cursor = _cursor_key(url)
            if cursor is not None and cursor in seen_cursors:
                names = ", ".join(k for k, _ in cursor[1])
                raise SourceError(
                    f"{where}: the next link {redact_url(url)} asks again for a position already read "
                    f"(its {names} repeats); the API's pagination loops"
                )
            if records and records == previous_records:
                raise SourceError(
                    f"{where}: page {page} has the same records as page {page - 1} although its next "
                    f"link {redact_url(url)} moved on; the API seems to ignore its own cursor"
                )
            empty_with_next = 0 if records else empty_with_next + 1
            if empty_with_next >= EMPTY_PAGES_MAX:
                raise SourceError(
                    f"{where}: {empty_with_next} empty pages in a row still link to a next one "
                    f"({redact_url(url)}); the API's pagination seems endless"
                )
            previous_records = records
            if cursor is not None:
                seen_cursors.add(cursor)
        else:
            if not records or no_more:
                return
            digest = hashlib.sha256(content).digest()
            if digest == previous_digest:
                raise SourceError(
                    f"{where}: page {page} is the same as page {page - 1}; the API seems to ignore the page parameter"
                )
            previous_digest = digest
            url = _with_page(entity_url, page + 1)
        seen_pages.add(_page_key(url))
        page += 1
        if page > MAX_PAGES:
            raise SourceError(f"{label}: more than {MAX_PAGES} pages; the API's pagination seems to loop")
        response = client.get(url, f"{label} (page {page})")
        if response.status_code == 404 and has_next:
            raise SourceError(f"{label} (page {page}): the next link given by the API answers HTTP 404")


def _check_status(response: requests.Response, where: str, page: int, has_token: bool) -> None:
    code = response.status_code
    if code in (401, 403):
        hint = (
            "check RELANCE_SOURCE_TOKEN or the Prefect Secret block 'relance-source-token'"
            if has_token
            else "no token is configured: set RELANCE_SOURCE_TOKEN or the Prefect Secret block 'relance-source-token'"
        )
        raise SourceError(f"{where}: the API refused the token (HTTP {code}); {hint}")
    if code == 404 and page > 1:
        return
    if not 200 <= code < 300:
        raise SourceError(f"{where}: the API answered HTTP {code}{' ' + response.reason if response.reason else ''}")


# ----------------------------------------------------------------------------- extract


def _settings():
    try:
        return get_settings()
    except Exception as e:  # pydantic ValidationError: a RELANCE_* variable that does not parse
        fields = ", ".join(
            "RELANCE_" + str(err.get("loc", ("?",))[0]).upper() for err in getattr(e, "errors", lambda: [])()
        )
        raise SourceError(
            f"invalid setting{': ' + fields if fields else ''} (check the RELANCE_* environment variables)"
        ) from None


def _token(settings) -> str | None:
    token = resolve_secret(settings.source_token, settings.source_token_block)
    return token.strip() if token and token.strip() else None


def extract(url: str, workdir: Path) -> tuple[Path, dict[str, str]]:
    """Read every entity of the API into workdir/http/<entity>.csv; returns (folder, labels)."""
    settings = _settings()
    token = _token(settings)
    base = url.strip()
    try:
        host = urlsplit(base).hostname
    except ValueError:
        host = None
    if not host:
        raise SourceError("the source URL is not a valid http(s) URL with a host name")
    folder = Path(workdir) / "http"
    folder.mkdir(parents=True, exist_ok=True)
    client = _Client(base, token, settings.http_timeout_s, settings.http_retries)
    labels: dict[str, str] = {}
    try:
        for entity in ENTITIES:
            entity_url = _entity_url(base, entity)
            label = redact_url(entity_url)
            pages = _pages(client, entity_url, label)
            if pages is None:
                if entity in REQUIRED_ENTITIES:
                    raise SourceError(
                        f"{label}: not found (HTTP 404); the API must serve {entity} — check the source URL"
                    )
                continue
            _write_entity(folder / f"{entity}.csv", entity, pages, label)
            labels[entity] = label
    finally:
        client.close()
    return folder, labels


def _write_entity(path: Path, entity: str, pages: Iterator[list], label: str = "") -> int:
    """Stream the records to a JSON-lines spool (to learn every key), then write the CSV.

    A record naming one column under two keys (`amount` and `Amount`) stops the entity with a
    clear error, as a file whose header names a column twice does: which one is meant is not known."""
    columns: dict[str, None] = dict.fromkeys(COLUMNS[entity])
    spool = path.with_suffix(".jsonl")
    count = 0
    with spool.open("w", encoding="utf-8") as out:
        for records in pages:
            for record in records:
                row = {}
                keys: dict[str, str] = {}
                for key, value in record.items():
                    col = _column(str(key))
                    if col in keys:
                        raise SourceError(
                            f"{label or path.stem}: record {count + 1} names column {col!r} twice "
                            f"(as {keys[col]!r} and {str(key)!r}); keep one key of each name"
                        )
                    keys[col] = str(key)
                    if col == "tags" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                        row[col] = ",".join(value)  # a JSON list of labels: the comma-separated column
                    else:
                        row[col] = _date_text(_text(value)) if col in DATE_COLUMNS else _text(value)
                    columns.setdefault(col, None)
                out.write(json.dumps(row, ensure_ascii=False))
                out.write("\n")
                count += 1
    names = list(columns)
    with spool.open(encoding="utf-8") as src, path.open("w", encoding="utf-8", newline="") as dst:
        writer = csv.writer(dst, lineterminator="\n")
        writer.writerow(names)
        for line in src:
            row = json.loads(line)
            writer.writerow([row.get(c, "") for c in names])
    spool.unlink()
    return count
