"""sms: short reminders through a Twilio-compatible REST API (requests), or .txt files (outbox).

* Length: GSM-7 (160 characters in one SMS, 153 per part when concatenated; ^{}\\[~]|€ count
  twice) unless a character is outside GSM-7, then UCS-2 (70, or 67 per part). Typographic
  spaces and quotes are normalised, and — `sms.transliterate` in templates/channels.yaml —
  accented letters GSM-7 lacks become plain ones (ê → e), so French fits in GSM-7. A message
  longer than `sms.max_segments` parts is not sent (failed, "too long").
* Quiet hours (with --send): never before 08:00 or after 20:00 in any time zone of the customer's
  country, never on Sundays nor on its public holidays (`holidays`, country level). Such an SMS
  is *deferred*: it stays `planned` and the next run that falls in the window sends it. The
  clock is the `now` argument of dispatch, so tests are deterministic.
* Gateway: POST {base}/2010-04-01/Accounts/{sid}/Messages.json (form: To, From or
  MessagingServiceSid, Body) with HTTP basic auth (sid, token). `sent` only on the API's
  documented success: a 2xx JSON message with its `sid` (kept as provider_message_id); 429/5xx
  retried with back-off (Retry-After honoured); other 4xx → `failed` with the gateway's code and
  message; 401/403 → nothing more is sent, deliveries stay `planned`; timeout → `in_doubt`.
  Redirects are never followed (the request carries the credentials): a 3xx → `failed` with where
  it pointed. Any other 2xx (a `200 text/html` page, JSON without a `sid`) → `in_doubt`: something
  answered "OK" and may have taken the message, so it is never re-sent by itself (a person settles
  it with `relance resolve`). After a 3xx or such a 2xx the rest of the batch is not attempted
  (stays `planned`): RELANCE_SMS_BASE_URL is wrong.
Settings (environment, prefix RELANCE_SMS_): BASE_URL (default https://api.twilio.com),
ACCOUNT_SID, AUTH_TOKEN (or the Prefect Secret block "relance-sms-auth-token"),
MESSAGING_SERVICE_SID (optional, instead of the sender of channels.yaml).
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from relance.core import phones
from relance.core.retry import retry_wait
from relance.core.settings import Settings
from relance.core.urls import origin_label
from tasks.calendar import holiday_name
from tasks.dispatch.config import WEEKDAYS, SmsCfg
from tasks.dispatch.ledger import Result, naive_utc

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = "^{}\\[~]|€\f"
_BASIC = frozenset(GSM7_BASIC)
_EXT = frozenset(GSM7_EXTENDED)

#: Always applied: typographic spaces, quotes and dashes have plain equivalents.
_NORMALISE = {
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
    "\u2007": " ",
    "\u2002": " ",
    "\u2003": " ",
    "\u2019": "'",
    "\u2018": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u2022": "-",
}
#: With sms.transliterate: letters GSM-7 lacks.
_TRANSLIT = {"œ": "oe", "Œ": "OE", "æ": "ae", "ç": "c", "ß": "ss"}


def normalise(text: str, transliterate: bool) -> str:
    out = []
    for ch in text:
        ch = _NORMALISE.get(ch, ch)
        if transliterate and len(ch) == 1 and ch not in _BASIC and ch not in _EXT:
            if ch in _TRANSLIT:
                ch = _TRANSLIT[ch]
            else:
                base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
                if base and all(c in _BASIC or c in _EXT for c in base):
                    ch = base
        out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    parts: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.parts)


def is_gsm7(text: str) -> bool:
    return all(c in _BASIC or c in _EXT for c in text)


def segment(text: str) -> Segments:
    """How the network carries `text`: encoding, length in units, and the parts of a long message.

    An escaped GSM-7 character (2 septets) and a UTF-16 surrogate pair are never split across parts.
    """
    if is_gsm7(text):
        sizes = [2 if c in _EXT else 1 for c in text]
        single, per_part, encoding = 160, 153, "GSM-7"
    else:
        sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
        single, per_part, encoding = 70, 67, "UCS-2"
    units = sum(sizes)
    if units <= single:
        return Segments(encoding, units, (text,) if text else ())
    parts, current, used = [], [], 0
    for ch, size in zip(text, sizes):
        if used + size > per_part:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += size
    if current:
        parts.append("".join(current))
    return Segments(encoding, units, tuple(parts))


# -- quiet hours -------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def country_zones(country: str) -> tuple[ZoneInfo, ...]:
    from babel.core import get_global

    zones = []
    for name in get_global("territory_zones").get((country or "FR").upper(), []):
        try:
            zones.append(ZoneInfo(name))
        except Exception:
            continue
    return tuple(zones) or (ZoneInfo("Europe/Paris"),)


def quiet_reason(now: datetime, country: str | None, cfg: SmsCfg) -> str | None:
    """Why an SMS may not go at `now` to someone in `country` (None: it may)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    country = (country or "FR").upper()
    start, end = cfg.minutes("window_start"), cfg.minutes("window_end")
    for zone in country_zones(country):
        local = now.astimezone(zone)
        minutes = local.hour * 60 + local.minute
        if not start <= minutes < end:
            return f"outside {cfg.window_start}–{cfg.window_end} in {zone.key} ({local:%H:%M})"
        weekday = WEEKDAYS[local.weekday()]
        if weekday in cfg.no_send_weekdays:
            return f"{weekday} in {zone.key}"
        if cfg.skip_public_holidays:
            name = holiday_name(country, local.date())
            if name:
                return f"public holiday in {country}: {name} ({local.date().isoformat()})"
    return None


# -- providers ---------------------------------------------------------------------------------


def gateway_token() -> str | None:
    """The SMS gateway's auth token when the gateway is configured (an account and a token), else None."""
    from relance.core.settings import get_settings, resolve_secret

    s = get_settings()
    token = resolve_secret(s.sms_auth_token, s.sms_auth_token_block)
    return token if s.sms_account_sid and token else None


@dataclass
class OutgoingSms:
    delivery_id: str
    action_id: str
    to: str
    body: str
    segments: Segments
    txt_path: Path | None = None


def write_txt(msg: OutgoingSms, now: datetime) -> Path:
    assert msg.txt_path is not None
    header = (
        f"To: {msg.to}\nDelivery: {msg.delivery_id}\nAction: {msg.action_id}\n"
        f"Date: {now.isoformat()}\nEncoding: {msg.segments.encoding}, {msg.segments.units} units, "
        f"{msg.segments.count} part(s)\n\n"
    )
    tmp = msg.txt_path.with_suffix(".txt.tmp")
    tmp.write_text(header + msg.body + "\n", encoding="utf-8")
    tmp.replace(msg.txt_path)
    return msg.txt_path


class OutboxSms:
    name = "outbox"

    def __init__(self, now: datetime):
        self.now = now

    def send(self, batch: list[OutgoingSms]) -> list[Result]:
        return [
            Result(
                m.delivery_id,
                "sent",
                self.name,
                provider_message_id=f"outbox:{m.delivery_id}",
                artifact_path=str(write_txt(m, self.now)),
                sent_at=self.now,
                extra={"segments": m.segments.count},
            )
            for m in batch
        ]


class TwilioSms:
    """A Twilio-compatible Messages API through requests."""

    name = "sms"

    def __init__(
        self, settings: Settings, token: str, sender: str, cfg: SmsCfg, *, sleep: Callable[[float], None] = time.sleep
    ):
        self.settings, self.token, self.sender, self.cfg, self.sleep = settings, token, sender, cfg, sleep
        self.url = f"{settings.sms_base_url.rstrip('/')}/2010-04-01/Accounts/{settings.sms_account_sid}/Messages.json"
        self._local = threading.local()
        self.aborted: str | None = None

    def _session(self):
        import requests

        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.auth = (self.settings.sms_account_sid or "", self.token)
        return s

    def send(self, batch: list[OutgoingSms]) -> list[Result]:
        with ThreadPoolExecutor(
            max_workers=min(self.cfg.concurrency, max(1, len(batch))), thread_name_prefix="sms"
        ) as pool:
            return list(pool.map(self._send_one, batch))

    def _send_one(self, msg: OutgoingSms) -> Result:
        import requests

        if self.aborted:
            return Result(msg.delivery_id, "planned", self.name, error=f"not attempted: {self.aborted}")
        data = {"To": msg.to, "Body": msg.body}
        if self.settings.sms_messaging_service_sid:
            data["MessagingServiceSid"] = self.settings.sms_messaging_service_sid
        else:
            data["From"] = self.sender
        attempt = 0
        while True:
            attempt += 1
            try:
                r = self._session().post(
                    self.url, data=data, timeout=(5, self.cfg.timeout_seconds), allow_redirects=False
                )
            except requests.ConnectionError as e:
                # Refused before anything was written? Then certainly not sent; otherwise unknown.
                text = str(e)
                if (
                    "Connection refused" in text or "Name or service not known" in text
                ) and attempt < self.cfg.max_attempts:
                    self.sleep(retry_wait(None, attempt, self.cfg.backoff_base_seconds, self.cfg.max_backoff_seconds))
                    continue
                if "Connection refused" in text or "Name or service not known" in text:
                    self.aborted = f"SMS gateway unreachable ({text[:200]})"
                    return Result(msg.delivery_id, "planned", self.name, error=self.aborted)
                return Result(
                    msg.delivery_id, "in_doubt", self.name, error=f"in doubt: {type(e).__name__}: {text[:300]}"
                )
            except requests.Timeout as e:
                return Result(
                    msg.delivery_id,
                    "in_doubt",
                    self.name,
                    error=f"in doubt: the SMS gateway did not answer in time ({e}); check it, then relance resolve",
                )
            if 200 <= r.status_code < 300:
                return self._settle(msg, r)
            if 300 <= r.status_code < 400:  # a Twilio-compatible API never redirects; the credentials stay here
                why = (
                    f"{origin_label(self.url)} answered {r.status_code}, a redirect to "
                    f"{origin_label(r.headers.get('Location'))}; redirects are never followed with the "
                    f"credentials (check RELANCE_SMS_BASE_URL)"
                )
                self.aborted = f"the SMS gateway redirects: {why}"
                return Result(msg.delivery_id, "failed", self.name, error=f"not sent: {why}")
            error = _gateway_error(r)
            if r.status_code == 429 or r.status_code >= 500:
                if attempt < self.cfg.max_attempts:
                    self.sleep(
                        retry_wait(r.headers, attempt, self.cfg.backoff_base_seconds, self.cfg.max_backoff_seconds)
                    )
                    continue
                status = "planned" if r.status_code == 429 else "failed"
                return Result(msg.delivery_id, status, self.name, error=f"gave up after {attempt} attempts: {error}")
            if r.status_code in (401, 403):
                self.aborted = f"the SMS gateway refused our credentials ({error})"
                return Result(msg.delivery_id, "planned", self.name, error=self.aborted)
            return Result(msg.delivery_id, "failed", self.name, error=error)

    def _settle(self, msg: OutgoingSms, r) -> Result:
        """A 2xx answer: `sent` only as a JSON message with its sid, else in doubt (never re-sent by itself)."""
        try:
            data = r.json()
        except ValueError:
            data = None
        sid = data.get("sid") if isinstance(data, dict) else None
        if isinstance(sid, str) and sid.strip():
            return Result(
                msg.delivery_id,
                "sent",
                self.name,
                provider_message_id=sid.strip(),
                artifact_path=str(msg.txt_path) if msg.txt_path else None,
                sent_at=naive_utc(datetime.now(UTC)),
                extra={"segments": msg.segments.count},
            )
        content_type = (r.headers.get("Content-Type") or "no content type").split(";")[0].strip()
        shape = f"{r.status_code} {content_type}" + (", JSON without a message sid" if data is not None else "")
        where = origin_label(self.url)
        self.aborted = (
            f"{where} does not answer like the SMS API ({shape}); nothing more sent (check RELANCE_SMS_BASE_URL)"
        )
        return Result(
            msg.delivery_id,
            "in_doubt",
            self.name,
            error=f"in doubt: {where} answered {shape}, not a message with its sid; it may have taken "
            f"the message: check the gateway's message log, then relance resolve",
        )


def _gateway_error(r) -> str:
    try:
        data = r.json()
        return f"SMS gateway {r.status_code}: {data.get('code', '')} {data.get('message', '')}".strip()
    except ValueError:
        return f"SMS gateway {r.status_code}: {r.text[:300]}"


# -- the SMS channel's batch -------------------------------------------------------------------


def provider_for(run, *, sleep: Callable[[float], None] = time.sleep):
    if not run.send:
        return OutboxSms(run.now_naive)
    from relance.core.errors import UserError
    from relance.core.settings import get_settings

    token = gateway_token()
    if not token:
        raise UserError(
            "--send: the SMS gateway is not configured; set RELANCE_SMS_ACCOUNT_SID and "
            "RELANCE_SMS_AUTH_TOKEN (and RELANCE_SMS_BASE_URL for a non-Twilio gateway)"
        )
    return TwilioSms(get_settings(), token, run.cfg.sms.sender, run.cfg.sms, sleep=sleep)


def run_batch(run, rows: list[dict], *, sleep: Callable[[float], None] = time.sleep) -> dict:
    from tasks.dispatch import ledger
    from tasks.dispatch.base import counts, deliver, fail_before_claim

    cfg = run.cfg.sms
    folder = run.channel_dir("sms")
    failures: list[tuple[str, str]] = []
    deferred: list[dict] = []
    items: list[OutgoingSms] = []
    for row in rows:
        if run.send:
            why = quiet_reason(run.now, row.get("country"), cfg)
            if why:
                deferred.append({"delivery_id": row["delivery_id"], "status": "planned", "detail": f"deferred: {why}"})
                continue
        try:
            body = normalise(run.renderer.sms(run.context(row)), cfg.transliterate)
        except Exception as e:
            failures.append((row["delivery_id"], f"rendering failed: {type(e).__name__}: {e}"))
            continue
        parts = segment(body)
        if parts.count > cfg.max_segments:
            failures.append(
                (
                    row["delivery_id"],
                    f"too long: {parts.count} {parts.encoding} parts "
                    f"({parts.units} units) > sms.max_segments {cfg.max_segments}",
                )
            )
            continue
        no_sms = phones.sms_problem(row.get("phone"))  # a mobile only (relance.core.phones)
        if no_sms:
            failures.append((row["delivery_id"], no_sms))
            continue
        items.append(
            OutgoingSms(
                row["delivery_id"],
                row["action_id"],
                row["phone"],
                body,
                parts,
                folder / f"{ledger.file_stem(row['delivery_id'])}.txt",
            )
        )
    clashes = ledger.check_artifacts(run.con, {m.delivery_id: str(m.txt_path) for m in items})
    if clashes:
        failures += clashes
        clashed = {d for d, _ in clashes}
        items = [m for m in items if m.delivery_id not in clashed]
    results = fail_before_claim(run, failures)
    if deferred:  # stays planned; the note says why and until when it waits
        ledger.transition(run.con, deferred, actor="dispatch", now=run.now_naive)
    provider = provider_for(run, sleep=sleep)
    if run.send:
        for m in items:
            write_txt(m, run.now_naive)
    results += deliver(run, "sms", items, provider, cfg.concurrency * 4 if run.send else len(items))
    out = counts(results)
    if deferred:
        out["deferred"] = len(deferred)
    return {
        "counts": out,
        "aborted": getattr(provider, "aborted", None),
        "segments": sum(m.segments.count for m in items),
    }
