"""Provider events into the ledger: what SendGrid and the SMS gateway learn after they accepted a message.

Two halves, joined by a journal of plain files:

* **the receiver** (`relance events serve`, `make_server`) — a small threaded HTTP server. It
  checks each request's signature (SendGrid: ECDSA P-256 / SHA-256 over timestamp + raw body,
  public key from SENDGRID_WEBHOOK_PUBLIC_KEY or the Prefect Secret block
  "sendgrid-webhook-public-key"; SMS: X-Twilio-Signature, HMAC-SHA1 of URL + sorted parameters
  with the gateway's auth token), refuses anything unsigned, tampered, stale or replayed (403)
  and bodies over the size limit (413), and appends each verified event as one JSON line to
  `<journal>/events-YYYY-MM-DD.jsonl` (UTC day), flushed and fsync'd before it answers 2xx.
  It never opens the DuckDB file the nightly run holds.
* **apply** (`relance events apply`, the start of each nightly run; `relance events import`
  for a saved JSON array) — loads journal lines into the ledger in one transaction:
  `delivery_events` rows (actor `sendgrid` / `sms`, keyed by `event_key`, so a duplicated,
  replayed or re-applied event is a no-op), `deliveries.delivery_state` (the highest state by
  precedence among all its events, whatever order they came in), `contact_flags` (a hard bounce
  or drop: the email is bad; unsubscribe / spam report: opted out of preventive emails), the
  letter re-sent for a bounced or dropped email (a new delivery `<action_id>|letter` with
  `fallback_from` = the email's delivery id, planned for the next dispatch — once), and
  `unmatched_events` for events whose delivery relance does not know (matched again at each apply).

Journal files are read whole at each apply (events already loaded are skipped by key); an
operator may archive files older than the last successful apply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pyarrow as pa

from relance.core.errors import UserError
from tasks.step import get_logger, step

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"

SENDGRID_PATH = "/sendgrid/events"
SMS_PATH = "/sms/status"

#: delivery_state precedence: a later event never lowers what an earlier one proved.
STATE_RANK = {"accepted": 1, "delivered": 2, "undelivered": 3, "bounced": 4, "dropped": 4, "complained": 5}
#: SendGrid event → delivery_state (bounce is split by its `type`: "blocked" is a soft bounce).
SENDGRID_STATE = {
    "processed": "accepted",
    "deferred": "accepted",
    "delivered": "delivered",
    "open": "delivered",
    "click": "delivered",
    "unsubscribe": "delivered",
    "group_unsubscribe": "delivered",
    "group_resubscribe": "delivered",
    "bounce": "bounced",
    "dropped": "dropped",
    "spamreport": "complained",
}
#: Twilio MessageStatus → delivery_state.
SMS_STATE = {
    "queued": "accepted",
    "accepted": "accepted",
    "sending": "accepted",
    "sent": "accepted",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "undelivered",
}
OPT_OUT_EVENTS = ("unsubscribe", "group_unsubscribe", "spamreport")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# -- signatures ----------------------------------------------------------------------------------


def load_sendgrid_key(public_key_b64: str):
    """SendGrid's verification key as shown in its settings: base64 of the DER public key."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(base64.b64decode(public_key_b64.strip(), validate=True))
    except Exception:
        raise UserError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key "
            "(copy the verification key from SendGrid's Event Webhook settings)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UserError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an elliptic-curve (ECDSA) public key")
    return key


def verify_sendgrid(key, signature_b64: str, timestamp: str, body: bytes) -> bool:
    """True when `signature_b64` is the ECDSA/SHA-256 signature of timestamp + body."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's request signature: base64 HMAC-SHA1 of the URL followed by each key+value, keys sorted."""
    payload = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()).decode()


# -- the journal ---------------------------------------------------------------------------------


class Journal:
    """Append-only JSONL files, one per UTC day; a line is on disk (fsync) before append returns."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def path_for(self, day: date) -> Path:
        return self.folder / f"events-{day.isoformat()}.jsonl"

    def append(self, source: str, events: Iterable[dict[str, Any]]) -> int:
        received = utcnow()
        lines = "".join(
            json.dumps(
                {"source": source, "received_at": received.isoformat(), "event": e},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            + "\n"
            for e in events
        )
        if not lines:
            return 0
        data = lines.encode("utf-8")
        with self._lock:
            fd = os.open(self.path_for(received.date()), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a line torn by a crash stays alone on its line (and is skipped)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        return lines.count("\n")


def read_journal(folder: str | Path) -> list[dict[str, Any]]:
    """Every complete line of every journal file (a last line cut short by a crash is left for later)."""
    records: list[dict[str, Any]] = []
    for path in sorted(Path(folder).glob("events-*.jsonl")):
        text = path.read_text(encoding="utf-8")
        for line in text.split("\n")[:-1] if not text.endswith("\n") else text.split("\n"):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn line: the receiver died mid-write; the event was never acknowledged
    return records


# -- the receiver --------------------------------------------------------------------------------


class ReceiverConfig:
    def __init__(
        self,
        journal: Journal,
        *,
        sendgrid_key=None,
        sms_token: str | None = None,
        max_age_s: float = 300.0,
        max_body: int = 1_048_576,
        public_url: str | None = None,
    ):
        self.journal, self.sendgrid_key, self.sms_token = journal, sendgrid_key, sms_token
        self.max_age_s, self.max_body, self.public_url = max_age_s, max_body, public_url
        self._seen: dict[str, float] = {}  # signatures accepted within the window: a replay is refused
        self._seen_lock = threading.Lock()
        self.accepted = 0

    def first_time(self, signature: str, now: float) -> bool:
        with self._seen_lock:
            if len(self._seen) > 10_000:
                for s in [s for s, t in self._seen.items() if t < now - self.max_age_s]:
                    del self._seen[s]
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True


class _Handler(BaseHTTPRequestHandler):
    server_version = "relance-events"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a connection may stay silent (a slow or idle client frees its thread)

    def log_message(self, fmt, *args):  # quiet: no request bodies or signatures in logs
        pass

    def _answer(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer(200 if self.path == "/health" else 404, "ok" if self.path == "/health" else "not found")

    def do_POST(self):
        cfg: ReceiverConfig = self.server.cfg  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        if path not in (SENDGRID_PATH, SMS_PATH):
            return self._answer(404, "not found")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            return self._answer(411, "length required")
        if length < 0 or length > cfg.max_body:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            return self._answer(413, f"body over {cfg.max_body} bytes")
        body = self.rfile.read(length)
        if path == SENDGRID_PATH:
            return self._sendgrid(cfg, body)
        return self._sms(cfg, body)

    def _sendgrid(self, cfg: ReceiverConfig, body: bytes):
        if cfg.sendgrid_key is None:
            return self._answer(503, "no SendGrid verification key configured")
        signature, stamp = self.headers.get(SENDGRID_SIGNATURE), self.headers.get(SENDGRID_TIMESTAMP)
        if not signature or not stamp:
            return self._answer(403, "unsigned")
        now = time.time()
        try:
            age = now - int(stamp)
        except ValueError:
            return self._answer(403, "bad timestamp")
        if abs(age) > cfg.max_age_s:
            return self._answer(403, "stale timestamp")
        if not verify_sendgrid(cfg.sendgrid_key, signature, stamp, body):
            return self._answer(403, "bad signature")
        if not cfg.first_time(signature, now):
            return self._answer(403, "replayed")
        try:
            events = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._answer(400, "not JSON")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            return self._answer(400, "expected a JSON array of events")
        cfg.accepted += cfg.journal.append("sendgrid", events)
        return self._answer(200, "ok")

    def _sms(self, cfg: ReceiverConfig, body: bytes):
        if not cfg.sms_token:
            return self._answer(503, "no SMS auth token configured")
        signature = self.headers.get(TWILIO_SIGNATURE)
        if not signature:
            return self._answer(403, "unsigned")
        try:
            params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
        except (ValueError, UnicodeDecodeError):
            return self._answer(400, "not a form")
        base = cfg.public_url.rstrip("/") if cfg.public_url else f"http://{self.headers.get('Host', '')}"
        expected = twilio_signature(cfg.sms_token, base + self.path, params)
        if not hmac.compare_digest(expected, signature):
            return self._answer(403, "bad signature")
        if not params.get("MessageSid") or not params.get("MessageStatus"):
            return self._answer(400, "MessageSid and MessageStatus required")
        cfg.accepted += cfg.journal.append("sms", [params])
        return self._answer(204, "")


def make_server(host: str, port: int, cfg: ReceiverConfig) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.cfg = cfg  # type: ignore[attr-defined]
    return server


def receiver_config(journal: str | Path | None = None) -> ReceiverConfig:
    """The receiver's settings (relance.core.settings.Settings, the SMS gateway's auth token)."""
    from relance.core.settings import get_settings, resolve_secret

    s = get_settings()
    key_b64 = resolve_secret(s.sendgrid_webhook_public_key, s.sendgrid_webhook_key_block)
    token = resolve_secret(s.sms_auth_token, s.sms_auth_token_block)
    if not key_b64 and not token:
        raise UserError(
            "nothing to verify with: set SENDGRID_WEBHOOK_PUBLIC_KEY (SendGrid's verification key) "
            "and/or RELANCE_SMS_AUTH_TOKEN"
        )
    return ReceiverConfig(
        Journal(journal or s.events_journal_dir),
        sendgrid_key=load_sendgrid_key(key_b64) if key_b64 else None,
        sms_token=token,
        max_age_s=s.events_max_age_s,
        max_body=s.events_max_body,
        public_url=s.events_public_url,
    )


# -- apply: journal → ledger ----------------------------------------------------------------------

_ROW_SCHEMA = {
    "event_key": pa.string(),
    "source": pa.string(),
    "received_at": pa.timestamp("us"),
    "event_at": pa.timestamp("us"),
    "provider_event": pa.string(),
    "state": pa.string(),
    "delivery_id": pa.string(),
    "provider_message_id": pa.string(),
    "address": pa.string(),
    "hard": pa.bool_(),
    "detail": pa.string(),
    "raw": pa.string(),
}


def _ts(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def normalize(record: dict[str, Any]) -> dict[str, Any] | None:
    """One journal record → one row of the incoming events (None: not an event we can read)."""
    source, event = record.get("source"), record.get("event")
    if not isinstance(event, dict):
        return None
    received = record.get("received_at")
    received_at = datetime.fromisoformat(received) if isinstance(received, str) else utcnow()
    raw = json.dumps(event, ensure_ascii=False, sort_keys=True)
    if source == "sendgrid":
        name = str(event.get("event") or "")
        key = event.get("sg_event_id") or hashlib.sha256(raw.encode()).hexdigest()
        state = SENDGRID_STATE.get(name)
        hard = name == "dropped" or (name == "bounce" and event.get("type", "bounce") != "blocked")
        if name == "bounce" and not hard:
            state = "undelivered"
        detail = "; ".join(str(event[k]) for k in ("type", "reason", "status", "response") if event.get(k))
        msg_id = str(event.get("sg_message_id") or "").split(".", 1)[0] or None
        return {
            "event_key": f"sendgrid:{key}",
            "source": source,
            "received_at": received_at,
            "event_at": _ts(event.get("timestamp")),
            "provider_event": name or None,
            "state": state,
            "delivery_id": event.get("delivery_id") if isinstance(event.get("delivery_id"), str) else None,
            "provider_message_id": msg_id,
            "address": event.get("email"),
            "hard": hard,
            "detail": detail or None,
            "raw": raw,
        }
    if source == "sms":
        sid, status = event.get("MessageSid"), str(event.get("MessageStatus") or "")
        if not sid:
            return None
        detail = "; ".join(f"{k} {event[k]}" for k in ("ErrorCode", "ErrorMessage") if event.get(k))
        return {
            "event_key": f"sms:{sid}:{status}",
            "source": source,
            "received_at": received_at,
            "event_at": received_at,
            "provider_event": status or None,
            "state": SMS_STATE.get(status),
            "delivery_id": None,
            "provider_message_id": sid,
            "address": event.get("To"),
            "hard": False,
            "detail": detail or None,
            "raw": raw,
        }
    return None


def apply_records(con, records: Iterable[dict[str, Any]], *, now: datetime | None = None) -> dict[str, int]:
    """Load journal records into the ledger (one transaction); see the module docstring."""
    from tasks import warehouse

    now = now or utcnow()
    rows = [r for r in (normalize(rec) for rec in records) if r is not None]
    warehouse.ensure_schema(con)
    table = pa.table({k: pa.array([r[k] for r in rows], type=t) for k, t in _ROW_SCHEMA.items()})
    con.register("journal_rows", table)
    try:
        with warehouse.transaction(con):
            return _apply(con, now)
    finally:
        con.unregister("journal_rows")
        con.execute("drop table if exists events_incoming")


def _apply(con, now: datetime) -> dict[str, int]:
    p = {"now": now}
    # the new rows and those still unmatched, each event once, matched to a delivery
    con.execute(
        """
        create or replace temp table events_incoming as
        with candidates as (
            select event_key, source, received_at, event_at, provider_event, state, delivery_id,
                   provider_message_id, address, hard, detail, raw
            from journal_rows
            union all by name
            select event_key, source, received_at, event_at, provider_event, state, delivery_id,
                   provider_message_id, address, hard, detail, raw
            from unmatched_events
        ),
        distinct_events as (
            select * from candidates
            qualify row_number() over (partition by event_key order by received_at) = 1
        ),
        by_message as (
            select provider_message_id, min(delivery_id) as delivery_id
            from deliveries
            where provider_message_id is not null
            group by provider_message_id
            having count(*) = 1
        )
        select e.*, coalesce(d.delivery_id, m.delivery_id) as matched_id
        from distinct_events e
        left join deliveries d on d.delivery_id = e.delivery_id
        left join by_message m on e.delivery_id is null and m.provider_message_id = e.provider_message_id
        """
    )
    inserted = con.execute(
        """
        insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor,
                                     detail, event_key, provider_event)
        select e.matched_id, coalesce(e.event_at, e.received_at), coalesce(e.state, e.provider_event, 'unknown'),
               null, d.channel, d.provider, e.source, e.detail, e.event_key, e.provider_event
        from events_incoming e
        join deliveries d on d.delivery_id = e.matched_id
        where not exists (select 1 from delivery_events x where x.event_key = e.event_key)
        """
    ).fetchone()[0]
    con.execute(
        "delete from unmatched_events where event_key in "
        "(select event_key from events_incoming where matched_id is not null)"
    )
    unmatched = con.execute(
        """
        insert into unmatched_events by name
        select event_key, source, received_at, event_at, provider_event, state, delivery_id,
               provider_message_id, address, hard, detail, raw
        from events_incoming e
        where matched_id is null
        on conflict do nothing
        """
    ).fetchone()[0]
    unmatched_total = con.execute("select count(*) from unmatched_events").fetchone()[0]
    # delivery_state: highest precedence among all the delivery's provider events, ties by time
    ranks = ", ".join(f"('{s}', {r})" for s, r in STATE_RANK.items())
    states = con.execute(
        f"""
        with ranks(state, state_rank) as (values {ranks}),
        best as (
            select e.delivery_id, first(e.status order by r.state_rank desc, e.event_at desc) as state
            from delivery_events e
            join ranks r on r.state = e.status
            where e.event_key is not null
            group by e.delivery_id
        )
        update deliveries set delivery_state = best.state, updated_at = $now
        from best
        where deliveries.delivery_id = best.delivery_id
          and deliveries.delivery_state is distinct from best.state
        """,
        p,
    ).fetchone()[0]
    con.execute(
        """
        update deliveries set delivery_state = 'accepted'
        where status = 'sent' and delivery_state is null and channel in ('email', 'sms')
          and provider not in ('outbox', 'print', 'worklist', 'dossier')
        """
    )
    flagged = _flag_contacts(con, now)
    fallbacks = _letter_fallbacks(con, now)
    return {
        "events": con.execute("select count(*) from events_incoming").fetchone()[0],
        "inserted": inserted,
        "unmatched_new": unmatched,
        "unmatched_total": unmatched_total,
        "states_changed": states,
        "contacts_flagged": flagged,
        "letters_planned": fallbacks,
    }


def _flag_contacts(con, now: datetime) -> int:
    """contact_flags from this apply's matched email events: hard bounce / drop → bad; unsubscribe / spam report → opted_out."""
    return con.execute(
        """
        insert into contact_flags (customer_id, channel, address, flag, reason, delivery_id, flagged_at)
        select a.customer_id, 'email', lower(e.address),
               case when e.hard then 'bad' else 'opted_out' end,
               e.provider_event || coalesce(': ' || e.detail, ''), e.matched_id, $now
        from events_incoming e
        join deliveries d on d.delivery_id = e.matched_id
        join dunning_actions a using (action_id)
        where e.source = 'sendgrid' and d.channel = 'email'
          and (e.hard or e.provider_event in ('unsubscribe', 'group_unsubscribe', 'spamreport'))
        qualify row_number() over (partition by a.customer_id, e.hard order by e.event_at desc nulls last) = 1
        on conflict do update set address = excluded.address, reason = excluded.reason,
                                  delivery_id = excluded.delivery_id, flagged_at = excluded.flagged_at
        """,
        {"now": now},
    ).fetchone()[0]


def _letter_fallbacks(con, now: datetime) -> int:
    """A sent email that bounced hard or was dropped is re-sent as a letter: one new delivery
    `<action_id>|letter` (fallback_from = the email's delivery id), unless the action already has
    a letter that is not failed/undeliverable/skipped. The primary key makes it once, ever."""
    rows = con.execute(
        """
        insert into deliveries (delivery_id, action_id, channel, status, fallback_from, attempts, last_error,
                                created_at, updated_at)
        select d.action_id || '|letter', d.action_id, 'letter', 'planned', min(d.delivery_id), 0, null, $now, $now
        from deliveries d
        join dunning_actions a using (action_id)
        where d.channel = 'email' and d.status = 'sent' and d.delivery_state in ('bounced', 'dropped')
          and a.mode = 'live'
          and not exists (
              select 1 from deliveries o
              where o.action_id = d.action_id
                and o.channel in ('letter', 'registered_letter')
                and (o.status not in ('undeliverable', 'skipped', 'failed') or o.delivery_id = d.action_id || '|letter')
          )
        group by d.action_id
        returning delivery_id, fallback_from
        """,
        {"now": now},
    ).fetchall()
    if rows:
        con.execute(
            """
            insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor, detail)
            select unnest($ids::varchar[]), $now, 'planned', null, 'letter', null, 'events',
                   'the email ' || unnest($from::varchar[]) || ' bounced or was dropped: re-sent as a letter'
            """,
            {"now": now, "ids": [r[0] for r in rows], "from": [r[1] for r in rows]},
        )
    return len(rows)


EMPTY = {
    "events": 0,
    "inserted": 0,
    "unmatched_new": 0,
    "unmatched_total": 0,
    "states_changed": 0,
    "contacts_flagged": 0,
    "letters_planned": 0,
}


def apply_journal(db: str | Path, journal: str | Path | None = None, *, skip_if_empty: bool = False) -> dict[str, Any]:
    """`relance events apply`: the journal's events into the ledger of `db`."""
    from relance.core.settings import get_settings
    from tasks import warehouse

    folder = Path(journal or get_settings().events_journal_dir)
    records = read_journal(folder) if folder.is_dir() else []
    if skip_if_empty and not records:
        return dict(EMPTY, journal=str(folder))
    with warehouse.open_db(db) as con:
        result = apply_records(con, records)
    result["journal"] = str(folder)
    return result


def import_file(db: str | Path, path: str | Path) -> dict[str, int]:
    """`relance events import`: a saved SendGrid JSON array of events, loaded like the journal."""
    from tasks import warehouse

    try:
        events = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not JSON ({e})") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise UserError(f"{path}: expected a JSON array of SendGrid events")
    received = utcnow().isoformat()
    with warehouse.open_db(db) as con:
        return apply_records(con, [{"source": "sendgrid", "received_at": received, "event": e} for e in events])


@step(name="apply_events")
def apply_events(db: str) -> dict[str, Any]:
    """The nightly run's first step: the receiver's journal (RELANCE_EVENTS_JOURNAL, else
    <home>/events) into the ledger, so that tonight's dispatch knows last night's bounces."""
    result = apply_journal(db, skip_if_empty=True)
    if result["events"]:
        get_logger().info("provider events: %s", {k: v for k, v in result.items() if k != "journal"})
    return result


# -- registered letters: the postal tracking export ----------------------------------------------

_POST_COLUMNS = {
    "reference": ("reference", "delivery_id", "delivery", "batch_reference", "batch"),
    "tracking_number": ("tracking_number", "tracking"),
    "deposit_date": ("deposit_date", "deposited_on"),
    "receipt_date": ("receipt_date", "received_on"),
    "return_reason": ("return_reason", "reason"),
    "presentation_date": ("presentation_date", "presented_on", "first_presentation"),
    "sequence": ("sequence", "seq", "position"),
}

#: Returns that count as received on the first presentation (French practice: a registered letter
#: refused by its addressee, or left unclaimed at the post office after the notice of passage,
#: still puts the debtor on notice from the day it was first presented; docs/policy.md).
_DEEMED_RECEIVED = {
    "refused": "refused",
    "refusé": "refused",
    "refuse": "refused",
    "refus": "refused",
    "unclaimed": "unclaimed",
    "non réclamé": "unclaimed",
    "non reclame": "unclaimed",
    "non_reclame": "unclaimed",
    "not_claimed": "unclaimed",
    "avisé non réclamé": "unclaimed",
}


def _post_date(value: str, where: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def read_tracking_csv(path: str | Path) -> list[dict[str, Any]]:
    """The postal tracking CSV: reference (the delivery id, as in the print manifest, or the print
    batch's reference with the letter's `sequence` in it), tracking_number, deposit_date,
    receipt_date (a date, or "returned"), return_reason (refused, unclaimed …), presentation_date
    (the first presentation, for a refused or unclaimed letter).

    A letter refused or unclaimed counts as received on its first presentation: presentation_date,
    else the receipt_date column when it holds a date; another return (addressee unknown …) is
    not received."""
    import csv

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    reader = csv.DictReader(
        text.splitlines(),
        delimiter=";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ",",
    )
    header = {(h or "").strip().lower(): h for h in reader.fieldnames or []}
    cols = {k: next((header[n] for n in names if n in header), None) for k, names in _POST_COLUMNS.items()}
    if not cols["reference"]:
        raise UserError(f"{path}: no reference (or delivery_id) column")
    out = []
    for n, row in enumerate(reader, start=2):
        get = lambda k: (row.get(cols[k]) or "").strip() if cols[k] else ""  # noqa: E731, B023 (used in this row's turn)
        where = f"{path}, row {n}"
        ref = get("reference")
        if not ref:
            continue
        receipt = get("receipt_date")
        returned = receipt.lower() in ("returned", "retour", "renvoyé", "npai")
        raw_reason = get("return_reason").lower()
        reason = _DEEMED_RECEIVED.get(raw_reason, raw_reason) or None
        received = None if returned else _post_date(receipt, where)
        presented = _post_date(get("presentation_date"), where)
        if reason in ("refused", "unclaimed"):
            presented = presented or received
            received = presented  # deemed received on the first presentation
        elif reason:
            received = None  # returned: never received
        sequence = get("sequence")
        if sequence and not sequence.isdigit():
            raise UserError(f"{where}: sequence {sequence!r} is not a number")
        out.append(
            {
                "delivery_id": ref,
                "tracking_number": get("tracking_number") or None,
                "deposited_on": _post_date(get("deposit_date"), where),
                "received_on": received,
                "presented_on": presented,
                "outcome": "returned" if returned or reason else ("received" if receipt else "in_transit"),
                "return_reason": reason,
                "sequence": int(sequence) if sequence else None,
            }
        )
    return out


def _batch_key(reference: str) -> str:
    """A print batch's reference as the dossier and the manifest give it (`2026-03-16/registered_letter/
    print-batch-registered_letter.pdf`, its file name, or the manifest's), reduced to what names it:
    the date folder when given, the channel and the batch file's stem."""
    ref = reference.replace("\\", "/").strip().strip("/")
    parts = ref.split("/")
    stem = Path(parts[-1]).stem.replace("manifest-", "print-batch-", 1)
    return "/".join(parts[:-1] + [stem])


def resolve_batch_references(rows: list[dict[str, Any]], outbox: str | Path, known: set[str]) -> None:
    """Rows whose reference is no delivery id but a print batch's (with the letter's `sequence` in
    it, or its tracking number as the mail room wrote it in the manifest, or the batch's only
    letter): their delivery id from the batch's manifest (outbox/<date>/<channel>/manifest-*.csv).
    A reference that names no letter is left as it is (listed as unknown)."""
    import csv

    outbox = Path(outbox)
    manifests: dict[str, list[dict]] = {}
    for manifest in sorted(outbox.glob("*/*/manifest-*.csv")):
        with manifest.open(newline="", encoding="utf-8") as f:
            letters = list(csv.DictReader(f))
        stem = manifest.stem.replace("manifest-", "print-batch-", 1)
        for key in (f"{manifest.parent.parent.name}/{manifest.parent.name}/{stem}", stem):
            manifests.setdefault(key, []).extend(letters)
    for row in rows:
        if row["delivery_id"] in known:
            continue
        letters = manifests.get(_batch_key(row["delivery_id"]))
        if not letters:
            continue
        found = None
        if row.get("sequence") is not None:
            found = next((r for r in letters if str(r.get("sequence")) == str(row["sequence"])), None)
        elif row.get("tracking_number"):
            found = next(
                (r for r in letters if (r.get("tracking_number") or "").strip() == row["tracking_number"]), None
            )
        elif len(letters) == 1:
            found = letters[0]
        if found and found.get("delivery_id"):
            row["batch_reference"] = row["delivery_id"]
            row["delivery_id"] = found["delivery_id"]


def import_tracking(
    db: str | Path,
    path: str | Path,
    *,
    now: datetime | None = None,
    policy: str | None = None,
    outbox: str | Path | None = None,
) -> dict[str, Any]:
    """`relance post import`: the tracking CSV into postal_tracking (a re-import replaces a row),
    delivery_state (received → delivered, returned → undelivered) and delivery_events (once per outcome).
    A formal notice's deadline_on = received_on (or, refused / unclaimed, the first presentation)
    + formal_notice.deadline_days, for a letter of the policy's legal notice (stages[].legal_notice).
    A print batch reference is read through the outbox's manifests (default: `outbox` beside the
    database)."""
    from relance.core.policy import load_policy
    from tasks import warehouse
    from tasks.dispatch.config import load_channels_config

    rows = read_tracking_csv(path)
    deadline_days = load_channels_config().formal_notice.deadline_days
    notice = load_policy(policy).notice_stage
    now = now or utcnow()
    p = {"now": now, "days": deadline_days, "notice_stage": notice.code if notice is not None else None}
    with warehouse.open_db(db) as con:
        warehouse.ensure_schema(con)
        if any(r["delivery_id"] for r in rows):
            known = {
                r[0]
                for r in con.execute(
                    "select delivery_id from deliveries where delivery_id in (select unnest($ids::varchar[]))",
                    {"ids": [r["delivery_id"] for r in rows]},
                ).fetchall()
            }
            if len(known) < len({r["delivery_id"] for r in rows}):
                resolve_batch_references(rows, outbox or Path(db).parent / "outbox", known)
        schema = {
            "delivery_id": pa.string(),
            "tracking_number": pa.string(),
            "deposited_on": pa.date32(),
            "received_on": pa.date32(),
            "presented_on": pa.date32(),
            "outcome": pa.string(),
            "return_reason": pa.string(),
            "batch_reference": pa.string(),
        }
        table = pa.table({k: pa.array([r.get(k) for r in rows], type=t) for k, t in schema.items()})
        con.register("tracking_rows", table)
        try:
            with warehouse.transaction(con):
                unknown = [
                    r[0]
                    for r in con.execute(
                        "select t.delivery_id from tracking_rows t left join deliveries d using (delivery_id) "
                        "where d.delivery_id is null or d.channel not in ('letter', 'registered_letter') order by 1"
                    ).fetchall()
                ]
                loaded = con.execute(
                    """
                    insert or replace into postal_tracking by name
                    select t.delivery_id, t.tracking_number, t.deposited_on, t.received_on, t.outcome, t.return_reason,
                           case when a.stage = $notice_stage and t.received_on is not null
                                then t.received_on + cast($days as integer) end as deadline_on,
                           cast($now as timestamp) as imported_at, t.presented_on, t.batch_reference
                    from tracking_rows t
                    join deliveries d using (delivery_id)
                    join dunning_actions a using (action_id)
                    where d.channel in ('letter', 'registered_letter')
                    qualify row_number() over (partition by t.delivery_id order by t.received_on desc nulls last) = 1
                    """,
                    p,
                ).fetchone()[0]
                con.execute(
                    """
                    insert into delivery_events (delivery_id, event_at, status, previous_status, channel, provider, actor,
                                                 detail, event_key, provider_event)
                    select pt.delivery_id, $now, case pt.outcome when 'received' then 'delivered' when 'returned'
                           then 'undelivered' else 'accepted' end, null, d.channel, 'post', 'post',
                           concat_ws('; ', 'tracking ' || pt.tracking_number, 'deposited ' || pt.deposited_on,
                                     'received ' || pt.received_on, pt.return_reason),
                           'post:' || pt.delivery_id || ':' || pt.outcome, pt.outcome
                    from postal_tracking pt join deliveries d using (delivery_id)
                    where not exists (select 1 from delivery_events x
                                      where x.event_key = 'post:' || pt.delivery_id || ':' || pt.outcome)
                    """,
                    {"now": now},
                )
                con.execute(
                    """
                    update deliveries set delivery_state = case pt.outcome when 'received' then 'delivered'
                           when 'returned' then 'undelivered' else 'accepted' end, updated_at = $now
                    from postal_tracking pt
                    where deliveries.delivery_id = pt.delivery_id
                    """,
                    {"now": now},
                )
        finally:
            con.unregister("tracking_rows")
    return {"rows": len(rows), "loaded": loaded, "unknown": unknown}
