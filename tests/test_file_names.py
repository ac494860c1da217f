"""Each debtor gets only their own mail (issue 12 §3): every file the outbox holds is named after
the FULL id it belongs to, so ids that look alike (`C/1`, `C_1`, `.C_1`) never share a file, and no
writer overwrites a file of another delivery. A print batch never holds a letter already in an
earlier batch of the same outbox (§4)."""

from __future__ import annotations

import csv
import email
import subprocess
import unicodedata
from datetime import UTC, date, datetime
from email import policy as email_policy
from pathlib import Path

import duckdb

from relance.core.paths import ROOT
from tasks.dispatch import dispatch
from tasks.dispatch.ledger import file_stem, slug, unit_stem
from tests.fakes.scenario import action, add_actions, build, customer, deliveries, invoice, pdf_text

AS_OF = date(2026, 3, 16)
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
LONG = "K" + "é" * 60 + "/" + "x" * 38  # 100 characters (ingest's limit), 161 bytes in UTF-8
LOOK_ALIKE = ["C/1", "C_1", ".C_1", "../x", LONG]


# -- the names themselves ---------------------------------------------------------------------------
def test_look_alike_ids_get_distinct_safe_names():
    ids = LOOK_ALIKE + [
        LONG[:-1] + "y",
        "ü" * 1000,
        "c_1",
        "C\\1",
        "C\x001",
        "C\n1",
        "CON",
        "nul.txt",
        "..",
        ".",
        "",
        " C 1 ",
    ]
    stems = [file_stem(i) for i in ids]
    assert len(set(stems)) == len(ids)
    assert len({s.lower() for s in stems}) == len(ids)  # also on a case-insensitive filesystem (macOS, Windows)
    for i, s in zip(ids, stems):
        name = s + ".attachment.pdf"
        assert "/" not in s and "\\" not in s and not s.startswith((".", "-")), (i, s)
        assert all(c.isprintable() and c not in '<>:"|?*' for c in s), (i, s)
        assert len(name.encode("utf-8")) <= 255, (i, len(name.encode()))
        assert s.split(".")[0].split("-")[0].lower() not in {"con", "nul", "prn", "aux"}
    # readable: the id's own characters survive where they can
    assert file_stem("C/1").startswith("C_1-") and file_stem("../x").startswith("x-")
    assert slug("CON") == "_CON"


def test_accented_names_survive_in_nfc():
    decomposed = unicodedata.normalize("NFD", "Élodie Caron")
    assert slug(decomposed) == slug("Élodie Caron") == "Élodie_Caron"
    assert unicodedata.is_normalized("NFC", slug(decomposed))
    # the hash is of the id exactly as given: two spellings of a name in the ERP are two files
    assert file_stem(decomposed) != file_stem("Élodie Caron")
    assert slug("Ærø Ødegård — Straße 5") == "Ærø_Ødegård_Straße_5"


# -- the outbox of look-alike debtors ---------------------------------------------------------------
DAY1 = date(2026, 3, 13)
NOW1 = datetime(2026, 3, 13, 9, 0, tzinfo=UTC)


def _scenario(tmp_path: Path, name: str = "r"):
    """Five look-alike debtors: on the 13th a reminder (email, SMS, letter) per EUR unit and a call per
    GBP unit (three collectors whose names differ only by an accent or a space); on the 16th the
    first three go to litigation (a dossier per unit, with copies of what was sent)."""
    customers, invoices, actions = [], [], []
    for n, cid in enumerate(LOOK_ALIKE, start=1):
        collector = ["Élodie Caron", "Elodie Caron", "Élodie_Caron", "Julie", "Julie"][n - 1]
        customers.append(
            customer(cid, f"Débiteur numéro {n}", email=f"debiteur{n}@client.example", collector=collector)
        )
        invoices.append(invoice(f"F{n}", cid, "2025-12-01", "2026-01-05", f"{n}00.00"))
        invoices.append(invoice(f"G{n}", cid, "2025-12-01", "2026-01-05", f"{n}0.00", currency="GBP"))
        unit = f"{cid}|EUR|1"  # delivery ids are built from the unit's ids, as the ladder does
        actions.append(
            action(
                f"{unit}|reminder_2",
                cid,
                "reminder_2",
                [f"F{n}"],
                as_of=DAY1,
                deliveries=[
                    (f"{unit}|reminder_2|email", "email"),
                    (f"{unit}|reminder_2|sms", "sms"),
                    (f"{unit}|reminder_2|letter", "letter"),
                ],
            )
        )
        actions.append(
            action(
                f"{cid}|GBP|1|call_2",
                cid,
                "call_2",
                [f"G{n}"],
                as_of=DAY1,
                currency="GBP",
                deliveries=[(f"{cid}|GBP|1|call_2|phone", "phone")],
            )
        )
    return build(tmp_path, customers=customers, invoices=invoices, as_of=AS_OF, actions=actions, name=name)


def _litigation(db):
    add_actions(
        db,
        [
            action(
                f"{cid}|EUR|1|litigation",
                cid,
                "litigation",
                [f"F{n}"],
                deliveries=[(f"{cid}|EUR|1|litigation|handoff", "handoff")],
            )
            for n, cid in enumerate(LOOK_ALIKE[:3], start=1)
        ],
        AS_OF,
    )


def test_look_alike_debtors_each_get_only_their_own_files(tmp_path):
    db = _scenario(tmp_path)
    out = tmp_path / "outbox"
    dispatch(str(db), DAY1, str(out), now=NOW1)
    _litigation(db)
    dispatch(str(db), AS_OF, str(out), now=NOW)
    rows = deliveries(db)
    assert all(r["status"] == "sent" for r in rows.values()), {
        d: (r["status"], r["last_error"]) for d, r in rows.items() if r["status"] != "sent"
    }
    assert len(rows) == 5 * 4 + 3
    paths = {d: r["artifact_path"] for d, r in rows.items()}
    per_debtor = {d: p for d, p in paths.items() if not d.endswith("|phone")}  # a worklist is shared
    assert len(set(per_debtor.values())) == len(per_debtor)
    root = out.resolve()
    for d, p in paths.items():
        assert Path(p).resolve().is_relative_to(root), (d, p)  # `../x` stays inside the outbox
        assert Path(p).exists()
    for n, cid in enumerate(LOOK_ALIKE, start=1):
        unit = f"{cid}|EUR|1"
        mine, others = f"Débiteur numéro {n}", [f"Débiteur numéro {k}" for k in range(1, 6) if k != n]
        eml = email.message_from_bytes(
            Path(paths[f"{unit}|reminder_2|email"]).read_bytes(), policy=email_policy.default
        )
        assert eml["To"].addresses[0].addr_spec == f"debiteur{n}@client.example"
        assert eml["X-Relance-Delivery-Id"] == f"{unit}|reminder_2|email"
        text = Path(paths[f"{unit}|reminder_2|sms"]).read_text(encoding="utf-8")
        assert f"Delivery: {unit}|reminder_2|sms" in text
        letter = " ".join(pdf_text(paths[f"{unit}|reminder_2|letter"]).split())
        assert mine in letter and not any(o in letter for o in others), n
        if n <= 3:  # the dossier holds this debtor's letter and email only
            folder = Path(paths[f"{unit}|litigation|handoff"])
            assert folder.name == unit_stem(cid, "EUR")
            copies = sorted((folder / "letters").iterdir())
            assert len(copies) == 1 and mine in " ".join(pdf_text(copies[0]).split())
            (copy,) = (folder / "emails").iterdir()
            assert (
                email.message_from_bytes(copy.read_bytes(), policy=email_policy.default)["X-Relance-Delivery-Id"]
                == f"{unit}|reminder_2|email"
            )
    # one worklist per collector, accents kept, "Élodie Caron", "Elodie Caron" and "Élodie_Caron" apart
    phone = out / DAY1.isoformat() / "phone"
    names = sorted(p.name for p in phone.glob("*.csv"))
    assert names == sorted(
        f"worklist-{file_stem(c)}.csv" for c in ("Élodie Caron", "Elodie Caron", "Élodie_Caron", "Julie")
    )
    assert any(n.startswith("worklist-Élodie_Caron-") for n in names)
    by_file = {
        p.name: [r["customer_id"] for r in csv.DictReader(open(p, encoding="utf-8"))] for p in phone.glob("*.csv")
    }
    assert by_file[f"worklist-{file_stem('Élodie Caron')}.csv"] == ["C/1"]
    assert by_file[f"worklist-{file_stem('Elodie Caron')}.csv"] == ["C_1"]
    assert by_file[f"worklist-{file_stem('Élodie_Caron')}.csv"] == [".C_1"]


def test_a_file_of_another_delivery_is_never_written_over(tmp_path):
    db = _scenario(tmp_path)
    out = tmp_path / "outbox"
    mail_dir = out / DAY1.isoformat() / "email"
    mine, other = "C/1|EUR|1|reminder_2|email", "C_1|EUR|1|reminder_2|email"
    target = mail_dir / f"{file_stem(mine)}.eml"
    mail_dir.mkdir(parents=True)
    target.write_bytes(b"the evidence of another delivery\n")
    # the ledger says that file is the record of another delivery (as after a hash clash)
    with duckdb.connect(str(db)) as con:
        con.execute(
            "update deliveries set status = 'sent', artifact_path = ? where delivery_id = ?", [str(target), other]
        )
    dispatch(str(db), DAY1, str(out), now=NOW1)
    rows = deliveries(db)
    assert (
        rows[mine]["status"] == "failed"
        and "belongs to delivery C_1|EUR|1|reminder_2|email" in rows[mine]["last_error"]
    )
    assert target.read_bytes() == b"the evidence of another delivery\n"
    # its own file, on the other hand, is rewritten when the same delivery is rendered again
    assert rows[".C_1|EUR|1|reminder_2|email"]["status"] == "sent"


def test_two_deliveries_given_one_file_name_never_share_it(tmp_path, monkeypatch):
    """Were two ids ever to get one name (a truncated hash colliding), the second delivery fails
    with the reason and the first one's file stays its own: nothing is silently written over."""
    from tasks.dispatch import ledger

    db = _scenario(tmp_path)
    monkeypatch.setattr(ledger, "file_stem", lambda text, limit=80: "same-name")
    out = tmp_path / "outbox"
    dispatch(str(db), DAY1, str(out), now=NOW1)
    rows = deliveries(db)
    for channel in ("email", "letter", "sms"):
        mine = {d: r for d, r in rows.items() if d.endswith(f"|{channel}")}
        sent = [d for d, r in mine.items() if r["status"] == "sent"]
        failed = [r["last_error"] for d, r in mine.items() if r["status"] == "failed"]
        assert len(sent) == 1 and len(failed) == 4, (channel, {d: r["status"] for d, r in mine.items()})
        assert all("not written over" in why for why in failed)
        n = LOOK_ALIKE.index(sent[0].split("|EUR|")[0]) + 1
        path = Path(mine[sent[0]]["artifact_path"])
        if channel == "email":
            assert (
                email.message_from_bytes(path.read_bytes(), policy=email_policy.default)["X-Relance-Delivery-Id"]
                == sent[0]
            )
        elif channel == "letter":
            assert f"Débiteur numéro {n}" in " ".join(pdf_text(path).split())
        else:
            assert f"Delivery: {sent[0]}" in path.read_text(encoding="utf-8")


# -- print batches ------------------------------------------------------------------------------------
def _manifest_ids(folder: Path) -> list[list[str]]:
    return [
        [r["delivery_id"] for r in csv.DictReader(open(m, encoding="utf-8"))]
        for m in sorted(folder.glob("manifest-*.csv"), key=lambda m: (len(m.name), m.name))
    ]  # -2 after the first


def test_a_new_database_over_a_kept_outbox_prints_no_letter_twice(tmp_path):
    from pypdf import PdfReader

    out = tmp_path / "outbox"
    letters = out / AS_OF.isoformat() / "letter"
    first = dispatch(str(_scenario(tmp_path, "first")), AS_OF, str(out), now=NOW)
    assert first["print"]["letter"]["letters"] == 5
    assert [sorted(m) for m in _manifest_ids(letters)] == [sorted(f"{c}|EUR|1|reminder_2|letter" for c in LOOK_ALIKE)]
    # the database is started again (the old `make demo`), the outbox kept: the same letters again,
    # plus one new debtor's letter
    extra = [customer("NEW", "Nouveau débiteur", email="new@client.example")]
    db2 = build(
        tmp_path,
        name="second",
        as_of=AS_OF,
        customers=[
            customer(c, f"Débiteur numéro {n}", email=f"debiteur{n}@client.example")
            for n, c in enumerate(LOOK_ALIKE, start=1)
        ]
        + extra,
        invoices=[
            invoice(f"F{n}", c, "2025-12-01", "2026-01-05", f"{n}00.00") for n, c in enumerate(LOOK_ALIKE, start=1)
        ]
        + [invoice("FN", "NEW", "2025-12-01", "2026-01-05", "700.00")],
        actions=[
            action(
                f"{c}|EUR|1|reminder_2",
                c,
                "reminder_2",
                [f"F{n}"],
                deliveries=[(f"{c}|EUR|1|reminder_2|letter", "letter")],
            )
            for n, c in enumerate(LOOK_ALIKE, start=1)
        ]
        + [
            action(
                "NEW|EUR|1|reminder_2",
                "NEW",
                "reminder_2",
                ["FN"],
                deliveries=[("NEW|EUR|1|reminder_2|letter", "letter")],
            )
        ],
    )
    second = dispatch(str(db2), AS_OF, str(out), now=NOW)
    assert deliveries(db2)["NEW|EUR|1|reminder_2|letter"]["status"] == "sent"
    batches = _manifest_ids(letters)
    assert batches[1] == ["NEW|EUR|1|reminder_2|letter"]  # the new letter only
    assert second["print"]["letter"]["letters"] == 1 and second["print"]["letter"]["already_printed"] == 5
    batch2 = letters / "print-batch-letter-2.pdf"
    assert len(PdfReader(batch2).pages) == second["print"]["letter"]["pages"]
    text = " ".join(pdf_text(batch2).split())
    assert "Nouveau débiteur" in text and "Débiteur numéro" not in text
    # a third database with nothing new: no third batch at all
    db3 = build(
        tmp_path,
        name="third",
        as_of=AS_OF,
        customers=[customer("C/1", "Débiteur numéro 1", email="d@client.example")],
        invoices=[invoice("F1", "C/1", "2025-12-01", "2026-01-05", "100.00")],
        actions=[
            action(
                "C/1|EUR|1|reminder_2",
                "C/1",
                "reminder_2",
                ["F1"],
                deliveries=[("C/1|EUR|1|reminder_2|letter", "letter")],
            )
        ],
    )
    third = dispatch(str(db3), AS_OF, str(out), now=NOW)
    assert len(_manifest_ids(letters)) == 2 and not (letters / "print-batch-letter-3.pdf").exists()
    assert "letter" not in third["print"]


def test_make_demo_starts_clean():
    """`make demo` removes the previous demo's database AND its outbox and reports before it runs."""
    dry = subprocess.run(
        ["make", "-n", "demo", "AS_OF=2026-03-16"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    lines = dry.splitlines()
    rm = next(i for i, line in enumerate(lines) if line.startswith("rm ") and "relance.duckdb" in line)
    run = next(i for i, line in enumerate(lines) if " run " in line and "--outbox" in line)
    assert rm < run
    for target in (".relance/relance.duckdb", ".relance/outbox", ".relance/reports"):
        assert target in lines[rm].split(), lines[rm]
    assert lines[rm].startswith("rm -rf ")
