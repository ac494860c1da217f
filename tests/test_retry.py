"""One rule for waiting before a retry (relance/core/retry.py), shared by the HTTP source's GETs and the
providers' sends; the values below are worked by hand from RFC 9110 and the providers' docs."""

from __future__ import annotations

from datetime import date

import pytest

from relance.core.retry import asked_wait, backoff_seconds, retry_after_seconds, retry_wait

NOW = 1_780_000_000.0  # a fixed clock: 2026-05-28 20:26:40 UTC


def clock() -> float:
    return NOW


@pytest.mark.parametrize(
    "value,seconds",
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),  # never a negative wait
        ("Thu, 28 May 2026 20:27:10 GMT", 30.0),  # an HTTP date, 30 s ahead
        ("Thu, 28 May 2026 20:27:10 -0000", 30.0),  # no zone said: UTC (not the machine's local time)
        ("Thu, 28 May 2026 20:20:00 GMT", 0.0),  # already past
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value, seconds):
    assert retry_after_seconds(value, clock) == seconds


def test_the_server_asks_the_longer_of_retry_after_and_the_rate_limit_reset():
    headers = {"Retry-After": "2", "X-RateLimit-Reset": str(int(NOW) + 5)}
    assert asked_wait(headers, clock=clock) == 2.0  # reset only where documented
    assert asked_wait(headers, rate_limit_reset=True, clock=clock) == 5.0  # SendGrid's epoch second
    assert asked_wait({"X-RateLimit-Reset": "junk"}, rate_limit_reset=True, clock=clock) is None
    assert asked_wait(None) is None


def test_the_wait_is_what_was_asked_within_its_cap_else_the_back_off():
    assert retry_wait({"Retry-After": "600"}, 1, 0.5, 30.0, asked_cap=300.0, jitter=False, clock=clock) == 300.0
    assert retry_wait({"Retry-After": "600"}, 1, 0.5, 30.0, jitter=False, clock=clock) == 30.0
    assert retry_wait({}, 1, 0.5, 30.0, jitter=False) == 0.5
    assert [backoff_seconds(n, 0.5, 30.0, jitter=False) for n in (1, 2, 3, 7, 8)] == [0.5, 1.0, 2.0, 30.0, 30.0]
    for _ in range(50):  # jittered: 50–100 % of the step, never above the cap
        assert 1.0 <= backoff_seconds(3, 0.5, 30.0) <= 2.0
        assert 15.0 <= backoff_seconds(9, 0.5, 30.0) <= 30.0


def test_a_redirect_is_named_by_its_origin_only():
    from relance.core.urls import origin_label, redact_urls

    assert origin_label("https://user:p@ss/w#rd@Evil.example:8443/path?key=secret#frag") == "https://evil.example:8443"
    assert origin_label("//cdn.example/x") == "cdn.example"
    assert origin_label("/elsewhere?token=x") == "a path on the same host"
    assert origin_label(None) == "nowhere (no Location)"
    text = redact_urls(
        "failed: postgresql://bi:p@ss/w#rd?@db.example/finance?sslpassword=x; see https://tok@api.example/a?key=k"
    )
    assert text == "failed: postgresql://bi@db.example/finance; see https://api.example/a"


def test_one_holiday_lookup_for_the_ladder_and_the_sms_quiet_days():
    from tasks.calendar import holiday_name, public_holidays

    assert (
        holiday_name("fr", date(2026, 4, 6))
        == public_holidays("FR", date(2026, 4, 6), date(2026, 4, 6))[date(2026, 4, 6)]
    )
    assert holiday_name("FR", date(2026, 4, 7)) is None
    assert (
        holiday_name("ZZ", date(2026, 1, 1)) is None
        and public_holidays("ZZ", date(2026, 1, 1), date(2026, 1, 2)) is None
    )
