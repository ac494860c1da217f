"""email: rendered messages as .eml files (outbox) or through SendGrid's v3 API (--send).

The SendGrid provider uses the official `sendgrid` client (SendGridAPIClient pointed at
RELANCE_SENDGRID_HOST), one request per message (each message has its own text), with:
* HTML and text parts, `custom_args` delivery_id and action_id (to find a message in SendGrid's
  activity feed), the stage as category, the formal notice's PDF attached to its email copy,
  optional sandbox mode;
* 429 and 5xx retried with exponential back-off, waiting until X-RateLimit-Reset / Retry-After
  when SendGrid says so; other 4xx → `failed` with SendGrid's own error messages;
* 401/403 (the key is refused) → nothing of the batch is sent and the deliveries stay `planned`;
* a timeout or a connection cut after the request was written → `in_doubt` (it may have gone);
* `sent` only on SendGrid's documented success: 202 with an `X-Message-Id` (kept as
  provider_message_id), or — with sandbox mode on, and only then — 200 (validated, not delivered);
* redirects are never followed (the request carries the API key): a 3xx → `failed` with where it
  pointed, and the rest of the batch is not attempted (stays `planned`): RELANCE_SENDGRID_HOST is
  wrong;
* any other 2xx (a `200 text/html` welcome page, a 202 without `X-Message-Id`) → `in_doubt`:
  something answered "OK" and may have taken the message, so it is never re-sent by itself; a
  person checks and settles it with `relance resolve`; the rest of the batch is not attempted.
Addresses are checked before anything is rendered (valid_email): SendGrid's client raises on a
malformed address, and an address it would refuse never reaches it — the delivery falls back to
a letter as if there were no email (tasks.dispatch.__init__.check_contacts).

Every email sent is also written as an .eml file under the outbox (the evidence of what went).
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.message import Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from pathlib import Path

from relance.core.emails import valid_email
from relance.core.retry import header_value, retry_wait
from relance.core.urls import origin_label
from tasks.dispatch.config import EmailCfg
from tasks.dispatch.ledger import Result, naive_utc
from tasks.dispatch.render import f_oneline


@dataclass
class OutgoingEmail:
    delivery_id: str
    action_id: str
    stage: str
    to_email: str
    to_name: str
    subject: str
    text: str
    html: str
    attachment: tuple[str, bytes] | None = None  # (file name, PDF bytes)
    eml_path: Path | None = None


def build_eml(msg: OutgoingEmail, cfg: EmailCfg, now: datetime) -> Message:
    """The message as an RFC 5322 email: text and HTML alternatives, the PDF attached if any.

    Built with the email.mime classes (compat32): the same MIME structure as EmailMessage
    (multipart/alternative, inside multipart/mixed when a PDF is attached), at a sixth of the
    cost — header folding under the default policy took ~7 ms a message.
    """
    domain = cfg.from_email.rsplit("@", 1)[-1]
    body = MIMEMultipart("alternative")
    body.attach(MIMEText(msg.text, "plain", "utf-8"))
    body.attach(MIMEText(msg.html, "html", "utf-8"))
    if msg.attachment:
        name, data = msg.attachment
        m: Message = MIMEMultipart("mixed")
        m.attach(body)
        part = MIMEApplication(data, "pdf")
        part.add_header("Content-Disposition", "attachment", filename=name)
        m.attach(part)
    else:
        m = body
    m["From"] = formataddr((f_oneline(cfg.from_name), cfg.from_email), charset="utf-8")
    m["To"] = formataddr((f_oneline(msg.to_name), msg.to_email), charset="utf-8")
    if cfg.reply_to:
        m["Reply-To"] = cfg.reply_to
    m["Subject"] = Header(f_oneline(msg.subject), "utf-8")
    m["Date"] = format_datetime(now if now.tzinfo else now.replace(tzinfo=UTC))
    m["Message-ID"] = f"<{re.sub(r'[^A-Za-z0-9._-]', '_', msg.delivery_id)}@{domain}>"
    m["X-Relance-Delivery-Id"] = Header(msg.delivery_id, "utf-8")
    m["X-Relance-Action-Id"] = Header(msg.action_id, "utf-8")
    m["X-Relance-Stage"] = msg.stage
    return m


def write_eml(msg: OutgoingEmail, cfg: EmailCfg, now: datetime) -> Path:
    assert msg.eml_path is not None
    data = build_eml(msg, cfg, now).as_bytes()
    tmp = msg.eml_path.with_suffix(".eml.tmp")
    tmp.write_bytes(data)
    tmp.replace(msg.eml_path)
    return msg.eml_path


class OutboxEmail:
    """Without --send: each message becomes an .eml file; that is its sending."""

    name = "outbox"

    def __init__(self, cfg: EmailCfg, now: datetime):
        self.cfg, self.now = cfg, now

    def send(self, batch: list[OutgoingEmail]) -> list[Result]:
        out = []
        for msg in batch:
            path = write_eml(msg, self.cfg, self.now)
            out.append(
                Result(
                    msg.delivery_id,
                    "sent",
                    self.name,
                    provider_message_id=f"outbox:{msg.delivery_id}",
                    artifact_path=str(path),
                    sent_at=self.now,
                )
            )
        return out


def sendgrid_body(msg: OutgoingEmail, cfg: EmailCfg) -> dict:
    """The v3 /mail/send request body, built with the official helpers."""
    from sendgrid.helpers.mail import (
        Attachment,
        Category,
        CustomArg,
        Disposition,
        Email,
        FileContent,
        FileName,
        FileType,
        Mail,
        MailSettings,
        ReplyTo,
        SandBoxMode,
        To,
    )

    mail = Mail(
        from_email=Email(cfg.from_email, f_oneline(cfg.from_name) or None),
        to_emails=To(msg.to_email, f_oneline(msg.to_name) or None),
        subject=f_oneline(msg.subject),
        plain_text_content=msg.text,
        html_content=msg.html,
    )
    if cfg.reply_to:
        mail.reply_to = ReplyTo(cfg.reply_to)
    mail.custom_arg = [CustomArg("delivery_id", msg.delivery_id), CustomArg("action_id", msg.action_id)]
    mail.category = Category(msg.stage)
    if msg.attachment:
        name, data = msg.attachment
        mail.attachment = Attachment(
            FileContent(base64.b64encode(data).decode("ascii")),
            FileName(name),
            FileType("application/pdf"),
            Disposition("attachment"),
        )
    if cfg.sandbox:
        settings = MailSettings()
        settings.sandbox_mode = SandBoxMode(True)
        mail.mail_settings = settings
    return mail.get()


def sendgrid_error(err) -> str:
    """SendGrid's own words for a refused request: '400 Bad Request: field: message; …'."""
    status = getattr(err, "status_code", "?")
    reason = getattr(err, "reason", "") or ""
    body = getattr(err, "body", b"") or b""
    try:
        data = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
        parts = []
        for e in data.get("errors", []):
            field = e.get("field")
            parts.append(f"{field}: {e.get('message')}" if field else str(e.get("message")))
        detail = "; ".join(parts) or json.dumps(data)[:500]
    except Exception:
        detail = (body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body))[:500]
    return f"SendGrid {status} {reason}: {detail}".strip()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx is returned to the caller as an HTTPError: never re-sent elsewhere with the key."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


@functools.cache
def _no_redirect_client() -> type:
    import python_http_client

    class NoRedirectClient(python_http_client.Client):
        """python_http_client.Client (the official client's transport) minus redirect following."""

        def _build_client(self, name=None):  # client.mail.send … keep this class
            client = super()._build_client(name)
            client.__class__ = type(self)
            return client

        def _make_request(self, opener, request, timeout=None):
            return super()._make_request(urllib.request.build_opener(_NoRedirect), request, timeout=timeout)

    return NoRedirectClient


def sendgrid_client(api_key: str, host: str):
    """The official SendGridAPIClient, whose requests never follow a redirect (they carry the key)."""
    from sendgrid import SendGridAPIClient

    client = SendGridAPIClient(api_key=api_key, host=host)
    client.client.__class__ = _no_redirect_client()
    return client


def _content_type(headers) -> str:
    return (header_value(headers, "Content-Type") or "no content type").split(";")[0].strip()


def _certainly_not_sent(exc: BaseException) -> bool:
    """Errors raised before the request could reach SendGrid (nothing can have been accepted)."""
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, (ConnectionRefusedError, socket.gaierror)) or isinstance(
        exc, (ConnectionRefusedError, socket.gaierror)
    )


class SendGridEmail:
    """With --send: the official client against SendGrid (or RELANCE_SENDGRID_HOST)."""

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        host: str,
        cfg: EmailCfg,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rate_limit: Callable[[int], None] | None = None,
    ):
        self.api_key, self.host, self.cfg = api_key, host.rstrip("/"), cfg
        self.where = origin_label(self.host)  # for messages: the host, never a path or credentials
        self.sleep = sleep
        self.rate_limit = rate_limit
        self._local = threading.local()
        self.aborted: str | None = None
        self.requests = 0

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            # its DEBUG lines print the request headers, i.e. the API key: never let them through
            logging.getLogger("python_http_client").setLevel(
                max(logging.INFO, logging.getLogger("python_http_client").level)
            )
            client = self._local.client = sendgrid_client(self.api_key, self.host)
        return client

    def send(self, batch: list[OutgoingEmail]) -> list[Result]:
        if self.rate_limit and batch:
            self.rate_limit(len(batch))
        with ThreadPoolExecutor(
            max_workers=min(self.cfg.concurrency, max(1, len(batch))), thread_name_prefix="sendgrid"
        ) as pool:
            return list(pool.map(self._send_one, batch))

    def _send_one(self, msg: OutgoingEmail) -> Result:
        from python_http_client import exceptions as http_errors

        if self.aborted:
            return Result(msg.delivery_id, "planned", self.name, error=f"not attempted: {self.aborted}")
        try:
            body = sendgrid_body(msg, self.cfg)
        except Exception as e:  # the client refuses to build it: never reaches SendGrid
            return Result(msg.delivery_id, "failed", self.name, error=f"message not built: {type(e).__name__}: {e}")
        attempt = 0
        while True:
            attempt += 1
            self.requests += 1
            try:
                response = self._client().client.mail.send.post(request_body=body, timeout=self.cfg.timeout_seconds)
            except http_errors.HTTPError as e:
                status = int(getattr(e, "status_code", 0) or 0)
                if status == 429 or status >= 500:
                    if attempt < self.cfg.max_attempts:
                        self.sleep(
                            retry_wait(
                                getattr(e, "headers", None),
                                attempt,
                                self.cfg.backoff_base_seconds,
                                self.cfg.max_backoff_seconds,
                                rate_limit_reset=True,
                            )
                        )
                        continue
                    if status == 429:  # never accepted: the next run may try again
                        return Result(
                            msg.delivery_id,
                            "planned",
                            self.name,
                            error=f"rate-limited {attempt} times; left for the next run: {sendgrid_error(e)}",
                        )
                    return Result(
                        msg.delivery_id,
                        "failed",
                        self.name,
                        error=f"gave up after {attempt} attempts: {sendgrid_error(e)}",
                    )
                if status in (401, 403):
                    self.aborted = f"SendGrid refused the API key ({sendgrid_error(e)})"
                    return Result(msg.delivery_id, "planned", self.name, error=self.aborted)
                if 300 <= status < 400:  # not SendGrid: it never redirects; the key stays here
                    target = origin_label(header_value(getattr(e, "headers", None), "Location"))
                    why = (
                        f"{self.where} answered {status}, a redirect to {target}; redirects are never followed "
                        f"with the API key (check RELANCE_SENDGRID_HOST)"
                    )
                    self.aborted = f"SendGrid host redirects: {why}"
                    return Result(msg.delivery_id, "failed", self.name, error=f"not sent: {why}")
                return Result(msg.delivery_id, "failed", self.name, error=sendgrid_error(e))
            except (TimeoutError, http.client.RemoteDisconnected, ConnectionResetError) as e:
                return Result(
                    msg.delivery_id,
                    "in_doubt",
                    self.name,
                    error=f"in doubt: no answer from SendGrid ({type(e).__name__}: {e}); check its activity "
                    f"feed for custom_args.delivery_id={msg.delivery_id}, then relance resolve",
                )
            except urllib.error.URLError as e:
                if isinstance(e.reason, (socket.timeout, TimeoutError)):
                    return Result(
                        msg.delivery_id,
                        "in_doubt",
                        self.name,
                        error=f"in doubt: SendGrid did not answer in time ({e.reason}); check its activity feed, then relance resolve",
                    )
                if _certainly_not_sent(e) and attempt < self.cfg.max_attempts:
                    self.sleep(retry_wait(None, attempt, self.cfg.backoff_base_seconds, self.cfg.max_backoff_seconds))
                    continue
                if _certainly_not_sent(e):
                    self.aborted = f"SendGrid unreachable at {self.where} ({e.reason})"
                    return Result(msg.delivery_id, "planned", self.name, error=self.aborted)
                return Result(msg.delivery_id, "in_doubt", self.name, error=f"in doubt: {type(e).__name__}: {e}")
            return self._settle(msg, response)

    def _settle(self, msg: OutgoingEmail, response) -> Result:
        """A 2xx answer: `sent` only in SendGrid's documented shape, else in doubt (never re-sent by itself)."""
        status = response.status_code
        headers = response.headers
        message_id = (header_value(headers, "X-Message-Id") or "").strip()
        if status == 202 and message_id:
            return Result(
                msg.delivery_id,
                "sent",
                self.name,
                provider_message_id=message_id,
                artifact_path=str(msg.eml_path) if msg.eml_path else None,
                sent_at=naive_utc(datetime.now(UTC)),
            )
        if status == 200 and self.cfg.sandbox and _empty_or_json(response.body):  # validated, not delivered
            return Result(
                msg.delivery_id,
                "sent",
                "sendgrid-sandbox",
                provider_message_id=message_id or f"sandbox:{msg.delivery_id}",
                artifact_path=str(msg.eml_path) if msg.eml_path else None,
                sent_at=naive_utc(datetime.now(UTC)),
            )
        shape = f"{status} {_content_type(headers)}" + ("" if message_id else " without X-Message-Id")
        self.aborted = (
            f"{self.where} does not answer like SendGrid ({shape}); nothing more sent (check RELANCE_SENDGRID_HOST)"
        )
        return Result(
            msg.delivery_id,
            "in_doubt",
            self.name,
            error=f"in doubt: {self.where} answered {shape}, not SendGrid's 202 with an X-Message-Id"
            f"{'' if self.cfg.sandbox else ' (sandbox mode is off)'}; it may have taken the message: "
            f"check SendGrid's activity feed for custom_args.delivery_id={msg.delivery_id}, "
            f"then relance resolve",
        )


def _empty_or_json(body) -> bool:
    """A sandbox-mode answer's body: SendGrid sends none (or JSON), never a web page."""
    text = body.strip() if isinstance(body, (bytes, str)) else body
    if not text:
        return True
    try:
        json.loads(text)
    except (ValueError, TypeError):
        return False
    return True


# -- the email channel's batch -----------------------------------------------------------------


def provider_for(run, *, sleep: Callable[[float], None] = time.sleep):
    """The outbox without --send; SendGrid (key from SENDGRID_API_KEY or the Secret block) with it."""
    if not run.send:
        return OutboxEmail(run.cfg.email, run.now)
    from relance.core.settings import get_settings, resolve_secret
    from tasks.dispatch.base import prefect_rate_limit

    settings = get_settings()
    key = resolve_secret(settings.sendgrid_api_key, settings.sendgrid_key_block)
    if not key:
        from relance.core.errors import UserError

        raise UserError(
            "--send: no SendGrid API key; set SENDGRID_API_KEY or the Prefect Secret block "
            f"'{settings.sendgrid_key_block}'"
        )
    return SendGridEmail(
        key,
        settings.sendgrid_host,
        run.cfg.email,
        sleep=sleep,
        rate_limit=prefect_rate_limit(run.cfg.email.prefect_rate_limit),
    )


def _attaches_letter(row: dict) -> bool:
    """The row's stage attaches its letter to its emails (policy `stages[].attach_letter`)."""
    keys = row.get("stage_keys")
    return keys is not None and keys.attach_letter


def _attachments(run, rows: list[dict]) -> dict[str, tuple[str, bytes]]:
    """The PDF of the action's letter (the formal notice) for emails of stages that attach it
    (policy `stages[].attach_letter`).

    The post channels run before email, so the letter is normally already in the outbox; if it is
    not (no postal address, failed), it is rendered now for the attachment only.
    """
    from tasks.dispatch import post
    from tasks.dispatch.ledger import file_stem, slug

    wanted = [r for r in rows if _attaches_letter(r)]
    if not wanted:
        return {}
    existing = dict(
        run.con.execute(
            """
            select action_id, any_value(artifact_path order by channel desc)
            from deliveries
            where action_id in (select unnest($ids::varchar[]))
              and channel in ('registered_letter', 'letter') and status = 'sent' and artifact_path is not null
            group by action_id
            """,
            {"ids": [r["action_id"] for r in wanted]},
        ).fetchall()
    )
    out: dict[str, tuple[str, bytes]] = {}
    for row in wanted:
        letter_row = dict(row, channel="registered_letter")
        ctx = run.context(letter_row)
        title = run.renderer.blocks(
            run.renderer.text,
            run.renderer.stage_template("registered_letter", ctx["lang"], ctx["wording"]),
            ctx,
            ("title",),
        )["title"]
        name = f"{slug(f_oneline(title).lower().replace(' ', '-'))}-{slug(row['customer_id'])}.pdf"
        path = existing.get(row["action_id"])
        if path and Path(path).is_file():
            out[row["delivery_id"]] = (name, Path(path).read_bytes())
            continue
        ctx.update(anchor="L0", formal=True)
        tmp = run.channel_dir("email") / f".{file_stem(row['delivery_id'])}.attachment.pdf"
        post.render_chunk(post.letter_css(run.renderer), [("L0", run.renderer.letter(ctx), str(tmp))], None)
        out[row["delivery_id"]] = (name, tmp.read_bytes())
        tmp.unlink(missing_ok=True)
    return out


def run_batch(run, rows: list[dict], *, sleep: Callable[[float], None] = time.sleep) -> dict:
    from tasks.dispatch.base import counts, deliver, fail_before_claim
    from tasks.dispatch.ledger import check_artifacts, file_stem

    folder = run.channel_dir("email")
    failures: list[tuple[str, str]] = []
    try:
        attachments = _attachments(run, rows)
    except Exception as e:  # the letter cannot be rendered: those emails fail, the others go
        attachments = {}
        failures += [
            (r["delivery_id"], f"attachment not rendered: {type(e).__name__}: {e}") for r in rows if _attaches_letter(r)
        ]
    failed_ids = {d for d, _ in failures}
    items: list[OutgoingEmail] = []
    for row in rows:
        if row["delivery_id"] in failed_ids:
            continue
        if not valid_email(row.get("email")):
            failures.append((row["delivery_id"], f"email address {row.get('email')!r} is not valid"))
            continue
        try:
            ctx = run.context(row)
            rendered = run.renderer.email(ctx)
        except Exception as e:
            failures.append((row["delivery_id"], f"rendering failed: {type(e).__name__}: {e}"))
            continue
        items.append(
            OutgoingEmail(
                delivery_id=row["delivery_id"],
                action_id=row["action_id"],
                stage=row["stage"],
                to_email=row["email"],
                to_name=row.get("name") or "",
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                attachment=attachments.get(row["delivery_id"]),
                eml_path=folder / f"{file_stem(row['delivery_id'])}.eml",
            )
        )
    clashes = check_artifacts(run.con, {m.delivery_id: str(m.eml_path) for m in items})
    if clashes:
        failures += clashes
        clashed = {d for d, _ in clashes}
        items = [m for m in items if m.delivery_id not in clashed]
    results = fail_before_claim(run, failures)
    provider = provider_for(run, sleep=sleep)
    if run.send:  # the evidence copy of what is handed to SendGrid
        for msg in items:
            write_eml(msg, run.cfg.email, run.now)
        chunk = run.cfg.email.concurrency * 4
    else:
        chunk = len(items)
    results += deliver(run, "email", items, provider, chunk)
    return {
        "counts": counts(results),
        "aborted": getattr(provider, "aborted", None),
        "requests": getattr(provider, "requests", 0),
    }
