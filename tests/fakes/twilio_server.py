"""A Twilio-compatible Messages API on loopback, for tests.

POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded, HTTP basic auth
(AccountSid, AuthToken), like https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource:
* 401 (code 20003) on bad credentials or another account's path;
* 400 code 21211 when To is not E.164, 21604 without To, 21602 without Body, 21603 without From
  nor MessagingServiceSid, 21617 when Body exceeds 1600 characters;
* 201 with the message JSON (sid "SM…", status "queued", num_segments as Twilio counts them).
It can answer 429 (with Retry-After) or 5xx for the next N requests, and records accepted messages.
Standing for a misconfigured RELANCE_SMS_BASE_URL: `redirect_to(url)` answers every request 302 to
`url`, `answer_with(...)` a fixed response (a `200 text/html` page, JSON without a sid).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from base64 import b64decode
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.fakes.loopback import LoopbackFake

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class FakeTwilio(LoopbackFake):
    account_sid: str = "AC" + "0123456789abcdef" * 2
    auth_token: str = "twilio-test-token"
    accepted: list[dict] = field(default_factory=list)
    requests: list[tuple[float, int, str | None]] = field(default_factory=list)
    _fail_queue: list[tuple[int, dict]] = field(default_factory=list)
    canned: tuple[int, dict, bytes] | None = None  # (status, headers, body) answered to every request

    def __post_init__(self):
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def fail_next(self, n: int, status: int = 429, retry_after: float | None = 0.05) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self.lock:
            self._fail_queue += [(status, headers)] * n

    def answer_with(self, status: int, headers: dict | None = None, body: bytes = b"") -> None:
        self.canned = (status, dict(headers or {}), body)

    def redirect_to(self, url: str, status: int = 302) -> None:
        self.answer_with(status, {"Location": url, "Content-Type": "text/html"}, b"<html>Moved</html>")

    def bodies(self) -> list[str]:
        return [m["body"] for m in self.accepted]

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: int, message: str, headers: dict | None = None):
                fake._log(status, None)
                self._reply(
                    status,
                    {
                        "code": code,
                        "message": message,
                        "more_info": f"https://www.twilio.com/docs/errors/{code}",
                        "status": status,
                    },
                    headers,
                )

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {
                    k: v[0]
                    for k, v in parse_qs(self.rfile.read(length).decode("utf-8"), keep_blank_values=True).items()
                }
                if fake.canned is not None:
                    status, headers, data = fake.canned
                    fake._log(status, form.get("To"))
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                auth = self.headers.get("Authorization", "")
                try:
                    user, _, password = b64decode(auth.removeprefix("Basic ")).decode().partition(":")
                except Exception:
                    user = password = ""
                expected = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
                if (user, password) != (fake.account_sid, fake.auth_token) or self.path != expected:
                    return self._error(401, 20003, "Authenticate")
                with fake.lock:
                    queued = fake._fail_queue.pop(0) if fake._fail_queue else None
                if queued:
                    status, headers = queued
                    return self._error(status, 20429 if status == 429 else 20500, "simulated failure", headers)
                to, body = form.get("To"), form.get("Body")
                if not to:
                    return self._error(400, 21604, "A 'To' phone number is required.")
                if not E164.match(to):
                    return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
                if not body:
                    return self._error(400, 21602, "Message body is required.")
                if len(body) > 1600:
                    return self._error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
                if not (form.get("From") or form.get("MessagingServiceSid")):
                    return self._error(400, 21603, "A 'From' phone number is required.")
                sid = "SM" + uuid.uuid4().hex
                gsm = all(c in _GSM for c in body)
                units = sum(2 if c in _GSM_EXT else 1 for c in body) if gsm else len(body.encode("utf-16-le")) // 2
                single, per = (160, 153) if gsm else (70, 67)
                segments = 1 if units <= single else -(-units // per)
                message = {
                    "sid": sid,
                    "account_sid": fake.account_sid,
                    "to": to,
                    "from": form.get("From"),
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": body,
                    "status": "queued",
                    "num_segments": str(segments),
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                    "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
                }
                with fake.lock:
                    fake.accepted.append(message)
                fake._log(201, to)
                self._reply(201, message)

        return self._serve(Handler)


_GSM = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€\f"
)
_GSM_EXT = set("^{}\\[~]|€\f")
