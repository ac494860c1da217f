"""URLs that may carry secrets (a source, a metrics target): the one place that parses them for
display. Everything relance shows or stores about such a URL — error messages, logs, ``--json``
output, ``rejected_rows.source``, the write-back ledger — goes through ``redact_url`` (a label)
or ``scrub`` (a message that may quote the URL or a driver's text).

The parser is built for URLs written by hand, whose password may hold unescaped ``#``, ``?``,
``/`` or ``@`` (``postgresql://bi:p@ss/w#rd?@db.example/finance``): the userinfo runs up to the
LAST ``@`` preceded by a user name without ``/?#`` (an ``@`` after a ``/``, ``?`` or ``#`` of the
host part is in a path or a query). urllib's ``urlsplit`` would end the authority at the first
``/?#`` instead and show the rest of the password as a host, port or path. When in doubt the
parser takes more as userinfo, i.e. it hides more, never less (an ``@`` in the path of a URL with
a port and no user, ``https://host:8080/a@b``, is read as a userinfo: the label is then wrong,
never revealing).

A label keeps the scheme, host(s), port(s) and path; it drops the password, the query string
and the fragment. The user name is kept for PostgreSQL (it says who logs in) and dropped for
http(s), where the user part of a URL is often a token (``https://TOKEN@api.example``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.S)
POSTGRES_SCHEMES = ("postgresql", "postgres")
#: Query parameters whose value is a secret (compared lower-case; also any key containing one of
#: the words of _SECRET_WORDS).
_SECRET_KEYS = frozenset(
    {
        "password",
        "sslpassword",
        "passfile",
        "sslkey",
        "key",
        "apikey",
        "sig",
        "signature",
        "auth",
        "code",
        "pass",
        "pwd",
    }
)
_SECRET_WORDS = (
    "password",
    "passwd",
    "token",
    "secret",
    "api_key",
    "api-key",
    "apikey",
    "credential",
    "private",
    "session",
    "signature",
)
#: Secrets shorter than this are not scrubbed out of free text (every "e" of a message would go).
MIN_SCRUB_LENGTH = 3


@dataclass(frozen=True)
class UrlParts:
    """A URL cut as written (no percent-decoding): scheme://[user[:password]@]hosts[path][?query][#fragment]."""

    scheme: str
    user: str | None
    password: str | None
    hosts: str
    path: str
    query: str
    fragment: str


def split_url(url: str) -> UrlParts | None:
    """The URL's parts, or None when `url` is not `scheme://…` (e.g. a folder)."""
    m = _SCHEME.match(url.strip())
    if not m:
        return None
    scheme, rest = m.group(1), m.group(2)
    userinfo, after = None, rest
    for i in reversed([i for i, c in enumerate(rest) if c == "@"]):
        candidate = rest[:i]
        if re.search(r"[/?#]", candidate.split(":", 1)[0]):
            continue  # a user name never holds /?# — this @ is in a path or a query
        userinfo, after = candidate, rest[i + 1 :]
        break
    hosts = re.match(r"[^/?#]*", after).group(0)  # type: ignore[union-attr]
    tail = after[len(hosts) :]
    tail, _, fragment = tail.partition("#")
    path, _, query = tail.partition("?")
    user = password = None
    if userinfo is not None:
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
    return UrlParts(scheme, user, password, hosts, path, query, fragment)


def redact_url(url: str) -> str:
    """A label safe for logs, messages and tables: scheme://[user@]host:port/path — no password,
    query string or fragment (no user either for http(s)). A text that is not a URL is returned as is."""
    parts = split_url(url)
    if parts is None:
        return url
    keep_user = parts.scheme.lower() in POSTGRES_SCHEMES and parts.user
    return f"{parts.scheme}://{parts.user + '@' if keep_user else ''}{parts.hosts}{parts.path}"


def origin_label(url: str | None) -> str:
    """scheme://host[:port] of a URL: where a request went or a redirect (a Location header)
    points — never a user, password, path, query or fragment."""
    if not url or not url.strip():
        return "nowhere (no Location)"
    text = url.strip()
    parts = split_url("x:" + text if text.startswith("//") else text)  # //host/…: the same scheme
    if parts is None:
        return "a path on the same host"
    host = parts.hosts.lower()
    if not host:
        return "a path on the same host"
    return host if text.startswith("//") else f"{parts.scheme}://{host}"


#: A URL inside free text (a driver's or a server's message): up to a space, a quote or a bracket,
#: without the punctuation that ends its sentence.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*[^\s'\"<>;,.)]")


def redact_urls(text: str) -> str:
    """`text` with every URL written in it replaced by its label (for messages whose URLs are not
    known beforehand, such as a failed run's state message in an alert)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def user_of(url: str) -> str | None:
    """The user name of the URL, percent-decoded (None when it has none)."""
    parts = split_url(url)
    return unquote(parts.user) if parts and parts.user else None


def secrets(url: str) -> list[str]:
    """Every secret the URL holds, as written and percent-decoded, longest first: the password,
    for http(s) also the user (often a token), and the values of secret-looking query keys."""
    parts = split_url(url)
    if parts is None:
        return []
    found: list[str] = []
    if parts.password:
        found.append(parts.password)
    if parts.user and parts.scheme.lower() not in POSTGRES_SCHEMES:
        found.append(parts.user)
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        k = key.lower()
        if k in _SECRET_KEYS or any(w in k for w in _SECRET_WORDS):
            found.append(value)
    for piece in parts.query.split("&"):  # the raw values too (parse_qsl decodes them)
        key, _, value = piece.partition("=")
        k = unquote(key).lower()
        if value and (k in _SECRET_KEYS or any(w in k for w in _SECRET_WORDS)):
            found.append(value)
    if parts.fragment and "=" in parts.fragment:  # OAuth-style #access_token=…
        found.extend(v for k, v in parse_qsl(parts.fragment) if any(w in k.lower() for w in _SECRET_WORDS))
    out: list[str] = []
    for value in found:
        # also each piece between special characters: a driver that misread the URL quotes one
        # ("could not translate host name "Secr3t"")
        for v in (
            value,
            unquote(value),
            quote(unquote(value), safe=""),
            *re.split(r"[@/?#:%]", value),
            *re.split(r"[@/?#:]", unquote(value)),
        ):
            if len(v) >= MIN_SCRUB_LENGTH and v not in out:
                out.append(v)
    return sorted(out, key=len, reverse=True)


def scrub(text: str, *urls: str) -> str:
    """`text` with every whole URL replaced by its label and every secret of the URLs by ***."""
    for url in urls:
        if url and url.strip():
            text = text.replace(url.strip(), redact_url(url))
    for url in urls:
        for s in secrets(url or ""):
            text = text.replace(s, "***")
    return text


def _escape(piece: str, safe: str) -> str:
    piece = re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", piece)  # a lone % is a literal percent sign
    return quote(piece, safe="%" + safe)


def escape_userinfo(url: str) -> str:
    """The URL to hand to libpq: when libpq would misread its userinfo — a password holding an
    unescaped `/` (libpq's userinfo stops there) or `@` (libpq's stops at the first), or a lone
    `%` — the user and password are percent-encoded as `split_url` reads them: `p@ss/w#rd`
    becomes `p%40ss%2Fw%23rd` (already encoded text is kept). Otherwise the URL is returned
    unchanged, so that an `@` in a query (`?application_name=a@b`) stays libpq's business."""
    parts = split_url(url)
    if parts is None or parts.user is None:
        return url
    rest = _SCHEME.match(url.strip()).group(2)  # type: ignore[union-attr]
    first_at = rest.index("@")
    last_at = len(parts.user) + (len(parts.password) + 1 if parts.password is not None else 0)
    misread = (
        "/" in rest[:first_at]
        or (last_at != first_at and not re.search(r"[/?#]", rest[first_at + 1 : last_at]))
        or re.search(r"%(?![0-9A-Fa-f]{2})", rest[:last_at]) is not None
    )
    if not misread:
        return url
    sub_delims = "!$&'()*+,;=-._~"
    userinfo = _escape(parts.user, sub_delims)
    if parts.password is not None:
        userinfo += ":" + _escape(parts.password, sub_delims + ":")
    rest = (
        parts.hosts
        + parts.path
        + (f"?{parts.query}" if parts.query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )
    return f"{parts.scheme}://{userinfo}@{rest}"
