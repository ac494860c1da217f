"""The fault suite (issue 7): what relance promises when things go wrong, checked where it shows —
at the SendGrid-compatible server on loopback (tests/fakes/sendgrid_server.py: what it accepted,
per delivery id) and in the DuckDB tables — never in the code's own counters.

Already covered elsewhere, not repeated here: a crash between SendGrid's 202 and the ledger's
record (test_sendgrid.py), PostgreSQL unreachable during write-back (test_writeback.py), the
row rules of contract §1 and unreadable files (test_validation.py).
"""

from __future__ import annotations

import collections
import email
import errno
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.conftest import write_source
from tests.fakes.scenario import channels_config, customer, invoice, pdf_text
from tests.fakes.sendgrid_server import FakeSendGrid

ROOT = Path(__file__).resolve().parent.parent
AS_OF = date(2026, 3, 16)  # a Monday, no public holiday in France
FINAL = {"sent", "failed", "undeliverable", "in_doubt", "skipped"}


def email_source(folder: Path, n: int, due_in: int = 2) -> Path:
    """n customers with an email address and one invoice due in `due_in` days: tonight each gets one
    `preventive` action, one email."""
    due = (AS_OF + timedelta(days=due_in)).isoformat()
    return write_source(
        folder,
        customers=[customer(f"C{i:03d}", f"Client {i}") for i in range(n)],
        invoices=[invoice(f"F{i:03d}", f"C{i:03d}", "2026-02-16", due, f"{100 + i}.00") for i in range(n)],
    )


def cli(*args: str, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "relance.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_args(src: Path, db: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--as-of",
        AS_OF.isoformat(),
        "--source",
        str(src),
        "--db",
        str(db),
        "--outbox",
        str(db.parent / "outbox"),
        "--report-dir",
        str(db.parent / "reports"),
        *extra,
    ]


def table(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def email_rows(db: Path) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in table(db, "select delivery_id, status, last_error, provider from deliveries where channel = 'email'")
    }


def accepted_counts(fake: FakeSendGrid) -> collections.Counter:
    return collections.Counter(fake.delivery_ids())


@pytest.fixture
def send_env(tmp_path):
    """Environment of a `relance run --send` against a fake: quick back-off, short timeouts."""

    def make(fake: FakeSendGrid, **email_cfg) -> dict:
        cfg = channels_config(
            tmp_path,
            email={
                "concurrency": 2,
                "timeout_seconds": 5,
                "max_attempts": 6,
                "backoff_base_seconds": 0.01,
                "max_backoff_seconds": 0.2,
                **email_cfg,
            },
        )
        env = dict(
            os.environ,
            RELANCE_SENDGRID_HOST=fake.url,
            SENDGRID_API_KEY=fake.api_key,
            RELANCE_CHANNELS_CONFIG=cfg,
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        return env

    return make


def rerun(src: Path, db: Path, env: dict, monkeypatch, as_of: date = AS_OF) -> dict:
    """The nightly run in this process (the same code as `relance run --send`), with env's settings."""
    from flows.nightly import nightly_run

    for k in ("RELANCE_SENDGRID_HOST", "SENDGRID_API_KEY", "RELANCE_CHANNELS_CONFIG"):
        monkeypatch.setenv(k, env[k])
    return nightly_run(
        as_of=as_of,
        source=str(src),
        db=str(db),
        outbox=str(db.parent / "outbox"),
        send=True,
        report_dir=str(db.parent / "reports"),
    )


# -- 1. SIGKILL in the middle of dispatch --------------------------------------------------------


@pytest.mark.timeout(120)
def test_sigkill_mid_dispatch_then_two_reruns_never_sends_twice_and_leaves_nothing_planned(
    tmp_path, send_env, monkeypatch
):
    """Promise: a `relance run --send` killed (SIGKILL) in the middle of its emails, then run twice
    more, never gets a message to SendGrid twice (per delivery id, counted at the server); every
    planned delivery ends sent, failed (with its reason), undeliverable or in doubt — and in doubt is
    reported by the re-runs; none stays planned (or sending)."""
    n = 30
    src = email_source(tmp_path / "src", n)
    db = tmp_path / "run" / "relance.duckdb"
    with FakeSendGrid(api_key="SG.test-kill.relance") as fake:
        fake.delay = 0.25  # slow answers: the run is still sending when it is killed
        env = send_env(fake)
        proc = subprocess.Popen(
            [sys.executable, "-m", "relance.cli", *run_args(src, db, "--send")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 90
        while len(fake.accepted) < 6 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed mid-dispatch: " + proc.stderr.read()[-500:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        time.sleep(fake.delay + 0.2)  # requests in flight at the kill complete at the server
        before = len(fake.accepted)
        assert 6 <= before < n, f"killed mid-way: {before} of {n} accepted"
        statuses = collections.Counter(s for s, _, _ in email_rows(db).values())
        assert statuses["planned"] > 0, statuses  # the kill really left work undone

        fake.delay = 0
        reruns = [rerun(src, db, env, monkeypatch) for _ in range(2)]

        counts = accepted_counts(fake)
        assert max(counts.values()) == 1, [d for d, c in counts.items() if c > 1]  # never twice at SendGrid
        rows = email_rows(db)
        assert len(rows) == n
        by_status = collections.defaultdict(list)
        for d, (status, error, _) in rows.items():
            by_status[status].append(d)
            assert status in FINAL, (d, status)
            if status == "failed":
                assert error, f"{d} failed without a reason"
        # what the table says was sent did reach SendGrid; nothing reached it that the table calls unsent
        assert set(by_status["sent"]) <= set(counts)
        assert set(counts) <= set(by_status["sent"]) | set(by_status["in_doubt"])
        # the deliveries in doubt (in flight at the kill) are reported by each re-run, never re-sent
        for summary in reruns:
            assert sorted(summary["dispatch"]["in_doubt"]["ids"]) == sorted(by_status["in_doubt"])
        assert len(by_status["sent"]) + len(by_status["in_doubt"]) == n


# -- 2. a 429/500 storm, then a server down for a whole run -------------------------------------


@pytest.mark.timeout(90)
def test_storm_and_outage_everything_is_delivered_by_later_runs_never_twice(tmp_path, send_env, monkeypatch):
    """Promise: with SendGrid down for a whole run, then answering a third of the requests with
    500 (and a burst of 429), the later runs deliver every email, with back-off, and no delivery
    id ever reaches the server twice."""
    n = 24
    src = email_source(tmp_path / "src", n)
    db = tmp_path / "run" / "relance.duckdb"

    down = FakeSendGrid(api_key="SG.test-storm.relance").start()
    env = send_env(down, max_attempts=3)
    down.stop()  # nothing listens on that port any more: connection refused for the whole run
    rerun(src, db, env, monkeypatch)
    rows = email_rows(db)
    assert len(rows) == n and not any(s == "sent" for s, _, _ in rows.values())

    with FakeSendGrid(api_key="SG.test-storm.relance") as fake:
        fake.fail_fraction(1 / 3, status=500, seed=3)
        fake.fail_next(4, status=429, reset_in=0.3)
        env = send_env(fake)
        for _ in range(3):
            rerun(src, db, env, monkeypatch)
            if all(s == "sent" for s, _, _ in email_rows(db).values()):
                break
        statuses = [s for _, s, _ in fake.requests]
        assert statuses.count(500) > 0 and statuses.count(429) > 0  # the storm did happen
        counts = accepted_counts(fake)
        assert max(counts.values()) == 1
        rows = email_rows(db)
        assert {s for s, _, _ in rows.values()} == {"sent"}, collections.Counter(s for s, _, _ in rows.values())
        assert set(counts) == set(rows)


# -- 3. two runs on the same database at once ---------------------------------------------------


@pytest.mark.timeout(120)
def test_two_runs_at_once_one_waits_or_refuses_clearly_and_the_file_is_intact(tmp_path):
    """Promise: two `relance run` on the same DuckDB file at the same moment: each either completes
    or stops with one clear line naming the other run (no traceback); the file opens afterwards with
    every table, and a third run leaves it exactly as a single clean run does."""
    from relance.sample_data import generate

    src = tmp_path / "src"
    generate(src, customers=120, seed=5, as_of=AS_OF)
    db = tmp_path / "run" / "relance.duckdb"
    db.parent.mkdir()
    env = dict(os.environ, PREFECT_LOGGING_LEVEL="WARNING")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "relance.cli", *run_args(src, db)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, outs
    for code, (_out, err) in zip(codes, outs):
        assert "Traceback" not in err
        if code != 0:
            assert code == 2 and "is in use by another relance run" in err, err[-1500:]
    third = cli(*run_args(src, db))
    assert third.returncode == 0, third.stderr[-1500:]

    from flows.nightly import nightly_run

    ref = tmp_path / "ref" / "relance.duckdb"  # a single clean run, for comparison
    nightly_run(
        as_of=AS_OF,
        source=str(src),
        db=str(ref),
        outbox=str(ref.parent / "outbox"),
        report_dir=str(ref.parent / "reports"),
    )
    q = {
        "invoice_snapshot": "select count(*), sum(open_amount) from invoice_snapshot",
        "aged_balance": "select count(*), sum(amount) from aged_balance",
        "unit_stage": "select count(*), count(episode_id) from unit_stage",
        "dunning_actions": "select count(*), string_agg(action_id, ',' order by action_id) from dunning_actions",
        "deliveries": "select count(*), string_agg(delivery_id || status, ',' order by delivery_id) from deliveries",
        "recovery_metrics": "select count(*), sum(value) from recovery_metrics",
    }
    for name, sql in q.items():
        assert table(db, sql) == table(ref, sql), name


# -- 4. a bad-input corpus beyond the row rules ---------------------------------------------


def _rejects(db: Path) -> list[tuple]:
    return table(db, "select entity, row_number, reason, action from rejected_rows order by entity, row_number")


@pytest.mark.timeout(60)
def test_bad_input_corpus_rows_rejected_with_reasons_or_one_clear_message(tmp_path):
    """Promise: a messy export (Windows line ends, BOM and semicolons, blank lines, a 10 MB field,
    dates and amounts written the way spreadsheets write them, a line repeated) loads every good row,
    rejects each bad row with a reason naming the problem, and the run completes."""
    from flows.nightly import nightly_run

    src = tmp_path / "src"
    src.mkdir()
    big = "X" * (10 * 1024 * 1024)
    (src / "customers.csv").write_bytes(
        (
            "\ufeffcustomer_id;name;email\r\n"
            "C1;Alpha SARL;a@client.example\r\n\r\n"
            f"C2;{big};b@client.example\r\n"
            "C3;Gamma;c@client.example\r\n"
        ).encode()
    )
    inv = [
        "invoice_id,customer_id,issue_date,due_date,amount",
        "I1,C1,2026-01-05,2026-02-04,100.00",
        "I2,C1,2026/01/05,2026-02-04,100.00",  # slashes
        "I3,C1,20260105,2026-02-04,100.00",  # compact
        "I4,C1,2026-01-05T00:00:00,2026-02-04,1",  # a timestamp
        "I5,C1,05.01.2026,2026-02-04,100.00",  # German
        '"I6",C1,2026-01-05,2026-02-04,"1,234.56"',  # thousands comma
        "I7,C1,2026-01-05,2026-02-04,€100.00",
        "I8,C1,2026-01-05,2026-02-04,1e3",
        "",
        "I1,C1,2026-01-05,2026-02-04,100.00",  # the same line twice
        "I9,C3,2026-01-05,2026-02-04,50.00",
    ]
    (src / "invoices.csv").write_text("\r\n".join(inv) + "\r\n", encoding="utf-8")
    (src / "payments.csv").write_text(
        "payment_id,customer_id,invoice_id,paid_date,amount\nP1,C3,I9,2026-02-01,50.00\nP1,C3,I9,2026-02-01,50.00\n",
        encoding="utf-8",
    )
    db = tmp_path / "r.duckdb"
    started = time.monotonic()
    summary = nightly_run(
        as_of=AS_OF, source=str(src), db=str(db), outbox=str(tmp_path / "out"), report_dir=str(tmp_path / "rep")
    )
    assert time.monotonic() - started < 60
    loaded = summary["ingest"]["rows_loaded"]
    names = dict(table(db, "select customer_id, length(name) from stg_customers"))
    assert set(names) >= {"C1", "C3"}  # the good rows around the big one are loaded
    rejects = table(
        db,
        "select entity, json_extract_string(raw, '$.invoice_id'), json_extract_string(raw, '$.customer_id'), "
        "reason, action from rejected_rows",
    )
    by_invoice = {i: reason for e, i, c, reason, action in rejects if e == "invoices" and action == "rejected"}
    # every invoice row but I1 (once) and I9 is rejected, each with a reason naming its problem
    inv_ids = {r[0] for r in table(db, "select invoice_id from stg_invoices")}
    assert inv_ids == {"I1", "I9"}, inv_ids
    for iid, words in [
        ("I2", "issue_date '2026/01/05'"),
        ("I3", "issue_date '20260105'"),
        ("I4", "issue_date '2026-01-05T00:00:00'"),
        ("I5", "issue_date '05.01.2026'"),
        ("I6", "amount '1,234.56'"),
        ("I7", "amount '€100.00'"),
        ("I8", "amount '1e3'"),
        ("I1", "duplicate invoice_id 'I1'"),
    ]:
        assert iid in by_invoice and words in by_invoice[iid], (iid, by_invoice.get(iid))
    assert any(e == "payments" and "duplicate payment_id 'P1'" in reason for e, _, _, reason, _ in rejects)
    if "C2" not in names:  # a 10 MB name may be refused, but then with a reason, on its own row
        assert [reason for e, _, c, reason, _ in rejects if e == "customers" and c == "C2"] == [
            "name is longer than 500 characters"
        ], rejects
    else:
        assert names["C2"] == len(big)
    raws = table(db, "select max(length(raw)) from rejected_rows")
    assert raws[0][0] is not None
    assert loaded["invoices"] == 2


@pytest.mark.timeout(60)
def test_a_duplicated_file_and_an_empty_optional_file_are_one_clear_message(tmp_path):
    """Promise: the same entity given twice (invoices.csv and a copy as INVOICES.csv or .parquet) or a
    0-byte payments file stops the run with one message naming the file, before anything is written."""
    from flows.nightly import nightly_run
    from relance.core.errors import UserError

    def base(name):
        src = tmp_path / name
        write_source(
            src, customers=[customer("C1")], invoices=[invoice("I1", "C1", "2026-01-05", "2026-02-04", "10.00")]
        )
        return src

    dup = base("dup")
    (dup / "INVOICES.csv").write_bytes((dup / "invoices.csv").read_bytes())
    empty = base("empty")
    (empty / "payments.csv").write_bytes(b"")
    for src, needle in ((dup, "invoices"), (empty, "payments.csv")):
        db = tmp_path / f"{src.name}.duckdb"
        try:
            nightly_run(
                as_of=AS_OF, source=str(src), db=str(db), outbox=str(tmp_path / "o"), report_dir=str(tmp_path / "r")
            )
        except UserError as e:
            assert needle in str(e) and "\n" not in str(e).strip()
            continue
        # accepted: then the duplicate was not loaded twice
        assert table(db, "select count(*) from stg_invoices") == [(1,)], src.name


# -- 5. injection ------------------------------------------------------------------------------

EVIL_NAME = "<script>alert('x')</script> {{ 7*7 }} {% raw %}R{% endraw %} '); drop table invoices; --"
EVIL_STREET = "<img src=x onerror=alert(1)> 3 rue {{ config }} '); delete from deliveries; --"
EVIL_CITY = 'Lyon {% for x in range(3) %}Z{% endfor %} "; drop table stg_customers; --'


@pytest.mark.timeout(60)
def test_injection_in_names_and_addresses_is_harmless_everywhere(tmp_path):
    """Promise: customer names and addresses carrying HTML, Jinja and SQL are data: they are written
    as-is (escaped) in the .eml emails, the PDF letters, the HTML report, and stored unchanged in the
    tables; no markup is live, no template is evaluated, no statement is run."""
    from flows.nightly import nightly_run

    src = write_source(
        tmp_path / "src",
        customers=[
            customer("C1", EVIL_NAME, street=EVIL_STREET, city=EVIL_CITY),
            customer("C2", EVIL_NAME, email="", phone="", street=EVIL_STREET, city=EVIL_CITY),
        ],
        invoices=[
            invoice("F1", "C1", "2026-01-05", "2026-02-04", "300.00"),
            invoice("F2", "C2", "2026-01-05", "2026-02-04", "300.00"),
        ],
    )
    db = tmp_path / "run" / "relance.duckdb"
    out, rep = tmp_path / "outbox", tmp_path / "reports"
    nightly_run(as_of=AS_OF, source=str(src), db=str(db), outbox=str(out), report_dir=str(rep))

    # tables: stored unchanged, nothing dropped or deleted
    assert (
        table(db, "select name, street, city from stg_customers order by customer_id")
        == [(EVIL_NAME, EVIL_STREET, EVIL_CITY)] * 2
    )
    assert table(db, "select count(*) from stg_invoices") == [(2,)]
    assert table(db, "select count(*) from deliveries")[0][0] >= 2

    emls = list(out.rglob("*.eml"))
    assert emls, list(out.rglob("*"))
    for path in emls:
        msg = email.message_from_bytes(path.read_bytes())
        for part in msg.walk():
            if part.get_content_maintype() != "text":
                continue
            body = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
            assert "49" not in body.replace("2049", "")  # {{ 7*7 }} never evaluated
            assert "{{ 7*7 }}" in body or "{{ 7*7 }}" in body.replace("&#123;", "{").replace("&#125;", "}")
            if part.get_content_subtype() == "html":
                assert "<script>" not in body and "<img src=x" not in body
                assert "&lt;script&gt;" in body
    pdfs = [p for p in out.rglob("*.pdf") if "print-batch" not in p.name]
    assert pdfs, list(out.rglob("*"))
    for path in pdfs:
        flat = " ".join(pdf_text(path).split())
        assert "{{ 7*7 }}" in flat and "drop table invoices" in flat and "<script>" in flat
        assert "ZZZ" not in flat  # the Jinja loop in the city was not run
    html = next(rep.rglob("*.html")).read_text(encoding="utf-8")
    assert "<script>alert('x')</script>" not in html and "<img src=x onerror" not in html
    assert "&lt;script&gt;" in html
    assert "ZZZ" not in html and ">R<" not in html.replace("{% raw %}R{% endraw %}", "")


# -- 6. secrets ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_sendgrid_key_appears_in_no_log_artifact_report_outbox_or_table(tmp_path, monkeypatch, caplog):
    """Promise: the SendGrid API key is never written anywhere: not in a log line (any logger, any
    level), an outbox file, a report, an artifact, nor any text column of any DuckDB table — also when
    SendGrid refuses a message, fails, or refuses the key itself."""
    from flows.nightly import nightly_run

    key = "SG.secret-" + os.urandom(12).hex()
    src = email_source(tmp_path / "src", 6, due_in=2)
    db = tmp_path / "run" / "relance.duckdb"
    caplog.set_level(logging.DEBUG)
    with FakeSendGrid(api_key=key) as fake:
        monkeypatch.setenv("RELANCE_SENDGRID_HOST", fake.url)
        monkeypatch.setenv("SENDGRID_API_KEY", key)
        monkeypatch.setenv(
            "RELANCE_CHANNELS_CONFIG",
            channels_config(
                tmp_path,
                email={"concurrency": 2, "max_attempts": 2, "backoff_base_seconds": 0.01, "timeout_seconds": 5},
            ),
        )
        fake.refuse_recipient("c001@client.example")
        fake.fail_next(4, status=500)
        nightly_run(as_of=AS_OF, source=str(src), db=str(db), send=True, report_dir=str(tmp_path / "reports"))
        # the key refused (a wrong key echoed back must not be written either)
        monkeypatch.setenv("SENDGRID_API_KEY", key + "-wrong")
        # the hand-written source is static (invoices of 02-16): stale by the guard, sent anyway
        nightly_run(
            as_of=AS_OF + timedelta(days=1),
            source=str(src),
            db=str(db),
            send=True,
            report_dir=str(tmp_path / "reports"),
            allow_stale=True,
        )
        assert fake.accepted  # something was really sent with the key

    secret = key.encode()
    for rec in caplog.records:
        text = rec.getMessage() + (logging.Formatter().formatException(rec.exc_info) if rec.exc_info else "")
        assert key not in text, f"key in a log line: {rec.name} {text[:200]}"
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix not in (".duckdb", ".wal") and "src" not in path.parts:
            assert secret not in path.read_bytes(), f"key in {path}"
    with duckdb.connect(str(db), read_only=True) as con:
        cols = con.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'main'"
        ).fetchall()
        for t, c in cols:
            hit = con.execute(
                f'select count(*) from "{t}" where cast("{c}" as varchar) like ?', [f"%{key}%"]
            ).fetchone()[0]
            assert hit == 0, f"key in {t}.{c}"
    assert secret not in db.read_bytes()


# -- 7. a full disk during dispatch (issue 11 §6) ---------------------------------------------


def main_in_process(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """`relance …` in this process (the console script's `main`, its error handling included)."""
    from relance.cli import _DB, main

    _DB.clear()
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["relance", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, capsys.readouterr().err


@pytest.mark.timeout(120)
def test_a_full_disk_while_writing_the_outbox_is_one_line_and_the_next_run_renders_the_rest(
    tmp_path, monkeypatch, capsys
):
    """Promise: the disk fills up after 5 of 12 emails were written to the outbox: the run stops
    with one line naming the file (exit 2), leaving the claimed deliveries `sending`; the next run
    settles them as the ledger's contract says for a local provider (rendered again) and every
    email ends `sent` once, with its file."""
    from tasks.dispatch import email as email_mod

    n = 12
    src = email_source(tmp_path / "src", n)
    db = tmp_path / "run" / "relance.duckdb"
    real_write = email_mod.write_eml
    written: list[Path] = []

    def full_disk(msg, cfg, now):
        if len(written) == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(msg.eml_path.with_suffix(".eml.tmp")))
        written.append(real_write(msg, cfg, now))
        return written[-1]

    monkeypatch.setattr(email_mod, "write_eml", full_disk)
    code, err = main_in_process(run_args(src, db), monkeypatch, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"relance: error: cannot write {db.parent / 'outbox' / AS_OF.isoformat() / 'email'}/")
    assert "No space left on device" in lines[0]
    statuses = collections.Counter(s for s, _, _ in email_rows(db).values())
    assert statuses == {"sending": n}, statuses  # claimed, then the disk was full

    monkeypatch.setattr(email_mod, "write_eml", real_write)  # space freed
    code, err = main_in_process(run_args(src, db), monkeypatch, capsys)
    assert code == 0, err
    rows = email_rows(db)
    assert {d: (s, p) for d, (s, _, p) in rows.items()} == {d: ("sent", "outbox") for d in rows} and len(rows) == n
    files = sorted((db.parent / "outbox" / AS_OF.isoformat() / "email").glob("*.eml"))
    assert len(files) == n
    events = table(db, "select count(*) from delivery_events where previous_status = 'sending' and status = 'planned'")
    assert events == [(n,)]  # each put back once by the next run, then sent


@pytest.mark.timeout(120)
def test_a_full_disk_after_sendgrid_answered_leaves_in_doubt_never_sent_twice(tmp_path, send_env, monkeypatch, capsys):
    """Promise: with --send, the disk fills up between SendGrid's 202 and the ledger's record (DuckDB
    cannot write): one line naming the database, exit 2; the next run reports those deliveries
    `in_doubt` (never re-sent by itself, as the ledger's contract says) and sends the others — each
    delivery id reaches SendGrid once."""
    import duckdb as _duckdb

    from tasks.dispatch import ledger

    n = 12
    src = email_source(tmp_path / "src", n)
    db = tmp_path / "run" / "relance.duckdb"

    def disk_full(channel, results):
        raise _duckdb.IOException(f'IO Error: Could not write file "{db}.wal": No space left on device')

    with FakeSendGrid(api_key="SG.test-disk.relance") as fake:
        env = send_env(fake)
        for k in ("RELANCE_SENDGRID_HOST", "SENDGRID_API_KEY", "RELANCE_CHANNELS_CONFIG"):
            monkeypatch.setenv(k, env[k])
        ledger.AFTER_PROVIDER_HOOKS.append(disk_full)
        try:
            code, err = main_in_process(run_args(src, db, "--send"), monkeypatch, capsys)
        finally:
            ledger.AFTER_PROVIDER_HOOKS.remove(disk_full)
        assert code == 2, err
        assert err.startswith(f"relance: error: database {db} cannot be written: IO Error: Could not write file")
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        first = sorted(d for d, (s, _, _) in email_rows(db).items() if s == "sending")
        assert first and sorted(accepted_counts(fake)) == first  # SendGrid accepted exactly the claimed ones

        code, err = main_in_process(run_args(src, db, "--send"), monkeypatch, capsys)
        assert code == 0, err
        rows = email_rows(db)
        assert sorted(d for d, (s, _, _) in rows.items() if s == "in_doubt") == first
        assert {s for d, (s, _, _) in rows.items() if d not in first} == {"sent"}
        counts = accepted_counts(fake)
        assert len(counts) == n and max(counts.values()) == 1  # never twice at SendGrid
