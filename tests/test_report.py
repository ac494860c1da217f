"""The finance report: HTML (rendered in headless Chromium), PDF, Excel, and the Prefect artifacts.

The data are those of tests/test_metrics.py (hand-worked there), measured on three run dates for
the trends, with a customer whose name tries to inject markup, a rejected source row, a formal
notice awaiting approval and deliveries failed, undeliverable and in doubt.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tasks import warehouse
from tasks.measure import measure
from tasks.report import artifact_content, publish_artifacts, report
from tests.conftest import IN_CI
from tests.test_metrics import AS_OF, HOLDS, INVOICES, PAYMENTS, add_action, add_unit, prepare

EVIL = 'Alpha <script>alert("x")</script> & Fils'
CUSTOMERS = [
    {
        "customer_id": "A1",
        "name": EVIL,
        "email": "compta@alpha.example",
        "street": "1 rue A",
        "postal_code": "75001",
        "city": "Paris",
        "segment": "b2b",
        "collector": "Claire",
    },
    {"customer_id": "B1", "name": "Bruno Martin", "segment": "b2c"},
]
BAD_INVOICE = {
    "invoice_id": "BAD1",
    "customer_id": "A1",
    "issue_date": "2026-06-01",
    "due_date": "2026-07-01",
    "amount": "-5.00",
}


def add_outcomes(con):
    """What debtors said (issue 14 §4), worked by hand at D = 06-30 (promises due in (05-31, 06-30)):
    O1 A1 EUR promise 300.00 said 06-01 by Claire on call X1 (call_1), until 06-11: PA1 400.00 on
       06-10 covers it → kept;
    O2 B1 EUR promise 100.00 said 06-02 by Marc, until 06-12: nothing paid by then (PB2 is 06-25) → broken;
    O3 A1 EUR dispute of IA2 said 06-05 by Claire, reason price, unresolved → open, 25 days (0-30);
    O4 A1 GBP plan 250.00 said 06-20 by Claire, one instalment 07-10 (grace 07-13) → on track.
    EUR: kept 1 / 2 = 50 % by count, 300 / 400 = 75 % by amount; broken 1 (Marc: 0 % kept).
    Cash by last step (EUR): PA1 400.00 06-10 after X1 (05-20, call_1, phone, Claire spoke of it
    on 06-01) → call_1 / phone / Claire; PB2 800.00 06-25, B1 has no real step before → none."""
    rows = [
        (
            "O1",
            "A1",
            "EUR",
            "promise",
            date(2026, 6, 1),
            "300.00",
            date(2026, 6, 8),
            date(2026, 6, 11),
            None,
            None,
            "X1",
            "Claire",
        ),
        (
            "O2",
            "B1",
            "EUR",
            "promise",
            date(2026, 6, 2),
            "100.00",
            date(2026, 6, 9),
            date(2026, 6, 12),
            None,
            None,
            None,
            "Marc",
        ),
        ("O3", "A1", "EUR", "dispute", date(2026, 6, 5), None, None, None, ["IA2"], "price", None, "Claire"),
        (
            "O4",
            "A1",
            "GBP",
            "plan",
            date(2026, 6, 20),
            "250.00",
            date(2026, 7, 10),
            date(2026, 7, 13),
            None,
            None,
            None,
            "Claire",
        ),
    ]
    for oid, cust, cur, kind, said, amount, promised, until, invoices, reason, action, by in rows:
        con.execute(
            """insert into outcomes (outcome_id, customer_id, currency, kind, said_on, amount, promised_date,
                                     hold_until, invoice_ids, reason, action_id, source, recorded_by, recorded_at)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'cli', ?, ?)""",
            [
                oid,
                cust,
                cur,
                kind,
                said,
                Decimal(amount) if amount else None,
                promised,
                until,
                invoices,
                reason,
                action,
                by,
                datetime(2026, 6, 30, 12),
            ],
        )
    con.execute("insert into outcome_instalments values ('O4', 1, '2026-07-10', 250.00, '2026-07-13')")


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A warehouse measured on 06-28, 06-29 and 06-30, and the report of 06-30 in fr and en."""
    from tests.conftest import write_source

    root = tmp_path_factory.mktemp("report")
    src = write_source(
        root / "src", customers=CUSTOMERS, invoices=INVOICES + [BAD_INVOICE], payments=PAYMENTS, holds=HOLDS
    )
    db = root / "r.duckdb"
    for day in (AS_OF - timedelta(days=2), AS_OF - timedelta(days=1), AS_OF):
        prepare(db, src, day)
        if day == AS_OF:
            with warehouse.open_db(db) as con:
                add_action(
                    con,
                    "X1",
                    date(2026, 5, 20),
                    "A1",
                    "EUR",
                    "call_1",
                    3,
                    "1000.00",
                    ["IA1"],
                    deliveries=[("phone", "sent")],
                )
                add_action(
                    con,
                    "Y1",
                    AS_OF,
                    "A1",
                    "EUR",
                    "reminder_2",
                    4,
                    "500.00",
                    ["IA1"],
                    status="sent",
                    deliveries=[("email", "sent"), ("sms", "failed"), ("letter", "undeliverable")],
                )
                add_action(
                    con,
                    "Y2",
                    AS_OF,
                    "A1",
                    "GBP",
                    "call_2",
                    5,
                    "250.00",
                    ["IG1"],
                    status="sent",
                    deliveries=[("phone", "in_doubt")],
                )
                add_action(
                    con,
                    "Y3",
                    AS_OF,
                    "B1",
                    "EUR",
                    "formal_notice",
                    6,
                    "800.00",
                    ["IB1"],
                    status="pending_approval",
                    deliveries=[("registered_letter", "pending_approval")],
                )
                con.execute(
                    "update deliveries set last_error = 'no postal address (street and city) for a letter' "
                    "where status = 'undeliverable'"
                )
                add_unit(con, AS_OF, "A1", "EUR", "reminder_2")
                add_unit(con, AS_OF, "A1", "GBP", "call_2", held=True, hold_reason="promise")
                add_outcomes(con)
        measure(str(db), day)
    out = {}
    for lang in ("fr", "en"):
        out[lang] = report(str(db), AS_OF, str(root / f"out-{lang}"), language=lang)
    return db, out


def test_report_files_and_figures(reported):
    _, out = reported
    fr = Path(out["fr"]["html"]).read_text(encoding="utf-8")
    en = Path(out["en"]["html"]).read_text(encoding="utf-8")
    for lang in ("fr", "en"):
        for kind in ("html", "pdf", "xlsx"):
            assert Path(out[lang][kind]).stat().st_size > 1000
    assert Path(out["fr"]["pdf"]).read_bytes()[:5] == b"%PDF-"
    assert _pdf_svg_count(out["en"]["html"]) >= 4  # the charts are drawn in the PDF too
    # money for the reader: 1 300,00 € (fr, narrow no-break spaces), €1,300.00 (en)
    assert "1\u202f300,00\xa0€" in fr and "€1,300.00" in en
    assert "146,3\xa0j" in fr and "146.3\xa0d" in en  # DSO 146.25 days
    assert "52,4\xa0%" in fr and "52.4%" in en  # CEI 52.3810 %
    # the sections a finance person reads
    for text in (
        "Balance âgée",
        "L'échelle de relance aujourd'hui",
        "Relances du jour",
        "Efficacité des relances",
        "plus gros débiteur",
        "À traiter par une personne",
        "Tendance sur 3 dates",
        "Profils de paiement des débiteurs",
        "Encaissements attendus",
        "7 prochains jours",
    ):
        assert text in html.unescape(fr), text
    assert (
        "Steps awaiting approval (formal notices, letters the policy has approved)" in en
        and "Rejected source rows" in en
    )
    assert "amount -5.00 is negative" in en  # the rejected row, with its reason
    for kind in ("awaiting approval", "failed", "in doubt"):
        assert f'<td class="small">{kind}</td>' in en, kind
    # the ledger's English reason, in the reader's language
    assert '<td class="small">no postal address</td>' in en
    assert '<td class="small">pas d&#39;adresse postale</td>' in fr


def _pdf_svg_count(html_path: str) -> int:
    """How many inline SVG charts WeasyPrint lays out in the PDF."""
    from weasyprint import HTML

    def walk(box):
        yield box
        for child in getattr(box, "children", None) or []:
            yield from walk(child)

    doc = HTML(filename=html_path).render()
    return sum(
        type(getattr(b, "replacement", None)).__name__ == "SVGImage" for page in doc.pages for b in walk(page._page_box)
    )


def _pdf_text(html_path: str) -> str:
    """The text WeasyPrint lays out in the PDF, its text boxes (a wrapped line is one each) joined by a space."""
    from weasyprint import HTML

    def walk(box):
        yield box
        for child in getattr(box, "children", None) or []:
            yield from walk(child)

    doc = HTML(filename=html_path).render()
    text = " ".join(
        b.text for page in doc.pages for b in walk(page._page_box) if isinstance(getattr(b, "text", None), str)
    )
    return re.sub(r"\s+", " ", text)


def test_report_escapes_names_and_needs_no_network(reported):
    _, out = reported
    page = Path(out["en"]["html"]).read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "Alpha &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Fils" in page
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "src=" not in page and "href=" not in page
    assert page.count("<svg") >= 4  # sparklines, aged balance, funnel, recovery bars


def test_workbook_cells(reported):
    from openpyxl import load_workbook

    _, out = reported
    wb = load_workbook(out["en"]["xlsx"])
    assert wb.sheetnames == [
        "Summary",
        "Aged balance",
        "Debtors",
        "Outcomes",
        "Profiles",
        "Class changes",
        "Credit watch",
        "Forecast",
    ]
    aged = wb["Aged balance"]
    header = [c.value for c in aged[1]]
    assert header == [
        "Customer",
        "Name",
        "Currency",
        "Not yet due",
        "1–30 days",
        "31–60 days",
        "61–90 days",
        "91–180 days",
        "Over 180 days",
        "Unapplied",
        "Open",
        "Overdue",
    ]
    rows = {(r[0].value, r[2].value): r for r in aged.iter_rows(min_row=2)}
    a1 = rows[("A1", "EUR")]
    assert a1[1].value == EVIL  # the name as is: a spreadsheet cell is not markup
    assert [c.value for c in a1[3:12]] == [300, 500, 0, 500, 0, 0, 0, 1300, 1000]
    assert all(c.number_format == "#,##0.00" for c in a1[3:12])
    assert [c.value for c in rows[("B1", "EUR")][3:12]] == [0, 0, 0, 0, 0, 0, 200, 0, 0]
    assert [c.value for c in rows[("Total", "EUR")][3:12]] == [300, 500, 0, 500, 0, 0, 200, 1300, 1000]
    debtors = wb["Debtors"]
    first = [c.value for c in debtors[2]]
    assert first[:7] == ["A1", EVIL, "businesses", "EUR", 1300, 1000, 82]
    assert first[9] == "Reminder 2"
    summary = {(r[0].value, r[1].value): r[2] for r in wb["Summary"].iter_rows(min_row=2)}
    assert [c.value for c in wb["Summary"][1]] == ["Currency", "Metric", "Value"]
    # each value with its unit: a percentage is the fraction Excel shows as 52.4%, days and money too
    cei = summary[("EUR", "Collection effectiveness (CEI 30 d)")]
    assert cei.value == float(Decimal("52.3810") / 100) and cei.number_format == "0.0%"
    dso = summary[("EUR", "DSO (90 days)")]
    assert dso.value == 146.25 and dso.number_format == '#,##0.0"\u00a0d"'
    open_ar = summary[("EUR", "Open receivables")]
    assert open_ar.value == 1300 and open_ar.number_format == '"€"#,##0.00'
    assert summary[("GBP", "Open receivables")].number_format == '"£"#,##0.00'
    fr = load_workbook(out["fr"]["xlsx"])
    assert fr.sheetnames == [
        "Synthèse",
        "Balance âgée",
        "Débiteurs",
        "Échanges",
        "Profils",
        "Changements de classe",
        "Surveillance crédit",
        "Prévision",
    ]
    synthese = {(r[0].value, r[1].value): r[2] for r in fr["Synthèse"].iter_rows(min_row=2)}
    assert synthese[("EUR", "Efficacité de recouvrement (CEI 30 j)")].number_format == "0.0 %"
    assert synthese[("EUR", "DSO (90 jours)")].number_format == '#,##0.0"\u00a0j"'
    assert synthese[("EUR", "Encours clients")].number_format == '#,##0.00 "€"'
    assert ("EUR", "DSO incompressible (90 jours)") in synthese and ("EUR", "Encours non échu") in synthese


def test_workbook_strings_stay_text_and_numbers_stay_exact(tmp_path):
    """The workbook (xlsxwriter) read back with openpyxl: the sheets, the header row and its look,
    a value that looks like a formula or a DDE command stays text, markup and control characters
    survive, money is the cent-exact decimal, the header row is frozen and filtered."""
    from openpyxl import load_workbook

    from relance.core.policy import load_policy
    from tasks.report import Fmt, ReportData, write_workbook

    pol = load_policy(None)
    buckets = [b.name for b in pol.aging_buckets]
    formula = '=HYPERLINK("http://x","y")'
    dde = "+cmd|' /C calc'!A0"
    odd = " <b>A & B</b>\x01 _x0041_ "
    aged = [  # amounts as DuckDB returns them: Decimal with 2 places
        {"currency": "EUR", "customer_id": "C1", "name": formula, "bucket": "1-30", "amount": Decimal("1234.56")},
        {"currency": "EUR", "customer_id": "C1", "name": formula, "bucket": "181+", "amount": Decimal("0.10")},
        {"currency": "EUR", "customer_id": "C1", "name": formula, "bucket": "181+", "amount": Decimal("0.20")},
        {"currency": "EUR", "customer_id": "C2", "name": odd, "bucket": "not_due", "amount": Decimal("-0.10")},
        {
            "currency": "EUR",
            "customer_id": "C2",
            "name": odd,
            "bucket": "unapplied_credit",
            "amount": Decimal("99999999999.99"),
        },
    ]
    debtors = [
        {
            "customer_id": "C1",
            "name": dde,
            "segment": "b2b",
            "currency": "EUR",
            "open_amount": Decimal("1234.86"),
            "overdue_amount": Decimal("1234.86"),
            "oldest_days_past_due": 200,
            "email": "=1+1",
        }
    ]
    data = ReportData(
        as_of=AS_OF,
        db="",
        language="en",
        buckets=buckets,
        currencies=["EUR"],
        has_metrics=True,
        metrics={("EUR", "cei_30d", "all", "all"): Decimal("52.3810")},
        aged=aged,
        debtors=debtors,
    )
    path = tmp_path / "t.xlsx"
    assert write_workbook(path, data, pol, Fmt("en")) == path
    assert not path.with_suffix(".xlsx.tmp").exists()  # written to a .tmp, then moved

    wb = load_workbook(path, read_only=True)
    assert wb.sheetnames == [
        "Summary",
        "Aged balance",
        "Debtors",
        "Outcomes",
        "Profiles",
        "Class changes",
        "Credit watch",
        "Forecast",
    ]
    wb.close()
    wb = load_workbook(path)  # not read-only: panes, filters, widths and fonts too
    assert wb.active.title == "Summary" and wb["Summary"].sheet_view.tabSelected
    sheet = wb["Aged balance"]
    assert [c.value for c in sheet[1]] == ["Customer", "Name", "Currency"] + [
        Fmt("en", pol).bucket(b) for b in buckets
    ] + ["Unapplied", "Open", "Overdue"]
    for c in sheet[1]:
        assert c.font.b and c.fill.fgColor.rgb == "FFDDE6F0" and c.alignment.vertical == "top" and c.alignment.wrap_text
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:L1"
    assert sheet.column_dimensions["A"].width == 14 and sheet.column_dimensions["B"].width == 36
    c1 = {c.column_letter: c for c in sheet[2]}
    assert c1["A"].value == "C1"
    assert c1["B"].value == formula and c1["B"].data_type == "s"  # text, not a formula

    # money: the double nearest to the decimal quantized to the cent (its shortest repr is the decimal)
    def cents(cell) -> Decimal:
        assert cell.data_type == "n" and cell.number_format == "#,##0.00"
        return Decimal(repr(cell.value))

    assert cents(c1["E"]) == Decimal("1234.56")
    # 0.10 + 0.20 summed as decimals: 0.30 (a float sum would be 0.30000000000000004)
    assert cents(c1["I"]) == Decimal("0.30")
    assert cents(c1["K"]) == cents(c1["L"]) == Decimal("1234.56") + Decimal("0.10") + Decimal("0.20")
    c2 = {c.column_letter: c for c in sheet[3]}

    # markup and spaces kept; a control character XML cannot hold travels as Excel's _xHHHH_ escape
    # (and a literal "_x0041_" has its underscore escaped): openpyxl leaves the escapes, Excel reads
    # them back as below
    def excel_text(value: str) -> str:
        return re.sub(r"_x([0-9A-F]{4})_", lambda m: chr(int(m.group(1), 16)), value)

    assert c2["B"].data_type == "s" and excel_text(c2["B"].value) == odd
    assert cents(c2["D"]) == Decimal("-0.10") and cents(c2["J"]) == Decimal("-99999999999.99")
    total = {c.column_letter: c for c in sheet[4]}
    assert total["A"].value == "Total" and total["A"].font.b and total["E"].font.b
    assert total["B"].value is None and total["B"].font.b  # the total row's empty cells are bold too
    assert cents(total["K"]) == Decimal("1234.76") and cents(total["D"]) == Decimal("-0.10")
    debtors_sheet = wb["Debtors"]
    row = {c.column_letter: c for c in debtors_sheet[2]}
    assert row["B"].value == dde and row["B"].data_type == "s"
    assert row["Q"].value == "=1+1" and row["Q"].data_type == "s"
    assert row["G"].value == 200 and row["G"].number_format == "#,##0"
    # no profile measured: class, score, broken promises and disputes (L to O) stay empty
    assert [row[k].value for k in "LMNO"] == [None, None, None, None]
    assert debtors_sheet.freeze_panes == "A2" and debtors_sheet.auto_filter.ref == "A1:T1"  # T: the ladder
    summary = wb["Summary"]
    assert [c.value for c in summary[2]] == ["EUR", "Collection effectiveness (CEI 30 d)", 0.52381]
    assert summary["C2"].number_format == "0.0%"
    # no formula anywhere in the package
    with zipfile.ZipFile(path) as z:
        assert not any("<f>" in z.read(n).decode() for n in z.namelist() if n.startswith("xl/worksheets/"))


def test_workbook_failure_leaves_the_previous_file(tmp_path):
    """A failure while writing leaves the previous workbook in place and no .tmp behind."""
    from relance.core.policy import load_policy
    from tasks.report import Fmt, ReportData, write_workbook

    pol = load_policy(None)
    path = tmp_path / "t.xlsx"
    path.write_bytes(b"previous")
    data = ReportData(
        as_of=AS_OF,
        db="",
        language="en",
        buckets=[b.name for b in pol.aging_buckets],
        debtors=[{"name": "no customer_id"}],
    )
    with pytest.raises(KeyError):
        write_workbook(path, data, pol, Fmt("en"))
    assert path.read_bytes() == b"previous" and list(tmp_path.iterdir()) == [path]


def test_report_before_the_ladder_and_the_metrics_ran(source_writer, tmp_path):
    """Only ingest and age have run: the report still comes out, and says what is missing."""
    src = source_writer(customers=CUSTOMERS, invoices=INVOICES, payments=PAYMENTS, holds=HOLDS)
    db = tmp_path / "r.duckdb"
    prepare(db, src, AS_OF)
    with warehouse.open_db(db) as con:  # a warehouse from before the ladder's tables existed
        con.execute("drop table if exists unit_stage")
        con.execute("drop table if exists deliveries")
    res = report(str(db), AS_OF, str(tmp_path / "out"), language="en")
    page = Path(res["html"]).read_text(encoding="utf-8")
    assert "Recovery metrics were not computed for this date" in page
    assert "The dunning ladder has not run for this date yet" in page
    assert "€1,300.00" in page  # the aged balance total, from aged_balance
    from openpyxl import load_workbook

    assert load_workbook(res["xlsx"])["Aged balance"].max_row > 1


def test_artifacts_only_inside_a_flow_run(reported):
    db, out = reported
    assert publish_artifacts(str(db), AS_OF, out["en"]) == {}
    content = artifact_content(str(db), AS_OF, out["en"])
    json.dumps(content)  # no Decimal, no date: what Prefect's table artifact serialises
    assert content["table"][0]["customer_id"] == "A1" and content["table"][0]["overdue"] == "1000.00"
    assert "open receivables | 1300.00 EUR" in content["markdown"]
    assert "formal notices awaiting approval: 1" in content["markdown"]


def test_artifacts_in_a_flow_run(reported, prefect_server):
    import asyncio
    from uuid import UUID

    from prefect import flow, get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId, ArtifactFilterKey

    db, out = reported

    @flow(name="report-artifacts-test")
    def publish():
        return publish_artifacts(str(db), AS_OF, out["en"])

    ids = publish()
    assert set(ids) == {
        "relance-summary",
        "relance-top-debtors",
        "relance-outcomes",
        "relance-credit-watch",
        "relance-cash-forecast",
        "relance-report",
    }

    async def read():
        # the artifacts of this publication (other tests publish under the same stable keys)
        async with get_client() as client:
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=list(ids)),
                    id=ArtifactFilterId(any_=[UUID(i) for i in ids.values()]),
                )
            )
            return {a.key: a for a in arts}

    arts = asyncio.run(read())
    assert Path(out["en"]["html"]).resolve().as_uri() in str(arts["relance-report"].data)
    table = arts["relance-top-debtors"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert table[0]["name"] == EVIL and table[0]["currency"] == "EUR"
    assert "# relance — 2026-06-30" in arts["relance-summary"].data
    # the credit watch and the forecast as stored by Prefect (their figures: tests/test_debtor_profile.py
    # test_credit_watch_and_cash_forecast_artifacts)
    content = artifact_content(str(db), AS_OF, out["en"])
    for key, part in (("relance-credit-watch", "credit_watch"), ("relance-cash-forecast", "cash_forecast")):
        stored = arts[key].data
        assert (json.loads(stored) if isinstance(stored, str) else stored) == content[part]
    assert content["cash_forecast"][0]["currency"] == "EUR" and content["cash_forecast"][0]["within_days"] == "7"
    outcomes = arts["relance-outcomes"].data
    outcomes = json.loads(outcomes) if isinstance(outcomes, str) else outcomes
    assert {
        "currency": "EUR",
        "metric": "Promises kept (by amount)",
        "detail": "",
        "item": "",
        "value": "75.0%",
        "number": "75.0000",
    } in outcomes


# ------------------------------------------------------------------------------------ Chromium
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _DevTools:
    """A minimal Chrome DevTools Protocol client over the page's websocket."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=None, open_timeout=20)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))))

    def close(self) -> None:
        self.ws.close()


def render_png(chromium: str, html: Path, width: int = 1280) -> tuple[bytes, list[str], list[str]]:
    """Open the page in headless Chromium; returns (full-page PNG, console/page errors, URLs requested)."""
    page = render_page(chromium, html, width)
    return page["png"], page["errors"], page["urls"]


def render_page(chromium: str, html: Path, width: int = 1280, probe: str | None = None) -> dict:
    """Open the page in headless Chromium: {png: the full-page PNG, errors: console/page errors,
    urls: the URLs requested, probe: the value of the JavaScript expression `probe` evaluated in
    the laid-out page (None without one)}."""
    profile = Path(tempfile.mkdtemp(prefix="relance-chromium-"))
    proc = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        dt = _DevTools(page["webSocketDebuggerUrl"])
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                dt.call(f"{domain}.enable")
            dt.call(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            )
            dt.call("Page.navigate", {"url": html.resolve().as_uri()})
            dt.wait_for("Page.loadEventFired")
            size = dt.call("Page.getLayoutMetrics")["cssContentSize"]
            height = min(int(size["height"]), 12000)
            shot = dt.call(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                },
            )
            probed = None
            if probe is not None:
                found = dt.call("Runtime.evaluate", {"expression": probe, "returnByValue": True})
                if "exceptionDetails" in found:
                    raise RuntimeError(f"probe: {found['exceptionDetails']}")
                probed = found["result"].get("value")
            errors, urls = [], []
            for e in dt.events:
                m, p = e.get("method"), e.get("params", {})
                if m == "Runtime.exceptionThrown":
                    errors.append(json.dumps(p.get("exceptionDetails", {}))[:300])
                elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                    errors.append(json.dumps(p.get("args"))[:300])
                elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                    errors.append(p["entry"].get("text", ""))
                elif m == "Network.requestWillBeSent":
                    urls.append(p["request"]["url"])
            return {"png": base64.b64decode(shot["data"]), "errors": errors, "urls": urls, "probe": probed}
        finally:
            dt.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def test_report_renders_in_headless_chromium(reported, tmp_path):
    from PIL import Image

    chromium = _chromium()
    if chromium is None:
        message = "Chromium is not installed (Debian: apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    _, out = reported
    for lang in ("fr", "en"):
        png, errors, urls = render_png(chromium, Path(out[lang]["html"]))
        path = tmp_path / f"report-{lang}.png"
        path.write_bytes(png)
        assert errors == [], errors
        assert [u for u in urls if not u.startswith(("file:", "data:", "about:"))] == []  # nothing from the network
        image = Image.open(path).convert("RGB")
        assert image.width == 1280 and image.height > 1500  # the whole page, not one screen
        small = image.resize((160, image.height * 160 // image.width))
        colours = small.getcolors(maxcolors=1_000_000)
        background = max(colours)[0]
        assert len(colours) > 50, "the page looks blank"
        assert 1 - background / (small.width * small.height) > 0.2, "the page looks blank"
        assert os.path.getsize(path) > 50_000


# ------------------------------------------------------------------------------------ the reader's language
def _visible_text(page: str) -> str:
    """What a reader sees of the page: text nodes (SVG labels and tooltips too), not the CSS."""
    from html.parser import HTMLParser

    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts, self.skip = [], 0

        def handle_starttag(self, tag, attrs):
            self.skip += tag in ("style", "script")

        def handle_endtag(self, tag):
            self.skip -= tag in ("style", "script")

        def handle_data(self, data):
            if not self.skip:
                self.parts.append(data)

    parser = Text()
    parser.feed(page)
    return "\n".join(parser.parts)


def _workbook_text(path: str) -> str:
    from openpyxl import load_workbook

    wb = load_workbook(path)
    parts = list(wb.sheetnames)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            parts += [c.value for c in row if isinstance(c.value, str)]
    return "\n".join(parts)


def _internal_codes(db) -> set[str]:
    """Every code relance uses inside: buckets, stages, channels, statuses, holds, segments, source
    entities, metric names and dimensions (those of the warehouse too), and the ledger's English reasons."""
    import duckdb

    from relance.core.policy import load_policy
    from tasks.report import SUMMARY_METRICS

    pol = load_policy(None)
    codes = {b.name for b in pol.aging_buckets} | {"unapplied_credit"} | {s.code for s in pol.stages}
    codes |= {"email", "sms", "letter", "registered_letter", "phone", "visit", "handoff"}
    codes |= {
        "planned",
        "pending_approval",
        "sent",
        "failed",
        "skipped",
        "undeliverable",
        "simulated",
        "sending",
        "in_doubt",
        "approved",
        "rejected",
    }
    codes |= {"dispute", "promise", "payment_plan", "legal", "other", "dunning_block", "b2b", "b2c"}
    codes |= {"customers", "invoices", "payments", "holds", "field_dropped", "live", "replay", "age_bucket"}
    codes |= set(SUMMARY_METRICS)
    with duckdb.connect(str(db), read_only=True) as con:
        for metric, dim, val in con.execute(
            "select distinct metric, dimension, dimension_value from recovery_metrics"
        ).fetchall():
            codes |= {metric, dim} | ({val} if dim != "collector" else set())  # a collector's name is no code
        codes -= {val for (val,) in con.execute("select distinct recorded_by from outcomes").fetchall()}
        codes |= {"on_track", "not_received", "already_paid", "paid_claimed", "no_answer", "wrong_number"}
    codes -= {"segment"}  # a French word too ("Par segment")
    return codes


def _leaks(text: str, codes: set[str]) -> list[str]:
    return sorted(c for c in codes if re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", text))


ENGLISH_REASONS = ("no postal address", "is not valid", "falls back", "in doubt:", "rendering failed")


def test_no_internal_code_reaches_the_reader(reported):
    """Issue 12 §5: the French report and workbook show labels, never bucket, stage, status, reason
    or metric codes; the English ones show labels too (the codes that are not English words)."""
    db, out = reported
    codes = _internal_codes(db)
    assert {"not_due", "current_ar", "best_possible_dso_90d", "add_90d", "call_1", "in_doubt"} <= codes
    fr_page = _visible_text(Path(out["fr"]["html"]).read_text(encoding="utf-8"))
    fr_book = _workbook_text(out["fr"]["xlsx"])
    assert "Balance âgée" in fr_page and "Synthèse" in fr_book  # the extraction works
    assert _leaks(fr_page, codes) == [] and _leaks(fr_book, codes) == []
    assert [r for r in ENGLISH_REASONS if r in fr_page] == []
    assert "Non échu" in fr_page and "Plus de 180 j" in fr_page and "Non échu" in fr_book
    # English: the codes that are not plain English words (an underscore, a digit) never show
    coded = {c for c in codes if re.search(r"[_\d]", c)}
    en_page = _visible_text(Path(out["en"]["html"]).read_text(encoding="utf-8"))
    en_book = _workbook_text(out["en"]["xlsx"])
    assert _leaks(en_page, coded) == [] and _leaks(en_book, coded) == []
    assert "Not yet due" in en_page and "1–30 days" in en_book


def test_an_unknown_code_is_shown_as_is_and_caught(reported):
    """A code labels.yaml does not know (a metric, a stage, a dimension another step adds) does not
    stop the report: it is shown as is, logged, and the leak check above would name it."""
    from relance.core.policy import load_policy
    from tasks.report import MISSING_LABELS, Fmt

    fmt = Fmt("fr", load_policy(None))
    assert fmt.stage("escalade_9") == "escalade_9" and fmt.metric_name("new_metric_30d") == "new_metric_30d"
    assert fmt.dimension("replay") == "rejoué" and fmt.bucket("not_due") == "Non échu"
    assert ("stages", "escalade_9") in MISSING_LABELS and ("metric", "new_metric_30d") in MISSING_LABELS
    assert _leaks("Étape : escalade_9", {"escalade_9"}) == ["escalade_9"]


def test_recovery_period_starts_with_the_data_and_credit_is_outside_the_total(reported):
    """The recovery rates measure the actions dated in (D-120, D-30]: the label starts with the first
    action there is (20 May), not with the window's theoretical start (3 March). The unapplied credit
    (not netted, contract §5) comes after the total it is not part of, and says so."""
    _, out = reported
    fr = html.unescape(Path(out["fr"]["html"]).read_text(encoding="utf-8"))
    en = html.unescape(Path(out["en"]["html"]).read_text(encoding="utf-8"))
    assert "relances datées du 20 mai 2026 au 31 mai 2026" in fr and "3 mars" not in fr
    assert "actions dated 20 May 2026 to 31 May 2026" in en
    # GBP had no action in the window: no period for it; one debtor, in the singular
    gbp = fr[fr.index("Devise GBP") : fr.index("Devise USD")]
    assert "Part du montant réclamé" not in gbp and "Pas encore de relance vieille de 30 jours" in gbp
    assert "1 débiteur bloqué (litige, promesse, blocage) garde son étape." in gbp
    assert "Le plus gros débiteur en retard" in gbp and "Les 1 plus gros" not in fr
    assert "30 juin — Non échu — 300,00\xa0€" in fr  # the chart's tooltips: money with its unit
    aged = fr[fr.index("<h3>Balance âgée</h3>") :]
    aged = aged[: aged.index("</table>")]
    total, credit = (
        aged.index('<tr class="total">'),
        aged.index("Avoirs et paiements non affectés (non déduits du total)"),
    )
    assert total < credit
    assert "200,00\xa0€" in aged[credit:]


def test_recovery_period_of_a_single_day_and_of_no_action(tmp_path):
    from relance.core.policy import load_policy
    from tasks.report import Fmt, ReportData, render_html

    pol = load_policy(None)
    as_of = date(2026, 12, 4)
    for first, expected in (
        (date(2026, 11, 4), "relances du 4 nov. 2026 réglée"),
        (None, None),
        (date(2026, 10, 1), "relances datées du 1 oct. 2026 au 4 nov. 2026"),
    ):
        data = ReportData(
            as_of=as_of,
            db="",
            language="fr",
            buckets=[b.name for b in pol.aging_buckets],
            currencies=["EUR"],
            has_metrics=True,
            first_action={"EUR": first} if first else {},
            metrics={("EUR", "open_ar", "all", "all"): Decimal("10.00")},
        )
        page = html.unescape(render_html(data, pol, Fmt("fr", pol)))
        assert "7 août" not in page
        if expected:
            assert expected in page.replace("1er oct.", "1 oct."), first
        else:
            assert "Part du montant réclamé" not in page


def test_replayed_recovery_is_shown_apart_and_an_unknown_dimension_does_not_fail():
    """Recovery rates measured by `mode` (live actions apart from a backfill's replayed ones) get their
    own table with labels; a dimension value labels.yaml does not know is shown as is (the leak check
    names it), the report still comes out."""
    from relance.core.policy import load_policy
    from tasks.report import Fmt, ReportData, render_html

    pol = load_policy(None)
    m = {
        ("EUR", "open_ar", "all", "all"): Decimal("10.00"),
        ("EUR", "recovery_rate_30d", "all", "all"): Decimal("50"),
        ("EUR", "recovery_rate_30d", "stage", "call_1"): Decimal("50"),
        ("EUR", "recovery_rate_30d", "mode", "live"): Decimal("50"),
        ("EUR", "recovery_rate_30d", "mode", "replay"): Decimal("12.5"),
        ("EUR", "recovery_rate_30d", "mode", "shadow_mode"): Decimal("1"),
    }
    data = ReportData(
        as_of=AS_OF,
        db="",
        language="fr",
        buckets=[b.name for b in pol.aging_buckets],
        currencies=["EUR"],
        has_metrics=True,
        metrics=m,
    )
    page = _visible_text(render_html(data, pol, Fmt("fr", pol)))
    block = page[page.index("Réelles ou rejouées") :]
    assert "réel" in block and "rejoué" in block and "12,5\xa0%" in block
    assert _leaks(page, {"live", "replay", "shadow_mode"}) == ["shadow_mode"]


def test_outcomes_section_workbook_and_artifact(reported):
    """Issue 14 §4: promises kept (by count and amount), broken by collector, open disputes by reason
    and age, plans, outcomes per collector and stage, and the cash by last step (add_outcomes)."""
    db, out = reported
    fr = html.unescape(Path(out["fr"]["html"]).read_text(encoding="utf-8"))
    en = html.unescape(Path(out["en"]["html"]).read_text(encoding="utf-8"))
    eur = en[en.index("Currency EUR") : en.index("Currency GBP")]
    section = eur[eur.index("Promises, plans and disputes") :]
    for text in (
        "Promises kept (by count)",
        "50.0%",
        "Promises kept (by amount)",
        "75.0%",
        "Promises broken (30 days)",
        "Open disputes",
        "price",
        "0–30 days",
        "Collected over 30 days, by the last step before the payment",
        "€400.00",
        "€800.00",
        "no step before",
        "nobody",
        "Call 1",
        "call",
    ):
        assert text in section, text
    # broken promises by collector: Claire kept hers, Marc broke his
    assert re.search(r"<td>Claire</td><td class=\"num\">100.0%</td><td class=\"num\">0</td>", section)
    assert re.search(r"<td>Marc</td><td class=\"num\">0.0%</td><td class=\"num\">1</td>", section)
    gbp = en[en.index("Currency GBP") : en.index("Currency USD")]
    assert "Payment plans" in gbp and "on track" in gbp
    assert "Promesses, échéanciers et litiges" in fr and "Promesses tenues (en montant)" in fr and "75,0\xa0%" in fr
    assert "en cours, à jour" in fr and "prix" in fr

    from openpyxl import load_workbook

    ws = load_workbook(out["en"]["xlsx"])["Outcomes"]
    assert [c.value for c in ws[1]] == ["Currency", "Metric", "Section", "Detail", "Value"]
    rows = {tuple(c.value for c in r[:4]): r[4] for r in ws.iter_rows(min_row=2)}
    kept = rows[("EUR", "Promises kept (by amount)", None, None)]
    assert kept.value == 0.75 and kept.number_format == "0.0%"
    cash = rows[("EUR", "Collected over 30 days, by the last step before the payment", "By collector", "Claire")]
    assert cash.value == 400 and cash.number_format == '"€"#,##0.00'
    assert rows[("EUR", "Open disputes", "By reason", "price")].value == 1
    assert rows[("EUR", "Outcomes recorded (30 days)", "By collector, by stage", "Claire · Call 1")].value == 1
    assert rows[("GBP", "Payment plans", "By status", "on track")].value == 1

    content = artifact_content(str(db), AS_OF, out["en"])
    json.dumps(content["outcomes"])  # strings only: what a table artifact accepts
    assert {
        "currency": "EUR",
        "metric": "Promises broken (30 days)",
        "detail": "By collector",
        "item": "Marc",
        "value": "1",
        "number": "1.0000",
    } in content["outcomes"]


# ------------------------------------------------------------------------------------ profiles, credit watch, forecast
from tests.test_debtor_profile import measured  # noqa: E402, F401 (the fixture: the profile history of 03-31)

PROFILE_DAY = date(2026, 4, 30)


@pytest.fixture(scope="module")
def watch_history(measured, tmp_path_factory):  # noqa: F811 (the fixture imported above)
    """The history of tests/test_debtor_profile.py (GOOD, SLOW, MID, NEWCO; measured on 03-31) with
    two things the debtors said, re-measured on 03-31, then measured on 04-30 (the source as known
    then), and the report of 04-30 in en and fr.

    Said (default policy: a plan's instalment holds 3 days of grace):
      SLOW EUR dispute of S4 on 03-20, reason price, open                → disputes 1 (−5 points)
      NEWCO EUR plan on 03-11 for N3: 100.00 on 03-15, 200.00 on 03-25, nothing paid: the first
        instalment's grace ends 03-18, broken on 03-19                  → broken_promises 1, and
        its latest plan is broken within the 12 months: credit watch, reason `plan`

    On 04-30 (test_debtor_profile's test_report_shows_classes_movers_and_credit_watch for the rest):
      SLOW EUR: paid S1 (10 days late), S2 (40), S3 (40) in the 12 months → 34.00 days, 100.00 %
        late, 66.67 % over 30 days; 3 months (01-30, 04-30]: S3 40.00, the 9 before 32.50, trend
        +7.50 → 3.75; open S4 1500.00 + S5 500.00 (due 04-15) = 2000.00, all overdue → 100 % → 10;
        score 100 − 34 − 20 − 13.334 − 10 − 3.75 − 5 (1 dispute) = 13.916 → 14, D; S4 due 01-15 is
        105 days past due → watched: class, overdue
      MID EUR: 59, C (B on 03-31, 69): the only mover; 4 paid, 10.83 days, 75.00 % late, trend
        +25.00; open M5 3000.00 due 04-30, nothing overdue
      GOOD EUR: 100, A, open G4 500.00 due 04-30; GOOD USD: new, U1 100.00 150 days past due →
        watched: overdue
      NEWCO EUR: new (2 paid: N1 5 days late, N2 on time → 2.50 days, 50.00 % late; both in the
        last 3 months, none in the 9 before → no trend), N3 300.00 51 days past due (≤ 60): watched
        for its plan only
    Credit watch, largest overdue first per currency: EUR SLOW 2000.00, NEWCO 300.00; USD GOOD 100.00.

    Forecast of 04-30, EUR (expected date = due + the debtor's days late, D + 1 when past):
      G4 500.00 due 04-30 + 0 → by 05-01; S4 1500.00 01-15 + 34 → past → 05-01; N3 300.00 (new:
      the currency's average, at most 34 days after 03-10) → past → 05-01;
      S5 500.00 04-15 + 34 → 05-19; M5 3000.00 04-30 + 11 (10.83) → 05-11
      7 days (≤ 05-07) 500 + 1500 + 300 = 2300.00 (3); 30, 60, 90 days 5800.00 (5); USD 100.00.
    Accuracy: the forecast of 03-31 (test_credit_watch_and_cash_forecast_artifacts: EUR 7 days
      2800.00, 30 days 3300.00; USD 100.00), windows (03-31, 04-07] and (03-31, 04-30] passed;
      collected EUR PM4 1000.00 on 04-05 in both → 1000 / 2800 = 35.71 %, 1000 / 3300 = 30.30 %;
      USD nothing → 0.00 %. The 60- and 90-day windows of 03-31 have not passed: no comparison."""
    from pathlib import Path as P

    from tasks import outcomes
    from tasks.age import age
    from tasks.ingest import ingest
    from tests.ladder_helpers import run_days

    db0, _ = measured
    root = tmp_path_factory.mktemp("watch")
    db = str(root / "r.duckdb")
    shutil.copy(db0, db)

    def said(on, **fields):
        outcomes.add(db, {"on": on, "by": "julie", **fields}, today=date.fromisoformat(on))

    said("2026-03-11", customer="NEWCO", kind="plan", invoices="N3", instalments="2026-03-15:100.00,2026-03-25:200.00")
    said("2026-03-20", customer="SLOW", currency="EUR", kind="dispute", invoices="S4", reason="price")
    measure(db, date(2026, 3, 31))
    ingest(str(P(db0).parent / "src"), db, PROFILE_DAY)
    age(db, PROFILE_DAY)
    measure(db, PROFILE_DAY)
    run_days(None, db, [PROFILE_DAY])  # the ladder of 04-30: the debtor list (unit_stage, actions)
    out = {lang: report(db, PROFILE_DAY, str(root / f"out-{lang}"), language=lang) for lang in ("en", "fr")}
    return db, out


def test_credit_watch_list_in_the_report_and_the_workbook(watch_history):
    """Issue 16 §5 in the report: the units on the credit watch of 04-30 (watch_history), largest
    overdue first per currency, with their class, score, reasons in words, overdue amount, oldest
    days past due, broken promises and disputes; every unit in the workbook's sheet "Credit watch"."""
    from openpyxl import load_workbook

    _, out = watch_history
    en = html.unescape(Path(out["en"]["html"]).read_text(encoding="utf-8"))
    eur = en[en.index("Currency EUR") : en.index("Currency USD")]
    watch = eur[eur.index('<div class="watch">') : eur.index("</section>", eur.index('<div class="watch">'))]
    assert "On credit watch, by overdue amount" in watch and "2 debtors on credit watch" in eur
    rows = re.findall(r"<tr><td>(.*?)</tr>", watch, re.S)
    cells = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "|", r)).replace("| |", "|").strip("| ").split("|") for r in rows]
    assert [[c.strip() for c in row if c.strip()] for row in cells] == [
        ["Client SLOW", "SLOW", "D", "14", "risk class D; overdue more than 60 days", "€2,000.00", "105", "0", "1"],
        ["Client NEWCO", "NEWCO", "New (too little history)", "—", "payment plan broken", "€300.00", "51", "1", "0"],
    ]
    assert "… and" not in watch  # all listed: no "… and K more"
    usd = en[en.index("Currency USD") :]
    assert "Client GOOD" in usd[usd.index('<div class="watch">') :] and "overdue more than 60 days" in usd
    fr = html.unescape(Path(out["fr"]["html"]).read_text(encoding="utf-8"))
    assert "Sous surveillance crédit, par montant échu" in fr
    assert "classe de risque D; échu depuis plus de 60 jours" in fr and "échéancier rompu" in fr
    assert "Promesses non tenues" in fr and "2\u202f000,00\xa0€" in fr
    # the reasons' and the classes' codes never reach a French reader
    codes = {"class", "overdue", "plan", "new", "class,overdue"}
    assert _leaks(_visible_text(fr), codes) == [] and _leaks(_workbook_text(out["fr"]["xlsx"]), codes) == []
    # the PDF lays the list out too (the same page, WeasyPrint)
    pdf_text = _pdf_text(out["en"]["html"])
    assert "On credit watch, by overdue amount" in pdf_text
    assert "risk class D; overdue more than 60 days" in pdf_text and "payment plan broken" in pdf_text

    book = load_workbook(out["en"]["xlsx"])
    ws = book["Credit watch"]
    assert [c.value for c in ws[1]] == [
        "Customer",
        "Name",
        "Currency",
        "Class",
        "Score",
        "Reasons",
        "Overdue",
        "Oldest (days)",
        "Broken promises (12 months)",
        "Disputes (12 months)",
    ]
    assert [tuple(c.value for c in r) for r in ws.iter_rows(min_row=2)] == [
        ("SLOW", "Client SLOW", "EUR", "D", 14, "risk class D; overdue more than 60 days", 2000.0, 105, 0, 1),
        ("NEWCO", "Client NEWCO", "EUR", "New (too little history)", None, "payment plan broken", 300.0, 51, 1, 0),
        ("GOOD", "Client GOOD", "USD", "New (too little history)", None, "overdue more than 60 days", 100.0, 150, 0, 0),
    ]
    assert ws["G2"].number_format == "#,##0.00"
    fr_book = load_workbook(out["fr"]["xlsx"])
    assert fr_book["Surveillance crédit"]["F2"].value == "classe de risque D; échu depuis plus de 60 jours"
    # the whole list as a CSV beside the report, in codes and plain numbers (for the ERP's import)
    csv_path = Path(out["en"]["credit_watch_csv"])
    assert (
        csv_path.name == "relance-report-2026-04-30-credit-watch.csv"
        and csv_path.parent == Path(out["en"]["html"]).parent
    )
    assert csv_path.read_text(encoding="utf-8").splitlines() == [
        "customer_id,name,currency,risk_class,score,reasons,overdue_amount,max_days_past_due,broken_promises,disputes",
        'SLOW,Client SLOW,EUR,D,14,"class,overdue",2000.00,105,0,1',
        "NEWCO,Client NEWCO,EUR,new,,plan,300.00,51,1,0",
        "GOOD,Client GOOD,USD,new,,overdue,100.00,150,0,0",
    ]


def test_debtor_list_shows_each_units_profile(watch_history):
    """Issue 16 §1, the workbook: the sheet "Debtors" gives each unit its class, score, broken
    promises and disputes of 04-30 (watch_history), beside its balance; largest overdue first."""
    from openpyxl import load_workbook

    _, out = watch_history
    ws = load_workbook(out["en"]["xlsx"])["Debtors"]
    header = [c.value for c in ws[1]]
    assert header[10:15] == ["Next step", "Class", "Score", "Broken promises (12 months)", "Disputes (12 months)"]
    new = "New (too little history)"
    # customer, currency, open, overdue, oldest days past due | class, score, broken promises, disputes
    assert [
        tuple(r[i] for i in (0, 3, 4, 5, 6, 11, 12, 13, 14)) for r in ws.iter_rows(min_row=2, values_only=True)
    ] == [
        ("SLOW", "EUR", 2000.0, 2000.0, 105, "D", 14, 0, 1),
        ("NEWCO", "EUR", 300.0, 300.0, 51, new, None, 1, 0),
        ("GOOD", "USD", 100.0, 100.0, 150, new, None, 0, 0),
        ("MID", "EUR", 3000.0, 0.0, 0, "C", 59, 0, 0),
        ("GOOD", "EUR", 500.0, 0.0, 0, "A", 100, 0, 0),
    ]
    fr = load_workbook(out["fr"]["xlsx"])["Débiteurs"]
    assert [c.value for c in fr[1]][11:15] == ["Classe", "Note", "Promesses non tenues (12 mois)", "Litiges (12 mois)"]
    # the last column: the ladder each unit climbs on 04-30 (unit_stage.ladder; default ladder_rules:
    # SLOW, class D and b2b, climbs b2b_class_d; the others the standard ladder)
    assert header[-1] == "Ladder" and [c.value for c in fr[1]][-1] == "Scénario de relance"
    ladders = {(r[0], r[3]): r[-1] for r in ws.iter_rows(min_row=2, values_only=True)}
    assert ladders[("SLOW", "EUR")] == "b2b_class_d"
    assert {v for k, v in ladders.items() if k != ("SLOW", "EUR")} == {"standard"}


def _watched_27(pol):
    """ReportData of 04-30 with 27 EUR units on the credit watch, class D, owing 2700.00, 2600.00 …
    100.00 (largest first, as watched_units.sql gives them)."""
    from tasks.report import ReportData

    watched = [
        {
            "customer_id": f"C{n:02d}",
            "name": f"Client {n:02d}",
            "currency": "EUR",
            "risk_class": "D",
            "score": 10,
            "reasons": "class",
            "overdue_amount": Decimal(n * 100) + Decimal("0.00"),
            "max_days_past_due": 61,
            "broken_promises": 0,
            "disputes": 0,
        }
        for n in range(27, 0, -1)
    ]
    return ReportData(
        as_of=PROFILE_DAY,
        db="",
        language="en",
        buckets=[b.name for b in pol.aging_buckets],
        currencies=["EUR"],
        risk_classes=[
            {
                "currency": "EUR",
                "risk_class": "D",
                "units": 27,
                "open_amount": Decimal("37800.00"),
                "overdue_amount": Decimal("37800.00"),
                "watched_units": 27,
            }
        ],
        watched=watched,
    )


def test_credit_watch_lists_the_first_25_and_counts_the_rest(tmp_path):
    """The page lists the first WATCHED (25) units per currency, largest overdue first as
    watched_units.sql gives them, and says how many more; the workbook has them all. 27 units
    owing 2700.00, 2600.00 … 100.00: the page shows 2700.00 to 300.00, "and 2 more"."""
    from openpyxl import load_workbook

    from relance.core.policy import load_policy
    from tasks.report import WATCHED, Fmt, render_html, write_workbook

    assert WATCHED == 25
    pol = load_policy(None)
    data = _watched_27(pol)
    for lang, more in (
        ("en", "… and 2 more: the full list is in the workbook (sheet “Credit watch”)"),
        ("fr", "… et 2 autres : la liste complète est dans le classeur (feuille « Surveillance crédit »)"),
    ):
        data.language = lang
        page = html.unescape(render_html(data, pol, Fmt(lang, pol)))
        watch = page[page.index('<div class="watch">') :]
        watch = watch[: watch.index("</div>")]
        listed = re.findall(r"<span class=\"small\">(C\d\d)</span>", watch)
        assert listed == [f"C{n:02d}" for n in range(27, 2, -1)]  # 25: C27 … C03
        assert more in watch
    path = write_workbook(tmp_path / "watch.xlsx", data, pol, Fmt("en", pol))
    rows = list(load_workbook(path)["Credit watch"].iter_rows(min_row=2, values_only=True))
    assert len(rows) == 27 and rows[0][6] == 2700.0 and rows[-1][6] == 100.0


def test_a_long_credit_watch_is_capped_in_the_workbook_and_whole_in_the_csv(tmp_path, monkeypatch):
    """Past WORKBOOK_WATCHED units in a currency (26 here, 1000 shipped), the sheet "Credit watch"
    holds the first ones, largest overdue first, and a line naming the CSV; the page sends the reader
    to the CSV too. The same 27 units as above: the sheet ends at 200.00, 1 more in the CSV."""
    from openpyxl import load_workbook

    import tasks.report.page as page
    import tasks.report.workbook as workbook
    from relance.core.policy import load_policy
    from tasks.report import Fmt, render_html, write_workbook

    monkeypatch.setattr(workbook, "WORKBOOK_WATCHED", 26)
    monkeypatch.setattr(page, "WORKBOOK_WATCHED", 26)
    pol = load_policy(None)
    data = _watched_27(pol)
    rows = list(
        load_workbook(write_workbook(tmp_path / "w.xlsx", data, pol, Fmt("en", pol)))["Credit watch"].iter_rows(
            min_row=2, values_only=True
        )
    )
    csv_name = "relance-report-2026-04-30-credit-watch.csv"
    assert len(rows) == 27 and rows[0][0] == "C27" and rows[25][0] == "C02" and rows[25][6] == 200.0
    assert rows[26][:3] == (None, f"… and 1 more: the full list is in the file {csv_name}", "EUR")
    page_html = html.unescape(render_html(data, pol, Fmt("en", pol)))
    assert f"… and 2 more: the full list is in the file {csv_name}" in page_html


#: What the probe reads of the laid-out page: per section of each kind (one per currency), whether it
#: is drawn (displayed, not hidden, with a size), its right edge, and its text as rendered (innerText:
#: a table's cells separated by tabs, its rows by new lines).
_PROBE = """(() => {
  const seen = (e) => {
    const r = e.getBoundingClientRect(), s = getComputedStyle(e);
    return {drawn: s.display !== 'none' && s.visibility !== 'hidden' && r.width > 0 && r.height > 0,
            right: r.right, text: e.innerText};
  };
  const all = (css) => Array.from(document.querySelectorAll(css)).map(seen);
  return {forecast: all('section.forecast'), profiles: all('section.profiles'),
          watch: all('section.profiles div.watch'), width: document.documentElement.scrollWidth};
})()"""


def test_profiles_forecast_and_credit_watch_visible_in_chromium(watch_history):
    """Issue 16 "Done when": the report of 04-30 (watch_history) opened in headless Chromium shows,
    as laid out for a 1280-pixel screen, the profiles (classes, the mover MID B → C), the forecast
    of 04-30 beside the forecast of 03-31 and what came in (35.7 %, 30.3 %), and the credit-watch
    list (SLOW, NEWCO; GOOD in USD) — each drawn, none wider than the page."""
    chromium = _chromium()
    if chromium is None:
        message = "Chromium is not installed (Debian: apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    _, out = watch_history
    page = render_page(chromium, Path(out["en"]["html"]), probe=_PROBE)
    assert page["errors"] == [] and [u for u in page["urls"] if not u.startswith(("file:", "data:", "about:"))] == []
    seen = page["probe"]
    assert page["png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert seen["width"] <= 1280  # nothing wider than the screen
    for kind in ("forecast", "profiles", "watch"):
        assert len(seen[kind]) == 2, kind  # EUR and USD
        for box in seen[kind]:
            assert box["drawn"] and box["right"] <= 1280, (kind, box)
    eur_forecast, usd_forecast = (b["text"] for b in seen["forecast"])
    # horizon, expected now, invoices, forecast of, expected then, collected, collected / expected
    for row in (
        "next 7 days\t€2,300.00\t3\t31 Mar 2026\t€2,800.00\t€1,000.00\t35.7%",
        "next 30 days\t€5,800.00\t5\t31 Mar 2026\t€3,300.00\t€1,000.00\t30.3%",
        "next 60 days\t€5,800.00\t5\t—",
        "next 90 days\t€5,800.00\t5\t—",
    ):
        assert row in eur_forecast, (row, eur_forecast)
    assert "next 7 days\tUS$100.00\t1\t31 Mar 2026\tUS$100.00\tUS$0.00\t0.0%" in usd_forecast, usd_forecast
    eur_profiles = seen["profiles"][0]["text"]
    for row in (
        "2 debtors on credit watch (hold new orders)",
        "A\t1\t25.0%\t€500.00\t8.6%\t€0.00",  # 500 / 5800
        "C\t1\t25.0%\t€3,000.00\t51.7%\t€0.00",
        "D\t1\t25.0%\t€2,000.00\t34.5%\t€2,000.00",
        "New (too little history)\t1\t25.0%\t€300.00\t5.2%\t€300.00",
        "Class changes since 31 Mar 2026",
        "Client MID MID\tB → C\t69 → 59\t€3,000.00",
    ):
        assert row in eur_profiles, (row, eur_profiles)
    eur_watch, usd_watch = (b["text"] for b in seen["watch"])
    assert "On credit watch, by overdue amount" in eur_watch
    slow = "Client SLOW SLOW\tD\t14\trisk class D; overdue more than 60 days\t€2,000.00\t105\t0\t1"
    newco = "Client NEWCO NEWCO\tNew (too little history)\t—\tpayment plan broken\t€300.00\t51\t1\t0"
    assert slow in eur_watch and newco in eur_watch and eur_watch.index(slow) < eur_watch.index(newco), eur_watch
    assert "Client GOOD GOOD\tNew (too little history)\t—\toverdue more than 60 days\tUS$100.00\t150\t0\t0" in usd_watch


def test_a_big_reports_pdf_is_laid_out_beside_the_workbook_and_a_dead_worker_falls_back(tmp_path, monkeypatch):
    """relance/core/pdf.py: PdfJob in the background writes the same PDF as in-process; when its worker
    cannot run (BrokenProcessPool) the PDF is laid out in this process instead of failing the report."""
    from concurrent.futures.process import BrokenProcessPool

    from pypdf import PdfReader

    from relance.core import pdf

    page = "<html><body><h1>relance</h1><p>Balance âgée — 1 234,56 €</p></body></html>"
    with pdf.PdfJob(page, tmp_path / "bg.pdf", tmp_path, background=True) as job:
        job.wait()
    text = PdfReader(tmp_path / "bg.pdf").pages[0].extract_text()
    assert "Balance âgée" in text and "1 234,56 €" in text.replace("\u202f", " ").replace("\xa0", " ")

    class Broken:
        def result(self):
            raise BrokenProcessPool("the worker died")

    job = pdf.PdfJob(page, tmp_path / "fallback.pdf", tmp_path, background=True)
    job._future = Broken()
    job.wait()
    assert PdfReader(tmp_path / "fallback.pdf").pages[0].extract_text().startswith("relance")


def test_the_run_summary_names_the_credit_watch_csv_when_there_is_one():
    from relance.cli import _report_also

    assert _report_also({"html": "r.html"}) == "also .pdf and .xlsx"
    assert _report_also({"html": "r.html", "credit_watch_csv": "w.csv"}) == (
        "also .pdf and .xlsx, and the credit watch as CSV"
    )
