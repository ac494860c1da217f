"""The HTTP JSON API source, against a small paginated API served by the tests themselves
(http.server on 127.0.0.1, a free port, in a thread). No mocks: real sockets, real requests."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest

from flows.nightly import nightly_run
from relance.core.errors import SourceError
from tasks.sources import http_api

AS_OF = date(2024, 3, 31)
TOKEN = "tok-Very-Secret-123"


class Raw(str):
    """A JSON number written exactly as given (e.g. 100.10), never through a float."""


def dumps(value) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


DATA = {
    "customers": [
        {
            "customer_id": "C1",
            "name": "Boulangerie Martin",
            "email": "compta@martin.fr",
            "phone": "+33612345678",
            "street": "1 rue de la Paix",
            "postal_code": "75002",
            "city": "Paris",
            "country": "FR",
            "language": "fr",
            "segment": "b2b",
            "dunning_block": False,
            "collector": "alice",
        },
        {"customer_id": "C2", "name": "Small Change Ltd", "email": None, "country": "GB", "language": "en"},
        {
            "Customer_ID": "C3",
            "Name": "Grosse Industrie SA",
            "dunning_block": True,
            "crm_ref": {"id": 7, "score": Raw("0.5")},
            "tags": ["key", "public"],
        },
    ],
    "invoices": [
        {
            "invoice_id": "INV-1",
            "customer_id": "C1",
            "kind": "invoice",
            "issue_date": "2024-01-10",
            "due_date": "2024-02-09",
            "amount": Raw("100.10"),
            "currency": "EUR",
        },
        {
            "invoice_id": "CN-1",
            "customer_id": "C1",
            "kind": "credit_note",
            "issue_date": "2024-02-20",
            "due_date": "2024-02-20",
            "amount": Raw("50.05"),
            "currency": "EUR",
        },
        {
            "invoice_id": "INV-2",
            "customer_id": "C1",
            "issue_date": "2024-03-01",
            "due_date": "2024-03-31",
            "amount": Raw("80.00"),
        },
        {
            "invoice_id": "INV-3",
            "customer_id": "C2",
            "issue_date": "2024-02-01",
            "due_date": "2024-03-01",
            "amount": Raw("0.10"),
            "currency": "EUR",
        },
        {
            "invoice_id": "INV-4",
            "customer_id": "C2",
            "issue_date": "2024-02-01",
            "due_date": "2024-03-01",
            "amount": Raw("0.20"),
            "currency": "EUR",
            "erp_extra": "kept, ignored",
        },
        {
            "invoice_id": "INV-5",
            "customer_id": "C3",
            "issue_date": "2023-09-01",
            "due_date": "2023-10-01",
            "amount": Raw("9999999999999999.99"),
        },
        {
            "invoice_id": "INV-6",
            "customer_id": "C3",
            "issue_date": "2024-03-01",
            "due_date": "2024-04-30",
            "amount": 42,
        },
    ],
    "payments": [
        {
            "payment_id": "P-1",
            "customer_id": "C1",
            "invoice_id": "INV-1",
            "paid_date": "2024-02-15",
            "amount": Raw("30.03"),
            "currency": "EUR",
        },
    ],
    "holds": [
        {
            "hold_id": "H-1",
            "customer_id": "C1",
            "invoice_id": "INV-2",
            "kind": "dispute",
            "start_date": "2024-03-01",
            "end_date": None,
        },
    ],
}

#: Hand-computed: INV-1 100.10 − payment 30.03 − credit note 50.05 = 20.02; the rest untouched.
EXPECTED_OPEN = {
    "INV-1": Decimal("20.02"),
    "INV-2": Decimal("80.00"),
    "INV-3": Decimal("0.10"),
    "INV-4": Decimal("0.20"),
    "INV-5": Decimal("9999999999999999.99"),
    "INV-6": Decimal("42.00"),
}


@dataclass
class Seen:
    path: str
    query: dict
    headers: dict

    @property
    def entity(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def page(self) -> str | None:
        return self.query.get("page", [None])[0]


@dataclass
class PagedApi:
    """The API's behaviour: pagination style, token, missing entities and one-off faults."""

    style: str = "list"  # "list": JSON lists ending with []; "next": objects with a next link
    page_size: int = 2
    token: str | None = None
    missing: set = field(default_factory=set)
    data: dict = field(default_factory=lambda: DATA)
    #: (entity, page) -> responses served first, in order: (status, headers, body)
    faults: dict = field(default_factory=dict)
    always: tuple | None = None  # a response served to every request
    #: seconds between two bytes of each answer, from its first byte ("headers") or its body's ("body")
    trickle: float = 0.0
    trickle_from: str = "body"
    seen: list = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_for(self, entity: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.entity == entity]

    def respond(self, path: str, query: dict, headers: dict) -> tuple[int, dict, bytes]:
        with self.lock:
            self.seen.append(Seen(path, query, headers))
        if self.always is not None:
            return self.always
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"Content-Type": "application/json"}, b'{"error": "invalid token"}'
        entity = path.rstrip("/").rsplit("/", 1)[-1]
        if not path.startswith("/api/") or entity not in self.data or entity in self.missing:
            return 404, {"Content-Type": "application/json"}, b'{"error": "not found"}'
        page = int(query.get("page", ["1"])[0]) if "cursor" not in query else int(query["cursor"][0][1:])
        with self.lock:
            pending = self.faults.get((entity, page))
            if pending:
                return pending.pop(0)
        records = self.data[entity]
        chunk = records[(page - 1) * self.page_size : page * self.page_size]
        if self.style == "list":
            body = dumps(chunk)
        else:
            more = page * self.page_size < len(records)
            key = {"customers": "data", "invoices": "items", "payments": "results", "holds": "data"}[entity]
            if not more:
                link = None
            elif entity in ("customers", "payments"):  # absolute links
                link = f"http://127.0.0.1:{self.port}/api/{entity}?cursor=p{page + 1}"
            else:  # relative links
                link = f"{entity}?cursor=p{page + 1}"
            body = dumps({key: chunk, "next": link, "total": len(records)})
        return 200, {"Content-Type": "application/json"}, body.encode("utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        api = self.server.api
        status, extra, body = api.respond(parts.path, parse_qs(parts.query), headers)
        if api.trickle:
            return self._trickle(api, status, extra, body)
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, api: PagedApi, status: int, extra: dict, body: bytes) -> None:
        head = (
            f"HTTP/1.1 {status} OK\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in extra.items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        data = head + body
        start = 0 if api.trickle_from == "headers" else len(head)
        try:
            self.wfile.write(data[:start])
            for i in range(start, len(data)):
                self.wfile.write(data[i : i + 1])
                time.sleep(api.trickle)
        except OSError:  # the client gave up
            self.close_connection = True

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("RELANCE_SOURCE_TOKEN", "PREFECT_API_URL", "RELANCE_HTTP_RETRIES", "RELANCE_HTTP_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RELANCE_HTTP_TIMEOUT_S", "5")


@pytest.fixture
def serve():
    servers = []

    def start(api: PagedApi) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.api = api
        api.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{api.port}/api"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _run(tmp_path: Path, source: str) -> tuple[dict, duckdb.DuckDBPyConnection]:
    db = tmp_path / "r.duckdb"
    summary = nightly_run(as_of=AS_OF, source=source, db=str(db))
    return summary, duckdb.connect(str(db), read_only=True)


def _open_amounts(con) -> dict[str, Decimal]:
    return dict(con.execute("select invoice_id, open_amount from invoice_snapshot where as_of = ?", [AS_OF]).fetchall())


# ----------------------------------------------------------------------------- pagination and data


def test_list_pages_ending_with_an_empty_page(serve, tmp_path):
    api = PagedApi(style="list")
    base = serve(api)
    summary, con = _run(tmp_path, base)
    try:
        assert summary["ingest"]["rows_loaded"] == {"customers": 3, "invoices": 7, "payments": 1, "holds": 1}
        assert summary["ingest"]["rows_rejected"] == 0
        assert _open_amounts(con) == EXPECTED_OPEN
        aged = con.execute(
            "select customer_id, bucket, amount, invoice_count from aged_balance where as_of = ? order by all", [AS_OF]
        ).fetchall()
        assert aged == [
            ("C1", "31-60", Decimal("20.02"), 1),
            ("C1", "not_due", Decimal("80.00"), 1),
            ("C2", "1-30", Decimal("0.30"), 2),
            ("C3", "181+", Decimal("9999999999999999.99"), 1),
            ("C3", "not_due", Decimal("42.00"), 1),
        ]
        assert con.execute("select held, hold_kind from invoice_snapshot where invoice_id = 'INV-2'").fetchone() == (
            True,
            "dispute",
        )
        # JSON true/false, null and keys in another case land as the staging expects
        assert dict(con.execute("select customer_id, dunning_block from stg_customers").fetchall()) == {
            "C1": False,
            "C2": False,
            "C3": True,
        }
        assert con.execute("select email, language from stg_customers where customer_id = 'C2'").fetchone() == (
            None,
            "en",
        )
    finally:
        con.close()
    # pages 1..5 of invoices (7 records by 2), the 5th empty; customers 1..3, the 3rd empty
    assert [s.page for s in api.requests_for("invoices")] == ["1", "2", "3", "4", "5"]
    assert [s.page for s in api.requests_for("customers")] == ["1", "2", "3"]
    assert all("authorization" not in s.headers for s in api.seen)


def test_object_pages_with_next_links(serve, tmp_path):
    api = PagedApi(style="next")
    base = serve(api)
    summary, con = _run(tmp_path, base)
    try:
        assert summary["ingest"]["rows_loaded"] == {"customers": 3, "invoices": 7, "payments": 1, "holds": 1}
        assert _open_amounts(con) == EXPECTED_OPEN
    finally:
        con.close()
    # the first page is ?page=1, then the next links (relative for invoices, absolute for customers)
    invoices = api.requests_for("invoices")
    assert [(s.page, s.query.get("cursor")) for s in invoices] == [
        ("1", None),
        (None, ["p2"]),
        (None, ["p3"]),
        (None, ["p4"]),
    ]
    assert [s.query.get("cursor") for s in api.requests_for("customers")] == [None, ["p2"]]
    assert len(api.requests_for("payments")) == 1  # next: null on the first page: no empty page asked


def test_extra_keys_are_kept_and_values_written_as_text(serve, tmp_path):
    api = PagedApi(style="list", page_size=10)
    base = serve(api)
    folder, labels = http_api.extract(base, tmp_path)
    assert labels == {e: f"{base}/{e}" for e in ("customers", "invoices", "payments", "holds")}
    customers = (folder / "customers.csv").read_text(encoding="utf-8").splitlines()
    assert customers[0] == (
        "customer_id,name,email,phone,street,postal_code,city,country,language,segment,dunning_block,collector,tags,crm_ref"
    )
    assert (
        customers[1]
        == "C1,Boulangerie Martin,compta@martin.fr,+33612345678,1 rue de la Paix,75002,Paris,FR,fr,b2b,false,alice,,"
    )
    # tags is a contract column (issue 16): a JSON list of labels becomes the comma-separated text
    assert customers[3] == 'C3,Grosse Industrie SA,,,,,,,,,true,,"key,public","{""id"":7,""score"":""0.5""}"'
    invoices = (folder / "invoices.csv").read_text(encoding="utf-8").splitlines()
    assert invoices[1] == "INV-1,C1,invoice,2024-01-10,2024-02-09,100.10,EUR,"
    assert invoices[6] == "INV-5,C3,,2023-09-01,2023-10-01,9999999999999999.99,,"
    assert invoices[7] == "INV-6,C3,,2024-03-01,2024-04-30,42,,"


def test_json_numbers_stay_exact_in_invoice_snapshot(serve, tmp_path):
    data = {
        "customers": [{"customer_id": "C1", "name": "Exact"}],
        "invoices": [
            {
                "invoice_id": f"X-{i}",
                "customer_id": "C1",
                "issue_date": "2024-01-01",
                "due_date": "2024-01-31",
                "amount": Raw(a),
            }
            for i, a in enumerate(["100.10", "0.10", "0.20", "0.3", "1E+2", "1234567890123.45"])
        ],
    }
    api = PagedApi(style="list", data=data, missing={"payments", "holds"})
    summary, con = _run(tmp_path, serve(api))
    try:
        opened = _open_amounts(con)
        assert opened == {
            "X-0": Decimal("100.10"),
            "X-1": Decimal("0.10"),
            "X-2": Decimal("0.20"),
            "X-3": Decimal("0.30"),
            "X-4": Decimal("100.00"),
            "X-5": Decimal("1234567890123.45"),
        }
        assert sum(opened.values()) == Decimal("1234567890324.15")
        assert con.execute("select sum(amount) from aged_balance where as_of = ?", [AS_OF]).fetchone()[0] == Decimal(
            "1234567890324.15"
        )
    finally:
        con.close()


def test_a_bad_record_lands_in_rejected_rows_with_the_api_url(serve, tmp_path):
    data = dict(DATA)
    data["invoices"] = DATA["invoices"] + [
        {
            "invoice_id": "BAD-1",
            "customer_id": "C1",
            "issue_date": "2024-03-01",
            "due_date": "2024-03-31",
            "amount": "12,50",
        },
    ]
    api = PagedApi(style="list", data=data)
    base = serve(api)
    summary, con = _run(tmp_path, base)
    try:
        rows = con.execute("select source, entity, row_number, raw, reason, action from rejected_rows").fetchall()
    finally:
        con.close()
    assert len(rows) == 1
    source, entity, row_number, raw, reason, action = rows[0]
    assert (source, entity, action) == (f"{base}/invoices", "invoices", "rejected")
    assert row_number == 9  # the 8th record; row 1 is the header, as in a file
    assert '"BAD-1"' in raw
    assert "uses a comma" in reason


# ----------------------------------------------------------------------------- token


def test_bearer_token_is_sent_and_required(serve, tmp_path, monkeypatch):
    api = PagedApi(style="list", token=TOKEN)
    base = serve(api)
    monkeypatch.setenv("RELANCE_SOURCE_TOKEN", TOKEN)
    summary, con = _run(tmp_path, base)
    con.close()
    assert summary["ingest"]["rows_loaded"]["invoices"] == 7
    assert api.seen and all(s.headers.get("authorization") == f"Bearer {TOKEN}" for s in api.seen)


@pytest.mark.parametrize("token", ["wrong-token", None])
def test_a_wrong_or_missing_token_is_a_clear_error(serve, tmp_path, monkeypatch, token):
    api = PagedApi(style="list", token=TOKEN)
    base = serve(api)
    if token:
        monkeypatch.setenv("RELANCE_SOURCE_TOKEN", token)
    with pytest.raises(SourceError) as excinfo:
        nightly_run(as_of=AS_OF, source=base, db=str(tmp_path / "r.duckdb"))
    message = str(excinfo.value)
    assert message.startswith(f"{base}/customers (page 1): the API refused the token (HTTP 401)")
    assert TOKEN not in message and "wrong-token" not in message
    assert ("no token is configured" in message) == (token is None)
    assert len(api.seen) == 1  # a 401 is not retried


def test_the_token_is_not_sent_to_another_host(serve, tmp_path, monkeypatch):
    api = PagedApi(style="next")
    base = serve(api)
    # the customers' next links point at "localhost", another origin than 127.0.0.1
    original = api.respond

    def respond(path, query, headers):
        status, extra, body = original(path, query, headers)
        return status, extra, body.replace(b"http://127.0.0.1:", b"http://localhost:")

    api.respond = respond
    monkeypatch.setenv("RELANCE_SOURCE_TOKEN", TOKEN)
    http_api.extract(base, tmp_path)
    customers = api.requests_for("customers")
    assert len(customers) == 2
    assert customers[0].headers.get("authorization") == f"Bearer {TOKEN}"
    assert customers[1].headers["host"].startswith("localhost:")
    assert "authorization" not in customers[1].headers


# ----------------------------------------------------------------------------- retries


def test_429_with_retry_after_then_success(serve, tmp_path):
    api = PagedApi(style="list", faults={("invoices", 2): [(429, {"Retry-After": "0"}, b"slow down")]})
    base = serve(api)
    started = time.monotonic()
    summary, con = _run(tmp_path, base)
    try:
        assert _open_amounts(con) == EXPECTED_OPEN
    finally:
        con.close()
    assert [s.page for s in api.requests_for("invoices")] == ["1", "2", "2", "3", "4", "5"]
    assert time.monotonic() - started < 30


def test_500_then_success(serve, tmp_path):
    api = PagedApi(style="next", faults={("customers", 1): [(500, {}, b"oops")], ("holds", 1): [(502, {}, b"")]})
    base = serve(api)
    summary, con = _run(tmp_path, base)
    try:
        assert summary["ingest"]["rows_loaded"] == {"customers": 3, "invoices": 7, "payments": 1, "holds": 1}
        assert _open_amounts(con) == EXPECTED_OPEN
    finally:
        con.close()
    assert [s.page for s in api.requests_for("customers")] == ["1", "1", None]
    assert len(api.requests_for("holds")) == 2


def test_always_503_gives_up_after_the_configured_attempts(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("RELANCE_HTTP_RETRIES", "3")
    api = PagedApi(always=(503, {"Content-Type": "text/plain"}, b"maintenance"))
    base = serve(api)
    started = time.monotonic()
    with pytest.raises(SourceError) as excinfo:
        nightly_run(as_of=AS_OF, source=base, db=str(tmp_path / "r.duckdb"))
    elapsed = time.monotonic() - started
    assert len(api.seen) == 3
    message = str(excinfo.value)
    assert message.startswith(f"{base}/customers (page 1): the API did not answer successfully after 3 attempts")
    assert "HTTP 503" in message
    assert 1.4 <= elapsed < 20  # backoff 0.5 s then 1 s


def test_unreachable_api_is_a_source_error(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("RELANCE_HTTP_RETRIES", "2")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError) as excinfo:
        http_api.extract(f"http://user:pw-in-url@127.0.0.1:{port}/api?key=query-secret", tmp_path)
    message = str(excinfo.value)
    assert message.startswith(f"http://127.0.0.1:{port}/api/customers (page 1): the API did not answer")
    assert "connection refused" in message
    assert "pw-in-url" not in message and "query-secret" not in message
    assert excinfo.value.__cause__ is None


# ----------------------------------------------------------------------------- absent entities and bad answers


def test_404_on_optional_entities_means_none(serve, tmp_path):
    api = PagedApi(style="list", missing={"holds", "payments"})
    summary, con = _run(tmp_path, serve(api))
    try:
        assert summary["ingest"]["rows_loaded"] == {"customers": 3, "invoices": 7, "payments": 0, "holds": 0}
        assert con.execute("select count(*) from invoice_snapshot where held").fetchone()[0] == 0
        assert _open_amounts(con)["INV-1"] == Decimal("50.05")  # no payment: 100.10 − 50.05
    finally:
        con.close()
    assert len(api.requests_for("holds")) == 1  # a 404 is not retried


def test_404_on_a_required_entity_names_it(serve, tmp_path):
    api = PagedApi(style="list", missing={"invoices"})
    base = serve(api)
    with pytest.raises(SourceError) as excinfo:
        http_api.extract(base, tmp_path)
    assert str(excinfo.value).startswith(f"{base}/invoices: not found (HTTP 404)")


def test_malformed_json_is_a_clear_error(serve, tmp_path):
    api = PagedApi(
        style="list", faults={("invoices", 2): [(200, {"Content-Type": "application/json"}, b'[{"invoice_id": "I1",')]}
    )
    base = serve(api)
    with pytest.raises(SourceError) as excinfo:
        http_api.extract(base, tmp_path)
    assert str(excinfo.value).startswith(f"{base}/invoices (page 2): the API answered with malformed JSON")


def test_a_page_that_is_not_records_is_a_clear_error(serve, tmp_path):
    api = PagedApi(style="list", faults={("customers", 1): [(200, {}, b'{"message": "hello"}')]})
    base = serve(api)
    with pytest.raises(SourceError, match=r"has no data, items or results list \(keys: message\)"):
        http_api.extract(base, tmp_path)


def test_a_next_link_loop_is_detected(serve, tmp_path):
    api = PagedApi(style="list")
    base = serve(api)
    looping = b'{"data": [{"customer_id": "C1", "name": "A"}], "next": "customers?page=1"}'
    api.faults = {("customers", 1): [(200, {}, looping)]}
    with pytest.raises(SourceError, match="pagination loops"):
        http_api.extract(base, tmp_path)
    assert len(api.requests_for("customers")) == 1


def test_an_api_that_ignores_the_page_parameter_is_detected(serve, tmp_path):
    class SamePage(PagedApi):
        def respond(self, path, query, headers):
            with self.lock:
                self.seen.append(Seen(path, query, headers))
            return 200, {}, dumps(DATA["customers"]).encode()

    api = SamePage()
    base = serve(api)
    with pytest.raises(SourceError, match="ignore the page parameter"):
        http_api.extract(base, tmp_path)
    assert len(api.seen) == 2


def test_dates_sent_as_midnight_datetimes_are_their_dates(serve, tmp_path):
    """Many JSON APIs serialise a date as an ISO datetime at midnight: that is the date written
    (whatever the offset). Another time of day does not say which day is meant: the row is
    rejected with its reason, never guessed."""
    data = {
        "customers": [{"customer_id": "C1", "name": "Dates"}],
        "invoices": [
            {
                "invoice_id": "Z",
                "customer_id": "C1",
                "issue_date": "2024-01-10T00:00:00Z",
                "due_date": "2024-02-09T00:00:00.000Z",
                "amount": "10.00",
            },
            {
                "invoice_id": "P",
                "customer_id": "C1",
                "issue_date": "2024-01-10T00:00:00+01:00",
                "due_date": "2024-02-09 00:00",
                "amount": "20.00",
            },
            {
                "invoice_id": "T",
                "customer_id": "C1",
                "issue_date": "2024-01-10T14:30:00Z",
                "due_date": "2024-02-09",
                "amount": "30.00",
            },
        ],
    }
    api = PagedApi(style="list", data=data, missing={"payments", "holds"})
    summary, con = _run(tmp_path, serve(api))
    try:
        loaded = con.execute("select invoice_id, issue_date, due_date from stg_invoices order by 1").fetchall()
        rejected = con.execute("select reason from rejected_rows where entity = 'invoices'").fetchall()
    finally:
        con.close()
    assert loaded == [("P", date(2024, 1, 10), date(2024, 2, 9)), ("Z", date(2024, 1, 10), date(2024, 2, 9))]
    assert len(rejected) == 1 and "issue_date '2024-01-10T14:30:00Z' is not a date written YYYY-MM-DD" in rejected[0][0]


# ----------------------------------------------------------------------------- bounded waits


@pytest.mark.parametrize("trickle_from", ["body", "headers"])
def test_an_api_trickling_its_answer_fails_within_the_timeout(serve, tmp_path, monkeypatch, trickle_from):
    """RELANCE_HTTP_TIMEOUT_S bounds the whole request, not the wait between two bytes: an answer
    arriving a byte every 50 ms (a valid 42-byte page, ~2 s, each byte well within the timeout)
    is cut at 1 s, retried once after 0.5 s, then the ingest fails with one line."""
    monkeypatch.setenv("RELANCE_HTTP_TIMEOUT_S", "1")
    monkeypatch.setenv("RELANCE_HTTP_RETRIES", "2")
    api = PagedApi(
        always=(200, {"Content-Type": "application/json"}, b"[]" + b" " * 40), trickle=0.05, trickle_from=trickle_from
    )
    base = serve(api)
    started = time.monotonic()
    with pytest.raises(SourceError) as excinfo:
        http_api.extract(base, tmp_path)
    elapsed = time.monotonic() - started
    assert str(excinfo.value) == (
        f"{base}/customers (page 1): the API did not answer successfully after 2 attempts (last: no complete "
        "answer within 1 s (RELANCE_HTTP_TIMEOUT_S)); try again later or raise RELANCE_HTTP_RETRIES"
    )
    assert len(api.seen) == 2
    assert 2.4 <= elapsed < 4  # 1 s + 0.5 s back-off + 1 s, not 2 × ~2 s


def test_an_answer_within_the_timeout_is_read_whole(serve, tmp_path, monkeypatch):
    """The deadline does not cut an answer that arrives in time, trickled or not."""
    monkeypatch.setenv("RELANCE_HTTP_TIMEOUT_S", "3")
    api = PagedApi(style="list", missing={"payments", "holds"}, trickle=0.001)  # ~0.3 s a page
    folder, _ = http_api.extract(serve(api), tmp_path)
    assert (folder / "customers.csv").read_text(encoding="utf-8").count("\n") == 4  # header + 3 customers
    assert (folder / "invoices.csv").read_text(encoding="utf-8").count("\n") == 8


class Looping(PagedApi):
    """A next-link API whose pagination never ends; `page(n)` gives the n-th answer's body."""

    def __init__(self, page):
        super().__init__()
        self.page = page

    def respond(self, path, query, headers):
        with self.lock:
            self.seen.append(Seen(path, query, headers))
            n = len(self.seen)
        return 200, {"Content-Type": "application/json"}, json.dumps(self.page(n)).encode()


def _customer(n: int) -> list:
    return [{"customer_id": f"C{n}", "name": f"Client {n}"}]


@pytest.mark.parametrize(
    "page, requests, message",
    [
        # the cursor comes back (A, B, A) while another parameter changes
        (
            lambda n: {"data": _customer(n), "next": f"customers?cursor={'AB'[(n - 1) % 2]}&ts={n}"},
            3,
            "the next link {base}/customers asks again for a position already read (its cursor repeats); "
            "the API's pagination loops",
        ),
        # the same URL, its parameters in another order
        (
            lambda n: {
                "data": _customer(n),
                "next": "customers?b=2&cursor=X&a=1" if n == 1 else "customers?a=1&cursor=X&b=2",
            },
            2,
            "the next link {base}/customers leads back to a page already read; the API's pagination loops",
        ),
        # empty pages that still link to a next one, a new cursor each time
        (
            lambda n: {"data": [], "next": f"customers?cursor=c{n + 1}"},
            3,
            "3 empty pages in a row still link to a next one ({base}/customers); the API's pagination seems endless",
        ),
        # a new cursor, the same records
        (
            lambda n: {"data": _customer(1), "next": f"customers?cursor=c{n + 1}"},
            2,
            "page 2 has the same records as page 1 although its next link {base}/customers moved on; "
            "the API seems to ignore its own cursor",
        ),
    ],
)
def test_a_next_link_that_never_ends_is_stopped_with_the_url(serve, tmp_path, page, requests, message):
    api = Looping(page)
    base = serve(api)
    with pytest.raises(SourceError) as excinfo:
        http_api.extract(base, tmp_path)
    assert str(excinfo.value) == f"{base}/customers (page {requests}): " + message.format(base=base)
    assert len(api.seen) == requests
