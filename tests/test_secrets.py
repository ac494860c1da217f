"""Issue 11 §4: secrets never show. One redactor (relance/core/urls.py) for every URL relance shows or
stores — PostgreSQL sources, HTTP sources, the metrics target — tried with hostile passwords (with
unescaped ``#``, ``?``, ``/`` and ``@``, percent-encoded ones, query-string passwords, tokens in
http URLs), then end to end: error messages, ``--json``, logs and ``rejected_rows.source``."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest

from relance.core.urls import escape_userinfo, redact_url, scrub, secrets, split_url
from tests.test_source_postgres import AS_OF, INVOICES, ErpSchema, _connect, erp  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parent.parent

#: Each hostile password's pieces between the special characters are all >= 4 characters, so
#: that "no piece shows" is a meaningful check.
HOSTILE = [
    "Leak3d#Passw?ord/Secr@et9",  # every special character, unescaped
    "Slash/Secr3tPart",  # libpq would read "Slash" as the host's port
    "Quest?ionSecr3t",  # urlsplit would end the authority at ?
    "Hash#Secr3tPart",  # … or at #
    "At@Secr3t@Twice",  # two @ in the password: the userinfo ends at the LAST @
]


def pieces(secret: str) -> list[str]:
    return [p for p in re.split(r"[#?/@:%]", secret) if len(p) >= 4]


def assert_hidden(text: str, *secret_values: str) -> None:
    for secret in secret_values:
        for piece in pieces(secret):
            assert piece not in text, f"{piece!r} of a secret shows in: {text}"


# -- the redactor --------------------------------------------------------------------------------


@pytest.mark.parametrize("password", HOSTILE)
def test_a_hostile_postgres_password_is_cut_out_and_the_rest_is_kept(password):
    url = f"postgresql://bi:{password}@db.example:6432/finance?sslmode=require"
    assert redact_url(url) == "postgresql://bi@db.example:6432/finance"
    parts = split_url(url)
    assert (parts.user, parts.password, parts.hosts, parts.path, parts.query) == (
        "bi",
        password,
        "db.example:6432",
        "/finance",
        "sslmode=require",
    )
    assert password in secrets(url)
    assert_hidden(scrub(f"could not connect to {url}: password {password} refused", url), password)


@pytest.mark.parametrize(
    "url, label",
    [
        # percent-encoded password: neither the encoded nor the decoded text shows
        ("postgresql://bi:Leak3d%23Pass%2Fword%40x@db.example/finance", "postgresql://bi@db.example/finance"),
        # query-string passwords (libpq accepts password= and sslpassword= as parameters)
        (
            "postgresql://bi@db.example/finance?password=QueryPass1&sslpassword=SslKeyPass2",
            "postgresql://bi@db.example/finance",
        ),
        ("postgres://bi:Leak3dPass@[::1]:5433/finance", "postgres://bi@[::1]:5433/finance"),
        (
            "postgresql://bi:Multi/Host@h1.example:5432,h2.example:5433/finance",
            "postgresql://bi@h1.example:5432,h2.example:5433/finance",
        ),
        ("postgresql:///finance?host=/var/run/postgresql", "postgresql:///finance"),
        # http(s): the user part is often a token: neither the user nor the password is kept
        ("https://Tok3nAsUser@api.example/v1", "https://api.example/v1"),
        (
            "https://user:Tok3nPass@api.example:8443/v1/customers?token=QueryTok3n&page=2",
            "https://api.example:8443/v1/customers",
        ),
        (
            "https://api.example/v1/customers?api_key=ApiKeyValue&access_token=AccessTok3n#frag",
            "https://api.example/v1/customers",
        ),
        # an @ in a path or a query is not a userinfo
        ("https://api.example/v1/users/someone@example.org", "https://api.example/v1/users/someone@example.org"),
        ("https://api.example/v1?email=a@b.example", "https://api.example/v1"),
        # a folder is not a URL: shown as it is
        ("/srv/erp/export", "/srv/erp/export"),
    ],
)
def test_labels(url, label):
    assert redact_url(url) == label


@pytest.mark.parametrize(
    "url, hidden",
    [
        (
            "postgresql://bi:Leak3d%23Pass%2Fword%40x@db.example/finance",
            ["Leak3d%23Pass%2Fword%40x", "Leak3d#Pass/word@x"],
        ),
        (
            "postgresql://bi@db.example/finance?password=QueryPass1&sslpassword=SslKeyPass2",
            ["QueryPass1", "SslKeyPass2"],
        ),
        ("https://Tok3nAsUser@api.example/v1", ["Tok3nAsUser"]),
        ("https://user:Tok3nPass@api.example/v1?token=QueryTok3n", ["Tok3nPass", "QueryTok3n"]),
        ("https://api.example/v1?api_key=ApiKeyValue&access_token=AccessTok3n", ["ApiKeyValue", "AccessTok3n"]),
    ],
)
def test_scrub_removes_every_form_of_the_secrets(url, hidden):
    text = f"failed: {url} said " + " and ".join(hidden)
    out = scrub(text, url)
    for h in hidden:
        assert h not in out
    assert redact_url(url) in out


def test_escape_userinfo_gives_the_driver_the_same_password():
    from psycopg.conninfo import conninfo_to_dict

    for password in HOSTILE + ["already%2Fencoded", "100%"]:
        url = f"postgresql://bi:{password}@db.example:6432/finance"
        got = conninfo_to_dict(escape_userinfo(url))
        expected = password.replace("%2F", "/")
        assert (got["user"], got["password"], got["host"], got["port"], got["dbname"]) == (
            "bi",
            expected,
            "db.example",
            "6432",
            "finance",
        )
    plain = "postgresql://bi:plain-pw_1.~@db.example/finance?sslmode=require"
    assert escape_userinfo(plain) == plain


# -- end to end ----------------------------------------------------------------------------------


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "relance.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.postgres
@pytest.mark.parametrize("password", [HOSTILE[0], HOSTILE[1]])
def test_a_connection_failure_names_the_server_never_the_password(tmp_path, password):
    done = cli(
        "run",
        "--as-of",
        AS_OF.isoformat(),
        "--source",
        f"postgresql://postgres:{password}@127.0.0.1:1/test",
        "--db",
        str(tmp_path / "r.duckdb"),
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        "relance: error: cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/test: connection refused"
    ), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert_hidden(done.stderr + done.stdout, password)


@pytest.mark.postgres
def test_a_run_from_a_hostile_url_shows_the_password_nowhere(erp, tmp_path, caplog):  # noqa: F811
    """Trust auth accepts (and ignores) the password: the run connects — the URL is read as written,
    with its unescaped #?/@ — and the password is in no table, JSON or log line."""
    password = HOSTILE[0]
    erp.fill()
    erp.insert("invoices", [("BAD-NEG", "C1", "invoice", INVOICES[0][3], INVOICES[0][4], -5, "EUR")])
    url = f"postgresql://postgres:{password}@127.0.0.1:5432/test?sslmode=disable&sslpassword={quote(password, safe='')}"
    db = tmp_path / "r.duckdb"
    done = cli(
        "run", "--as-of", AS_OF.isoformat(), "--source", url, "--source-schema", erp.name, "--db", str(db), "--json"
    )
    assert done.returncode == 0, done.stderr
    assert_hidden(done.stdout + done.stderr, password)
    summary = json.loads(done.stdout)
    assert summary["ingest"]["source"] == "postgresql://postgres@127.0.0.1:5432/test"
    with duckdb.connect(str(db), read_only=True) as con:
        sources = [r[0] for r in con.execute("select distinct source from rejected_rows").fetchall()]
        assert sources == [f"postgresql://postgres@127.0.0.1:5432/test {erp.name}.invoices"]
        tables = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_type = 'BASE TABLE'"
            ).fetchall()
        ]
        assert "rejected_rows" in tables
        for table in tables:
            assert_hidden(str(con.execute(f'select * from "{table}"').fetchall()), password)
    # the in-process run: logs at every level
    from flows.nightly import nightly_run

    with caplog.at_level(logging.DEBUG):
        nightly_run(as_of=AS_OF, source=url, source_schema=erp.name, db=str(tmp_path / "r2.duckdb"))
    assert_hidden(caplog.text, password)


@pytest.mark.postgres
def test_a_metrics_target_with_a_slash_in_its_password(tmp_path):
    """The write-back is the last step: a password with / used to end a complete run with a
    ValueError traceback (urllib read the rest of the password as a port)."""
    from flows.nightly import nightly_run
    from tasks.writeback import write_back
    from tests.conftest import write_source
    from tests.fakes.scenario import customer, invoice

    pg = _connect()
    schema = f"relance_test_{uuid.uuid4().hex[:10]}"
    src = write_source(
        tmp_path / "src",
        customers=[customer("C1", "Client 1")],
        invoices=[invoice("F1", "C1", "2024-01-02", "2024-02-01", "100.00")],
    )
    db = tmp_path / "r.duckdb"
    password = "Slash/Secr3t@Part"
    try:
        nightly_run(as_of=AS_OF, source=str(src), db=str(db), report_dir=str(tmp_path / "rep"))
        done = write_back(str(db), AS_OF, f"postgresql://postgres:{password}@127.0.0.1:5432/test", schema=schema)
        assert done["target"] == f"postgresql://postgres@127.0.0.1:5432/test#{schema}"
        assert done["dates"] == [AS_OF.isoformat()]
        assert pg.execute(f'select count(*) from "{schema}".aged_balance').fetchone()[0] > 0
    finally:
        pg.execute(f'drop schema if exists "{schema}" cascade')
        pg.close()

    # the CLI, to a server that does not answer: one clear line after the complete run, exit 2
    done = cli(
        "run",
        "--as-of",
        AS_OF.isoformat(),
        "--source",
        str(src),
        "--db",
        str(tmp_path / "c.duckdb"),
        "--metrics-target",
        f"postgresql://bi:{password}@127.0.0.1:1/finance",
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        "relance: error: metrics write-back to postgresql://bi@127.0.0.1:1/finance#relance failed"
    )
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert_hidden(done.stderr + done.stdout, password)


def test_an_http_source_with_credentials_in_its_url_names_only_the_host(tmp_path, monkeypatch):
    from relance.core.errors import SourceError
    from tasks.sources import http_api

    monkeypatch.setenv("RELANCE_HTTP_RETRIES", "1")
    monkeypatch.delenv("RELANCE_SOURCE_TOKEN", raising=False)
    for url in (
        "http://Tok3nAsUser@127.0.0.1:1/api?token=QueryTok3n",
        "http://user:Slash/Secr3t@127.0.0.1:1/api?api_key=ApiKeyValue",
    ):
        with pytest.raises(SourceError) as err:
            http_api.extract(url, tmp_path)
        assert str(err.value).startswith("http://127.0.0.1:1/api/customers"), str(err.value)
        assert_hidden(str(err.value), "Tok3nAsUser", "QueryTok3n", "Slash/Secr3t", "ApiKeyValue")


@pytest.mark.parametrize(
    "url, label",
    [
        # a port libpq will refuse: the password is still cut at the last @, not at the first /
        ("postgresql://bi:Slash/Secr3t@db.example:notaport/finance", "postgresql://bi@db.example:notaport/finance"),
        # an @ in the query of a URL whose password holds / and @: hides more, never less
        ("postgresql://bi:Slash/Secr3t@Part@db.example/finance?application_name=a@b", "postgresql://bi@b"),
    ],
)
def test_odd_host_parts_never_reveal_the_password(url, label):
    assert redact_url(url) == label
    assert_hidden(redact_url(url), "Slash/Secr3t@Part")


def test_a_metrics_target_libpq_cannot_read_is_refused_before_the_run(tmp_path):
    db = tmp_path / "r.duckdb"
    done = cli(
        "run",
        "--as-of",
        AS_OF.isoformat(),
        "--source",
        str(tmp_path),
        "--db",
        str(db),
        "--metrics-target",
        "postgresql://bi:Slash/Secr3t@db.example/finance?bogus_option=1",
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "relance: error: --metrics-target postgresql://bi@db.example/finance is not a "
        'valid PostgreSQL URL: invalid URI query parameter: "bogus_option"'
    )
    assert not db.exists()


def test_escape_userinfo_leaves_what_libpq_reads_right_alone():
    for url in (
        "postgresql://bi:pw@db.example/finance?application_name=a@b",
        "postgresql://bi:Quest?ionSecr3t@db.example/finance",
        "postgresql://bi:Hash#Secr3tPart@db.example/finance",
        "postgresql://bi@db.example/finance",
    ):
        assert escape_userinfo(url) == url
    assert escape_userinfo("postgresql://bi:At@Secr3t@db.example/f") == "postgresql://bi:At%40Secr3t@db.example/f"
    assert escape_userinfo("postgresql://bi:Sl/ash@db.example/f") == "postgresql://bi:Sl%2Fash@db.example/f"


def test_a_piece_of_a_misread_password_quoted_by_a_driver_is_scrubbed():
    url = "postgresql://bi:Hash@Secr3t/x@db.example/finance"
    assert (
        scrub('could not translate host name "Secr3t" to address', url)
        == 'could not translate host name "***" to address'
    )
