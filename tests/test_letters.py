"""Letters and registered letters: PDFs opened and read back — the window, the invoices, the formal
notice's sums from the ladder's tables, per-letter files split from one rendering, the print batch
and its manifest."""

from __future__ import annotations

import csv
import email
import email.policy
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

from tasks.dispatch import approve, dispatch
from tasks.dispatch.ledger import file_stem
from tests.fakes.scenario import action, build, customer, deliveries, events, invoice, pdf_positions, pdf_text

AS_OF = date(2026, 3, 16)
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
NNBSP, NBSP = "\u202f", "\u00a0"
EVIL = "<b>Dupont</b> {{ 7*7 }} {% if 1 %}X{% endif %}"


def _text(s: str) -> str:
    """PDF text with the typographic spaces pypdf may or may not give back as plain spaces."""
    return s.replace(NNBSP, " ").replace(NBSP, " ")


@pytest.fixture(scope="module")
def posted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("letters")
    many = [invoice(f"M{i:02d}", "C3", "2026-01-02", "2026-02-01", f"{100 + i}.00") for i in range(45)]
    db = build(
        tmp,
        customers=[
            customer("C1", "Boulangerie Martin SARL"),
            customer(
                "C2",
                "Acme Ltd",
                language="en",
                country="GB",
                street="1 High Street",
                postal_code="SW1A 1AA",
                city="London",
            ),
            customer("C3", EVIL, street="<script>x</script> 3 rue {{ a }}"),
            customer("C4", "Jeanne Particulier", segment="b2c"),
        ],
        invoices=[
            invoice("F1", "C1", "2026-01-05", "2026-02-04", "1234.56"),
            invoice("F2", "C1", "2026-01-20", "2026-02-14", "80.00"),
            invoice("F3", "C2", "2026-01-05", "2026-02-04", "2500.00"),
            invoice("F4", "C4", "2026-01-05", "2026-02-04", "300.00"),
            *many,
        ],
        as_of=AS_OF,
        with_charges_table=True,
        actions=[
            action(
                "A1",
                "C1",
                "formal_notice",
                ["F1", "F2"],
                deliveries=[("D1", "registered_letter", "pending_approval")],
                charges={"per_invoice": {"F1": ("16.44", "40.00"), "F2": ("0.61", "40.00")}},
            ),
            action(
                "A2",
                "C2",
                "formal_notice",
                ["F3"],
                deliveries=[("D2", "registered_letter", "pending_approval")],
                charges={"per_invoice": {"F3": ("33.29", "40.00")}},
            ),
            action("A3", "C3", "reminder_2", [f"M{i:02d}" for i in range(45)], deliveries=[("D3", "letter")]),
            action(
                "A4",
                "C4",
                "formal_notice",
                ["F4"],
                deliveries=[("D4", "registered_letter", "pending_approval")],
                charges={"interest": "4.00", "indemnity": "0"},
            ),
            action("A5", "C1", "reminder_2", ["F1"], deliveries=[("D5", "letter")], as_of=date(2026, 3, 16)),
        ],
    )
    approve(str(db), AS_OF, approve_all=True, by="claire")
    outbox = tmp / "outbox"
    summary = dispatch(str(db), AS_OF, str(outbox), now=NOW)
    return db, outbox / AS_OF.isoformat(), summary


def test_every_letter_is_a_pdf(posted):
    db, out, summary = posted
    rows = deliveries(db)
    assert {d: rows[d]["status"] for d in ("D1", "D2", "D3", "D4", "D5")} == dict.fromkeys(
        ("D1", "D2", "D3", "D4", "D5"), "sent"
    )
    assert summary["by_channel"] == {"letter": {"sent": 2}, "registered_letter": {"sent": 3}}
    for d in ("D1", "D2", "D4"):
        assert rows[d]["artifact_path"] == str(out / "registered_letter" / f"{file_stem(d)}.pdf")
        assert PdfReader(rows[d]["artifact_path"]).pages  # opens


def test_french_formal_notice_states_the_tables_sums(posted):
    _, out, _ = posted
    text = _text(pdf_text(out / "registered_letter" / f"{file_stem('D1')}.pdf"))
    assert "Mise en demeure de payer" in text
    assert "LETTRE RECOMMANDÉE AVEC ACCUSÉ DE RÉCEPTION" in text
    assert "Lyon, le 16 mars 2026" in text and "Objet" not in text.split("Mise en demeure")[0][-40:]
    for s in ("F1", "05/01/2026", "04/02/2026", "1 234,56 €", "F2", "80,00 €"):
        assert s in text, s
    # principal 1 314,56 + interest 17,05 (16,44 + 0,61 from action_charges) + 2 × 40 €
    assert "1 314,56 €" in text and "17,05 €" in text and "80,00 €" in text and "1 411,61 €" in text
    assert "16,44 €" in text and "0,61 €" in text  # per invoice, from action_charges
    assert "L441-10" in text and "D441-5" in text and "1344" in text
    assert "8 jours" in text and "injonction de payer" in text


def test_english_formal_notice(posted):
    _, out, _ = posted
    text = _text(pdf_text(out / "registered_letter" / f"{file_stem('D2')}.pdf"))
    assert "Formal notice" in text and "Mise en demeure" not in text
    assert "€2,500.00" in text and "€33.29" in text and "€40.00" in text and "€2,573.29" in text
    assert "5 January 2026" in text and "4 February 2026" in text
    assert "UNITED KINGDOM" in text or "ROYAUME-UNI" in text  # international mail: the country line
    assert "8 days" in text


def test_consumer_formal_notice_without_charges_table_rows(posted):
    _, out, _ = posted
    text = _text(pdf_text(out / "registered_letter" / f"{file_stem('D4')}.pdf"))
    assert "Mise en demeure de payer" in text and "4,00 €" in text and "304,00 €" in text
    assert "D441-5" not in text and "40 €" not in text and "1344-1" in text


def test_address_sits_in_the_envelope_window(posted):
    _, out, _ = posted
    spots = pdf_positions(out / "letter" / f"{file_stem('D5')}.pdf")
    name = [(x, y) for t, x, y in spots if t.startswith("Boulangerie Martin SARL")]
    assert name, spots[:10]
    x, y = name[0]
    assert 108 <= x <= 114 and 45 <= y <= 60  # DL window on the right: ~110 mm from the left, ~48 mm from the top
    street = [(x, y) for t, x, y in spots if t.startswith("12 rue des Lilas")][0]
    assert abs(street[0] - x) < 1 and street[1] > y


def test_a_long_letter_spans_pages_and_keeps_them(posted):
    _, out, _ = posted
    reader = PdfReader(out / "letter" / f"{file_stem('D3')}.pdf")
    assert len(reader.pages) >= 2
    text = _text(pdf_text(out / "letter" / f"{file_stem('D3')}.pdf"))
    assert "M00" in text and "M44" in text and "Deuxième relance" in text
    # the injection attempt prints as written (the name wraps in the window: compare words)
    flat = " ".join(text.split())
    assert "<b>Dupont</b> {{ 7*7 }} {% if 1 %}X{% endif %}" in flat and "49" not in flat.split("Dupont")[1][:20]
    assert "<script>x</script> 3 rue {{ a }}" in flat


def test_print_batch_and_manifest(posted):
    _, out, summary = posted
    for channel in ("letter", "registered_letter"):
        info = summary["print"][channel]
        batch = PdfReader(info["print_batch"])
        with open(info["manifest"], newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert "tracking_number" in rows[0] and all(r["tracking_number"] == "" for r in rows)
        assert sum(int(r["pages"]) for r in rows) == len(batch.pages) == info["pages"]
        for r in rows:  # each letter's first page in the batch is that letter's first page
            single = PdfReader(r["file"])
            assert len(single.pages) == int(r["pages"])
            first = batch.pages[int(r["first_page"]) - 1].extract_text()
            assert first == single.pages[0].extract_text()
    reg = list(csv.DictReader(open(summary["print"]["registered_letter"]["manifest"], encoding="utf-8")))
    assert {r["registered"] for r in reg} == {"yes"} and {r["delivery_id"] for r in reg} == {"D1", "D2", "D4"}
    assert not (out / "letter" / ".parts").exists()


def test_chunks_are_equal_and_a_multiple_of_the_workers():
    """Letters go to the PDF workers in chunks of at most chunk_size, of equal size (± 1) and a
    multiple of the number of workers, so that no worker is left rendering alone at the end."""
    from tasks.dispatch.post import plan_chunks

    def sizes(n, size, workers):
        chunks = plan_chunks(n, size, workers)
        assert chunks[0][0] == 0 and chunks[-1][1] == n  # contiguous, in order, everything once
        assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
        return [b - a for a, b in chunks]

    assert sizes(500, 80, 2) == [63, 63, 63, 63, 62, 62, 62, 62]
    assert sizes(264, 80, 2) == [66] * 4
    assert sizes(100, 80, 1) == [50, 50]
    assert sizes(90, 40, 1) == [30, 30, 30]
    assert sizes(1, 80, 2) == [1]
    assert plan_chunks(0, 80, 2) == []
    for n in range(1, 300, 7):
        got = sizes(n, 40, 2)
        assert max(got) <= 40 and max(got) - min(got) <= 1 and (len(got) % 2 == 0 or len(got) == n)


# -- what a letter says is true on the day it leaves (contract §3 "What a message says") -------------


def _formal_notice_sent_later(tmp, *, name, customers, invoices, payments, decided, sent, per_invoice, invoice_ids):
    db = build(
        tmp,
        name=name,
        customers=customers,
        invoices=invoices,
        payments=payments,
        as_of=sent,
        with_charges_table=True,
        actions=[
            action(
                "FN",
                customers[0]["customer_id"],
                "formal_notice",
                invoice_ids,
                as_of=decided,
                deliveries=[
                    ("FN-reg", "registered_letter", "pending_approval"),
                    ("FN-mail", "email", "pending_approval"),
                ],
                charges={"per_invoice": per_invoice},
            ),
        ],
    )
    approve(str(db), sent, approve_all=True, by="claire")
    outbox = tmp / f"{name}-outbox"
    summary = dispatch(str(db), sent, str(outbox), now=datetime.combine(sent, datetime.min.time(), UTC))
    return db, outbox / sent.isoformat(), summary


def test_a_notice_approved_after_a_part_payment_claims_what_is_still_owed(tmp_path):
    """Decided 03-17 on I1 700.00 + I2 50.00 (750.00); 600.00 paid on I1 on 03-18; approved and sent 03-20.
    Worked by hand at 03-20, 2026-H1 rate 2.15 % + 10 points = 12.15 %, 365-day year, half-up per invoice,
    interest on what was owed each day (issue 16: the payment lowers the base from its date):
      I1 open 100.00, due 02-10: 38 days late, 35 days (02-11..03-17) × 700.00 + 3 days (03-18..03-20)
         × 100.00 → (297 675 + 3 645) / 36 500 = 8.2553 → 8.26
      I2 open  50.00, due 02-14: 34 days late,  50.00 × 12.15 % × 34 / 365 = 0.5659 → 0.57
    principal 150.00, interest 8.83, indemnities 2 × 40.00, total 238.83."""
    db, out, summary = _formal_notice_sent_later(
        tmp_path,
        name="part",
        customers=[customer("C1", "Boulangerie Martin SARL")],
        invoices=[
            invoice("I1", "C1", "2026-01-10", "2026-02-10", "700.00"),
            invoice("I2", "C1", "2026-01-14", "2026-02-14", "50.00"),
        ],
        payments=[
            {"payment_id": "P1", "customer_id": "C1", "invoice_id": "I1", "paid_date": "2026-03-18", "amount": "600.00"}
        ],
        decided=date(2026, 3, 17),
        sent=date(2026, 3, 20),
        per_invoice={"I1": ("8.16", "40.00"), "I2": ("0.52", "40.00")},
        invoice_ids=["I1", "I2"],
    )
    assert summary["by_channel"] == {"registered_letter": {"sent": 1}, "email": {"sent": 1}}
    text = " ".join(_text(pdf_text(out / "registered_letter" / f"{file_stem('FN-reg')}.pdf")).split())
    assert "Lyon, le 20 mars 2026" in text
    assert "150,00 € en principal" in text and "238,83 €" in text
    assert "100,00 €" in text and "50,00 €" in text and "8,26 €" in text and "0,57 €" in text and "8,83 €" in text
    assert " 38 " in f" {text} " and " 34 " in f" {text} "
    assert "750,00" not in text and "700,00" not in text and "8,16" not in text and "8,68" not in text
    msg = email.message_from_bytes(
        (out / "email" / f"{file_stem('FN-mail')}.eml").read_bytes(), policy=email.policy.default
    )
    mail = _text(msg.get_body(("plain",)).get_content())
    assert "238,83" in mail and "750,00" not in mail
    rows = deliveries(db)
    for d in ("FN-reg", "FN-mail"):
        assert rows[d]["figures_as_of"] == date(2026, 3, 20)
        assert str(rows[d]["stated_amount_due"]) == "150.00" and str(rows[d]["stated_charges_total"]) == "88.83"
        assert list(rows[d]["stated_invoice_ids"]) == ["I1", "I2"]
    changed = [e for e in events(db, "FN-reg") if (e["detail"] or "").startswith("figures as of")]
    assert len(changed) == 1
    detail = changed[0]["detail"]
    assert "figures as of 2026-03-20 (decided on 2026-03-17)" in detail
    assert "amount due 750.00 -> 150.00" in detail and "interest 8.68 -> 8.83" in detail
    assert "charges 88.68 -> 88.83" in detail and "invoices" not in detail  # both invoices still open


def test_a_notice_sent_days_after_its_decision_counts_days_and_interest_to_the_send_date(tmp_path):
    """Decided Fri 4 Dec 2026, sent Mon 7 Dec: J1 1000.00 due 30 Oct. At 7 Dec: 38 days late,
    1000.00 × 12.15 % (2026-H2: 2.15 % + 10) × 38 / 365 = 12.6493 → 12.65 (at 4 Dec: 35 days, 11.65);
    total 1000.00 + 12.65 + 40.00 = 1052.65."""
    db, out, _ = _formal_notice_sent_later(
        tmp_path,
        name="later",
        customers=[customer("C2", "Garage Petit")],
        invoices=[invoice("J1", "C2", "2026-09-30", "2026-10-30", "1000.00")],
        payments=[],
        decided=date(2026, 12, 4),
        sent=date(2026, 12, 7),
        per_invoice={"J1": ("11.65", "40.00")},
        invoice_ids=["J1"],
    )
    text = " ".join(_text(pdf_text(out / "registered_letter" / f"{file_stem('FN-reg')}.pdf")).split())
    assert "le 7 décembre 2026" in text
    assert "12,65 €" in text and "1 052,65 €" in text and " 38 " in f" {text} "
    assert "11,65" not in text and "1 051,65" not in text and " 35 " not in f" {text} "
    detail = [e["detail"] for e in events(db, "FN-reg") if (e["detail"] or "").startswith("figures as of")][0]
    assert detail == (
        "figures as of 2026-12-07 (decided on 2026-12-04): interest 11.65 -> 12.65; charges 51.65 -> 52.65"
    )


# -- the formal notice's layout: laid out, then measured ------------------------------------------------


def _laid_out(lang: str, **row):
    """The formal notice to a business (seven columns), laid out by WeasyPrint as it is printed."""
    from weasyprint import HTML

    from tasks.dispatch.config import load_channels_config
    from tasks.dispatch.post import document_html, letter_css
    from tasks.dispatch.render import Renderer, message_context, sample_row

    cfg = load_channels_config()
    r = Renderer(cfg)
    data = sample_row("formal_notice", "registered_letter", lang)
    data.update(row)
    ctx = message_context(data, cfg, AS_OF, r.i18n)
    ctx.update(anchor="L0", formal=True)
    return HTML(string=document_html(letter_css(r), [r.letter(ctx)])).render()


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_formal_notice_table_headings_stay_in_their_columns_and_the_table_on_the_page(lang, tmp_path):
    from weasyprint.formatting_structure import boxes

    doc = _laid_out(lang)
    page = doc.pages[0]._page_box
    left, right = page.content_box_x(), page.content_box_x() + page.width
    table = next(
        b for b in page.descendants() if isinstance(b, boxes.TableBox) and "invoices" in (b.element.get("class") or "")
    )
    t_left, t_right = table.border_box_x(), table.border_box_x() + table.border_width()
    assert left - 0.5 <= t_left and t_right <= right + 0.5, (lang, t_left, t_right, left, right)
    cells = [c for c in table.descendants() if isinstance(c, boxes.TableCellBox)]
    headings = [c for c in cells if c.element_tag == "th"]
    assert len(headings) == 7
    for cell in cells:  # every word of a heading or a cell inside that cell (no overlap with the next one)
        c_left, c_right = cell.border_box_x(), cell.border_box_x() + cell.border_width()
        for text in (b for b in cell.descendants() if isinstance(b, boxes.TextBox)):
            assert c_left - 0.5 <= text.position_x and text.position_x + text.width <= c_right + 0.5, (
                lang,
                text.text,
                text.position_x,
                text.position_x + text.width,
                c_left,
                c_right,
            )
    for a, b in zip(headings, headings[1:]):
        assert a.border_box_x() + a.border_width() <= b.border_box_x() + 0.5
    # and every text of every page inside the page, as printed (pypdf reads the PDF's text positions back)
    pdf = tmp_path / f"fn-{lang}.pdf"
    doc.write_pdf(pdf)
    for n in range(len(PdfReader(str(pdf)).pages)):
        for text, x, y in pdf_positions(pdf, n):
            assert 0 <= x <= 210 - 10 and 0 <= y <= 297, (lang, text, x, y)


def test_a_notice_whose_claim_was_settled_before_it_leaves_is_skipped(tmp_path):
    """Decided 03-17 on I1 + I2; both paid on 03-18; approved 03-20: nothing is sent, both deliveries
    `skipped` with the reason, no letter in the outbox."""
    db, out, summary = _formal_notice_sent_later(
        tmp_path,
        name="paid",
        customers=[customer("C1", "Boulangerie Martin SARL")],
        invoices=[
            invoice("I1", "C1", "2026-01-10", "2026-02-10", "700.00"),
            invoice("I2", "C1", "2026-01-14", "2026-02-14", "50.00"),
        ],
        payments=[
            {
                "payment_id": "P1",
                "customer_id": "C1",
                "invoice_id": "I1",
                "paid_date": "2026-03-18",
                "amount": "700.00",
            },
            {"payment_id": "P2", "customer_id": "C1", "invoice_id": "I2", "paid_date": "2026-03-18", "amount": "50.00"},
        ],
        decided=date(2026, 3, 17),
        sent=date(2026, 3, 20),
        per_invoice={"I1": ("8.16", "40.00"), "I2": ("0.52", "40.00")},
        invoice_ids=["I1", "I2"],
    )
    rows = deliveries(db)
    assert {rows[d]["status"] for d in ("FN-reg", "FN-mail")} == {"skipped"}
    assert "settled" in rows["FN-reg"]["last_error"] and summary["by_channel"] == {}
    assert not (out / "registered_letter").exists() or not list((out / "registered_letter").glob("*.pdf"))


def test_an_invoice_paid_before_the_notice_leaves_is_no_longer_claimed(tmp_path):
    """Decided 03-17 on I1 700.00 + I2 50.00; I1 paid in full on 03-18; sent 03-20: the notice claims
    I2 only — 50.00, 34 days late, 50.00 × 12.15 % × 34 / 365 = 0.57, one indemnity 40.00,
    total 90.57 — and the change is recorded."""
    db, out, _ = _formal_notice_sent_later(
        tmp_path,
        name="one",
        customers=[customer("C1", "Boulangerie Martin SARL")],
        invoices=[
            invoice("I1", "C1", "2026-01-10", "2026-02-10", "700.00"),
            invoice("I2", "C1", "2026-01-14", "2026-02-14", "50.00"),
        ],
        payments=[
            {"payment_id": "P1", "customer_id": "C1", "invoice_id": "I1", "paid_date": "2026-03-18", "amount": "700.00"}
        ],
        decided=date(2026, 3, 17),
        sent=date(2026, 3, 20),
        per_invoice={"I1": ("8.16", "40.00"), "I2": ("0.52", "40.00")},
        invoice_ids=["I1", "I2"],
    )
    text = " ".join(_text(pdf_text(out / "registered_letter" / f"{file_stem('FN-reg')}.pdf")).split())
    assert "I2" in text and "I1" not in text
    assert "50,00 € en principal" in text and "0,57 €" in text and "90,57 €" in text
    assert "la facture ci-dessous demeure impayée" in text  # one invoice: singular
    detail = [e["detail"] for e in events(db, "FN-reg") if (e["detail"] or "").startswith("figures as of")][0]
    assert detail == (
        "figures as of 2026-03-20 (decided on 2026-03-17): invoices I1, I2 -> I2; "
        "amount due 750.00 -> 50.00; interest 8.68 -> 0.57; indemnity 80.00 -> 40.00; charges 88.68 -> 40.57"
    )


def test_a_notice_whose_send_date_has_no_reference_rate_waits(tmp_path):
    """Decided 2026-12-30, sent 2027-01-04 with a policy that has no 2027-H1 rate: the interest of the
    January days cannot be computed, so the notice is not sent tonight (it stays planned, the run
    says why) — never sent with the January days left out."""
    from relance.core.paths import ROOT

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "\n".join(
            line
            for line in (ROOT / "policies" / "default.yaml").read_text(encoding="utf-8").splitlines()
            if "2027-H1" not in line
        )
        + "\n",
        encoding="utf-8",
    )
    sent = date(2027, 1, 4)
    db = build(
        tmp_path,
        name="norate",
        customers=[customer("C1")],
        as_of=sent,
        with_charges_table=True,
        invoices=[invoice("J1", "C1", "2026-10-20", "2026-11-20", "1000.00")],
        actions=[
            action(
                "FN",
                "C1",
                "formal_notice",
                ["J1"],
                as_of=date(2026, 12, 30),
                deliveries=[("FN-reg", "registered_letter", "pending_approval")],
                charges={"per_invoice": {"J1": ("13.32", "40.00")}},
            )
        ],
    )
    approve(str(db), sent, approve_all=True, by="claire")
    summary = dispatch(
        str(db), sent, str(tmp_path / "out"), now=datetime(2027, 1, 4, 9, 0, tzinfo=UTC), policy=str(policy)
    )
    assert deliveries(db)["FN-reg"]["status"] == "planned"
    assert any("FN-reg" in e and "2027-H1" in e for e in summary["errors"]), summary["errors"]
