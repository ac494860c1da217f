"""The record_outcome flow: a typed run form in the Prefect UI (issue 14), the same rule set as the CLI.

The deployment test runs on a real Prefect server with a real process worker (slow: the fixtures
of tests/test_deployments.py); the others call the flow's function directly."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import pytest

from flows.record_outcome import Instalment, record_outcome, resolve_dispute
from relance.core.errors import UserError
from tests.ladder_helpers import customer, invoice, write_source


@pytest.fixture
def db(tmp_path):
    from tasks.ingest import ingest

    src = write_source(
        tmp_path / "src", customers=[customer("C1")], invoices=[invoice("F1", "C1", "2026-02-20", "1000.00")]
    )
    path = str(tmp_path / "w.duckdb")
    ingest(src, path, date(2026, 3, 31))
    return path


def test_the_run_form_is_typed():
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(record_outcome).model_dump()
    props, defs = schema["properties"], schema["definitions"]
    assert props["kind"]["enum"] == [
        "reached",
        "no_answer",
        "wrong_number",
        "promise",
        "dispute",
        "plan",
        "paid_claimed",
        "refused",
    ]
    assert {"format": "date", "type": "string"} in props["promised_date"]["anyOf"]
    assert props["instalments"]["items"] == {"$ref": "#/definitions/Instalment"}
    assert set(defs["Instalment"]["properties"]) == {"due_date", "amount"}
    assert schema["required"] == ["customer_id", "kind"]


def test_the_form_records_through_the_same_rules(db):
    res = record_outcome.fn(
        customer_id="C1",
        kind="plan",
        db=db,
        recorded_by="julie",
        said_on=date(2026, 3, 23),
        instalments=[
            Instalment(due_date=date(2026, 3, 25), amount=Decimal("400.00")),
            Instalment(due_date=date(2026, 4, 1), amount=Decimal("600.00")),
        ],
    )
    assert res["recorded"] == "1" and res["hold_until"] == "2026-04-04"
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("select kind, amount, source, recorded_by from outcomes").fetchall() == [
            ("plan", Decimal("1000.00"), "prefect", "julie")
        ]
        assert con.execute("select count(*) from outcome_instalments").fetchone()[0] == 2
    with pytest.raises(UserError, match="a promise needs the date promised"):
        record_outcome.fn(customer_id="C1", kind="promise", db=db, amount=Decimal("10"))
    with pytest.raises(UserError, match="0 open disputes"):
        resolve_dispute.fn(resolution="rejected", customer_id="C1", db=db)


def test_record_outcome_deployment(deployed, db):  # noqa: F811 (the fixture)
    import requests

    api, env = deployed
    prefect(
        env,
        "deployment",
        "run",
        "record_outcome/record-outcome",
        "--param",
        "customer_id=C1",
        "--param",
        "kind=promise",
        "--param",
        "amount=1000.00",
        "--param",
        "promised_date=2026-04-10",
        "--param",
        "said_on=2026-03-31",
        "--param",
        "recorded_by=julie",
        "--param",
        f"db={db}",
    )
    prefect(env, "worker", "start", "--pool", "relance", "--type", "process", "--run-once", timeout=600)
    dep = _deployment(api, "record_outcome/record-outcome")
    runs = requests.post(
        f"{api}/flow_runs/filter", json={"deployments": {"id": {"any_": [dep["id"]]}}}, timeout=10
    ).json()
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"], runs
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute(
            "select customer_id, kind, amount, promised_date, hold_until, source, recorded_by from outcomes"
        ).fetchall() == [
            ("C1", "promise", Decimal("1000.00"), date(2026, 4, 10), date(2026, 4, 13), "prefect", "julie")
        ]


from tests.test_deployments import _deployment, deployed, prefect, prefect_api  # noqa: E402,F401 (fixtures)
