"""A SendGrid-compatible v3 Mail Send server on loopback, for tests and measurements.

POST /v3/mail/send is validated the way SendGrid does before accepting a message
(https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send):
* Authorization: Bearer <the expected key>, else 401 with SendGrid's error body;
* JSON body; personalizations: 1–1000, each with `to` (1+ objects with a valid `email`);
  `from.email` valid; a subject (top level or in every personalization); `content`: non-empty
  values, text/plain before text/html; `custom_args` string values (≤ 10 000 bytes in all);
  `categories` ≤ 10 strings of ≤ 255 characters; `attachments` with base64 `content` and a
  `filename`; `reply_to.email` valid; `mail_settings.sandbox_mode.enable` → 200, not delivered.
A valid request is answered 202 with an `X-Message-Id` header and recorded in `accepted`.
It can be told to answer 429 (with X-RateLimit-Reset / Retry-After) or 5xx for the next N
requests or for a fraction of them, or to refuse given recipients with a 400 — or to stand for a
misconfigured RELANCE_SENDGRID_HOST: `redirect_to(url)` answers every request 302 to `url`
(tests.fakes.loopback.Catcher records what follows it), `answer_with(...)` answers a fixed
response (a `200 text/html` welcome page, a 202 without `X-Message-Id`) before any check.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.loopback import LoopbackFake

EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def _errors(*items: tuple[str | None, str]) -> dict:
    return {"errors": [{"message": m, "field": f, "help": None} for f, m in items]}


def validate(body) -> list[tuple[str | None, str]]:
    """SendGrid's checks of a v3 mail/send body; [] when acceptable."""
    problems: list[tuple[str | None, str]] = []
    if not isinstance(body, dict):
        return [(None, "Bad Request")]
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not pers:
        problems.append(
            ("personalizations", "The personalizations field is required and must have at least one personalization.")
        )
        pers = []
    if len(pers) > 1000:
        problems.append(("personalizations", "You may not have more than 1000 personalizations per API request."))
    subject_top = body.get("subject")
    for i, p in enumerate(pers):
        to = p.get("to") if isinstance(p, dict) else None
        if not isinstance(to, list) or not to:
            problems.append(
                (
                    f"personalizations.{i}.to",
                    "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
                )
            )
            continue
        for j, t in enumerate(to):
            if not isinstance(t, dict) or not EMAIL.match(str(t.get("email", ""))):
                problems.append((f"personalizations.{i}.to.{j}.email", "Does not contain a valid address."))
        if not (subject_top or p.get("subject")):
            problems.append(
                (
                    "subject",
                    "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
                )
            )
    sender = body.get("from")
    if not isinstance(sender, dict) or not EMAIL.match(str(sender.get("email", ""))):
        problems.append(
            (
                "from.email",
                "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.",
            )
        )
    content = body.get("content")
    if not body.get("template_id"):
        if not isinstance(content, list) or not content:
            problems.append(
                (
                    "content",
                    "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block.",
                )
            )
        else:
            types = [c.get("type") for c in content]
            for k, c in enumerate(content):
                if not c.get("value"):
                    problems.append(
                        (f"content.{k}.value", "The content value must be a string at least one character in length.")
                    )
            if "text/plain" in types and "text/html" in types and types.index("text/plain") > types.index("text/html"):
                problems.append(
                    (
                        "content",
                        "If present, text/plain must be first, followed by text/html, followed by any other content.",
                    )
                )
    custom = body.get("custom_args", {})
    if not isinstance(custom, dict) or any(not isinstance(v, str) for v in custom.values()):
        problems.append(("custom_args", "Custom args must be string values."))
    elif len(json.dumps(custom).encode()) > 10000:
        problems.append(("custom_args", "The custom_args may not exceed 10,000 bytes."))
    cats = body.get("categories", [])
    if not isinstance(cats, list) or len(cats) > 10 or any(not isinstance(c, str) or len(c) > 255 for c in cats):
        problems.append(("categories", "Categories: at most 10, each a string of at most 255 characters."))
    for k, a in enumerate(body.get("attachments", []) or []):
        if not a.get("filename"):
            problems.append((f"attachments.{k}.filename", "The attachment filename parameter is required."))
        try:
            base64.b64decode(a.get("content", ""), validate=True)
        except (binascii.Error, ValueError):
            problems.append((f"attachments.{k}.content", "The attachment content must be base64 encoded."))
    reply = body.get("reply_to")
    if reply is not None and (not isinstance(reply, dict) or not EMAIL.match(str(reply.get("email", "")))):
        problems.append(("reply_to.email", "Does not contain a valid address."))
    return problems


@dataclass
class Accepted:
    message_id: str
    body: dict
    headers: dict
    at: float


@dataclass
class FakeSendGrid(LoopbackFake):
    api_key: str = "SG.test-key.relance"
    accepted: list[Accepted] = field(default_factory=list)
    requests: list[tuple[float, int, str | None]] = field(default_factory=list)  # (time, status, delivery_id)
    _fail_queue: list[tuple[int, dict]] = field(default_factory=list)
    _fail_fraction: tuple[float, int, random.Random] | None = None
    _refuse: set[str] = field(default_factory=set)
    delay: float = 0.0
    canned: tuple[int, dict, bytes] | None = None  # (status, headers, body) answered to every request

    def __post_init__(self):
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # -- control ------------------------------------------------------------------------------
    def fail_next(
        self, n: int, status: int = 429, reset_in: float | None = 1.0, retry_after: float | None = None
    ) -> None:
        headers = {}
        if status == 429 and reset_in is not None:
            headers["X-RateLimit-Limit"] = "600"
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = "__reset__:" + str(reset_in)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        with self.lock:
            self._fail_queue += [(status, headers)] * n

    def fail_fraction(self, fraction: float, status: int = 500, seed: int = 7) -> None:
        self._fail_fraction = (fraction, status, random.Random(seed))

    def refuse_recipient(self, email: str) -> None:
        self._refuse.add(email)

    def answer_with(self, status: int, headers: dict | None = None, body: bytes = b"") -> None:
        self.canned = (status, dict(headers or {}), body)

    def redirect_to(self, url: str, status: int = 302) -> None:
        self.answer_with(status, {"Location": url, "Content-Type": "text/html"}, b"<html>Moved</html>")

    def delivery_ids(self) -> list[str]:
        return [a.body.get("custom_args", {}).get("delivery_id") for a in self.accepted]

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeSendGrid:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: dict | None = None, headers: dict | None = None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in (headers or {}).items():
                    if isinstance(v, str) and v.startswith("__reset__:"):
                        v = str(int(time.time() + float(v.split(":", 1)[1])) + 0)
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if fake.delay:
                    time.sleep(fake.delay)
                if self.path.rstrip("/") != "/v3/mail/send":
                    return self._reply(404, _errors((None, "not found")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self._reply(400, _errors((None, "Bad Request")))
                delivery_id = (body.get("custom_args") or {}).get("delivery_id") if isinstance(body, dict) else None
                if fake.canned is not None:
                    status, headers, data = fake.canned
                    fake._log(status, delivery_id)
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                status, headers = fake._decide(self.headers.get("Authorization"), body)
                if status in (401,):
                    fake._log(status, delivery_id)
                    return self._reply(
                        401, _errors((None, "The provided authorization grant is invalid, expired, or revoked"))
                    )
                if status and status != 202:
                    fake._log(status, delivery_id)
                    if status == 400:
                        return self._reply(400, headers)
                    return self._reply(status, _errors((None, "simulated failure")), headers)
                problems = validate(body)
                if problems:
                    fake._log(400, delivery_id)
                    return self._reply(400, _errors(*problems))
                sandbox = ((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable")
                if sandbox:
                    fake._log(200, delivery_id)
                    return self._reply(200)
                message_id = uuid.uuid4().hex[:22]
                with fake.lock:
                    fake.accepted.append(Accepted(message_id, body, dict(self.headers), time.time()))
                fake._log(202, delivery_id)
                self.send_response(202)
                self.send_header("X-Message-Id", message_id)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return self._serve(Handler)

    # -- internals --------------------------------------------------------------------------------

    def _decide(self, auth: str | None, body) -> tuple[int, dict]:
        if auth != f"Bearer {self.api_key}":
            return 401, {}
        with self.lock:
            if self._fail_queue:
                return self._fail_queue.pop(0)
            if self._fail_fraction:
                fraction, status, rng = self._fail_fraction
                if rng.random() < fraction:
                    return status, {}
        to = (
            [t.get("email") for p in (body.get("personalizations") or []) for t in (p.get("to") or [])]
            if isinstance(body, dict)
            else []
        )
        refused = [e for e in to if e in self._refuse]
        if refused:
            return 400, _errors(("personalizations.0.to.0.email", f"The recipient {refused[0]} is on the bounce list."))
        return 0, {}
