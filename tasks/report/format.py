"""The report's words and figures for a reader: labels (templates/report/labels.yaml), the unit
of each metric, and `Fmt` — money, numbers and percentages through relance.core.money (babel, half-up
rounding), dates through babel.dates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

import yaml
from babel.dates import format_date

from relance.core import money
from relance.core.errors import UserError
from relance.core.paths import TEMPLATES_DIR
from relance.core.policy import Policy, load_policy
from tasks.step import get_logger

REPORT_TEMPLATES = TEMPLATES_DIR / "report"
LANGUAGES = ("fr", "en")


@cache
def labels(language: str) -> dict:
    if language not in LANGUAGES:
        raise UserError(f"report language {language!r}: expected one of {', '.join(LANGUAGES)}")
    data = yaml.safe_load((REPORT_TEMPLATES / "labels.yaml").read_text(encoding="utf-8"))
    return data[language]


@lru_cache(maxsize=4096)
def _format_date(value: date, fmt: str, locale: str) -> str:
    return format_date(value, fmt, locale=locale)


#: The unit of each metric a reader sees (one place: the cards, the workbook's number formats).
MONEY_METRICS = ("open_ar", "overdue_ar", "current_ar", "unapplied_credit", "collected_30d", "cash_attributed_30d")
DAYS_METRICS = ("dso_90d", "best_possible_dso_90d", "add_90d")
PCT_METRICS = ("cei_30d", "recovery_rate_30d", "overdue_held_share", "credit_settled_rate_30d")
COUNT_METRICS = ("recovery_actions_30d", "actions_of_day")

#: Codes a report shows only through labels.yaml; a code missing there is shown as is (and
#: logged), so that tests/test_report.py catches it rather than the report failing.
MISSING_LABELS: set[tuple[str, str]] = set()


def metric_unit(name: str) -> str:
    if name in MONEY_METRICS:
        return "money"
    if name in DAYS_METRICS:
        return "days"
    if name in PCT_METRICS or name.endswith(("_rate_30d", "_rate_90d", "_share")) or name.startswith("recovery_by_age"):
        return "pct"
    return "number"


class Fmt:
    """Numbers, money, percentages and dates for a reader of `language` (babel); every code a
    reader sees (stage, channel, status, bucket, metric …) goes through labels.yaml here."""

    def __init__(self, language: str, pol: Policy | None = None) -> None:
        self.language = language
        self.L = labels(language)
        self.locale = self.L["locale"]
        self.pol = pol
        self._ladder_stages: dict[str, list] = {}

    def ladder_stages(self, pol: Policy, name: str) -> list:
        """pol.ladder_stages(name), computed once per report (the debtor list asks for each row)."""
        if pol is not self.pol:
            return pol.ladder_stages(name)
        if name not in self._ladder_stages:
            self._ladder_stages[name] = pol.ladder_stages(name)
        return self._ladder_stages[name]

    def missing(self, group: str, code: Any) -> str:
        if (group, str(code)) not in MISSING_LABELS:
            MISSING_LABELS.add((group, str(code)))
            get_logger().warning("report: no %s label for %r in templates/report/labels.yaml", group, code)
        return self.L.get("missing_label", "{code}").format(code=code)

    def term(self, group: str, code: Any) -> str:
        """The label of `code` in the labels group `group` (stages, channels, statuses …)."""
        if code is None or code == "":
            return "—"
        value = (self.L.get(group) or {}).get(code)
        return value if isinstance(value, str) else self.missing(group, code)

    def metric_name(self, name: str) -> str:
        value = self.L.get(name)
        return value if isinstance(value, str) else self.missing("metric", name)

    def metric_value(self, name: str, value: Decimal | None, currency: str) -> str:
        unit = metric_unit(name)
        if unit == "money":
            return self.money(value, currency)
        if unit == "days":
            return self.days(value)
        if unit == "pct":
            return self.pct(value)
        return self.num(value, 0 if value is None or value == value.to_integral_value() else 2)

    def bucket(self, code: str) -> str:
        """A bucket's label: labels.yaml `buckets` if it names it, else from the policy's bounds."""
        if code == "unapplied_credit":
            return self.L["unapplied_credit"]
        named = (self.L.get("buckets") or {}).get(code)
        if isinstance(named, str):
            return named
        pol = self.pol or load_policy(None)
        for _, name, lo, hi in pol.bucket_rows():
            if name != code:
                continue
            if lo is None:
                return self.L["bucket_not_due"] if hi == 0 else self.L["bucket_upto"].format(max=hi)
            if hi is None:
                return self.L["bucket_over"].format(min=lo)
            return self.L["bucket_range"].format(min=lo + 1, max=hi)
        return self.missing("bucket", code)

    def reason(self, status: str | None, detail: str | None) -> str:
        """Why a delivery needs a person, in the reader's language: the ledger's last_error is
        English text for the operators; its kind is recognised and labelled, the raw text of
        a provider's answer is kept as the detail."""
        R = self.L["reasons"]
        text = (detail or "").strip()
        if not text:
            return self.status(status)
        if status in ("in_doubt", "sending", "unknown"):
            return R["in_doubt"]
        low = text.lower()
        parts = []
        if low.startswith("no email address") or low.startswith("no email"):
            parts.append(R["no_email"])
        elif low.startswith("email address") and "not valid" in low:
            parts.append(R["bad_email"])
        elif low.startswith("no phone number"):
            parts.append(R["no_phone"])
        elif low.startswith("phone") and "e.164" in low:
            parts.append(R["bad_phone"])
        if "no postal address" in low:
            parts.append(R["no_address"])
        if parts:
            return ", ".join(dict.fromkeys(parts))
        for marker, key in (
            ("rendering failed", "rendering"),
            ("not rendered", "rendering"),
            ("not prepared", "rendering"),
            ("too long", "too_long"),
            ("not written over", "file_taken"),
        ):
            if marker in low:
                return R["detail"].format(reason=R[key], detail=text[:160])
        return R["detail"].format(reason=R["provider"], detail=text[:160])

    def money(self, value: Decimal | None, currency: str) -> str:
        if value is None:
            return "—"
        return money.format_money(value, currency, self.locale)

    def compact(self, value: Decimal, currency: str | None = None) -> str:
        return money.format_compact(value, self.locale, currency)

    def pct(self, value: Decimal | int | None, digits: int = 1) -> str:
        """A value in percent: "52,4 %" (fr), "52.4%" (en)."""
        if value is None:
            return "—"
        return money.format_percent(value, self.locale, digits)

    def num(self, value: Decimal | int | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        return money.format_decimal(value, self.locale, digits)

    def days(self, value: Decimal | None) -> str:
        if value is None:
            return "—"
        return self.L["days"].format(value=self.num(value, 1))

    def date(self, value: date | None, fmt: str = "medium") -> str:
        if value is None:
            return "—"
        return _format_date(value, fmt, self.locale)

    def stage(self, code: str | None) -> str:
        if not code:
            return self.L["none"]
        return self.term("stages", code)

    def channel(self, code: str | None) -> str:
        return self.term("channels", code)

    def status(self, code: str | None) -> str:
        return self.term("statuses", code)

    def hold(self, code: str | None) -> str:
        if not code:
            return "—"
        return ", ".join(self.term("holds", c.strip()) for c in code.split(","))

    def segment(self, code: str | None) -> str:
        if not code:
            return "—"
        value = self.L.get(f"segment_{code}")
        return value if isinstance(value, str) else self.missing("segment", code)

    def count(self, key: str, n: int, **fields: str) -> str:
        """labels[key] (a plural sentence with {n}), or labels[key_one] for one (fr: 0 or 1); `fields`
        fill the sentence's other placeholders."""
        one = n < 2 if self.language == "fr" else n == 1
        text = self.L.get(f"{key}_one") if one else None
        return (text or self.L[key]).format(n=self.num(n), **fields)

    def watch_reasons(self, codes: str | None, risk_class: str | None) -> str:
        """Why a unit is on the credit watch, in words: credit_watch.reasons (`class`, `overdue`,
        `plan`, comma-separated) by labels.yaml `watch_reasons`, the class by its label and the
        overdue threshold from the policy (docs/metrics.md "Credit watch")."""
        words = self.L["watch_reasons"]
        pol = self.pol or load_policy(None)
        out = []
        for code in (codes or "").split(","):
            code = code.strip()
            if not code:
                continue
            text = words.get(code)
            if not isinstance(text, str):
                out.append(self.missing("watch_reasons", code))
                continue
            out.append(
                text.format(
                    risk_class=self.term("risk_classes", risk_class), days=self.num(pol.credit_watch.max_days_past_due)
                )
            )
        return "; ".join(out)

    def entity(self, code: str | None) -> str:
        return self.term("entities", code)

    def dimension(self, code: str | None) -> str:
        return self.term("dimensions", code)

    def outcome_value(self, dimension: str, code: str | None) -> str:
        """A dimension value of the outcome metrics for a reader: a collector's name as is, a
        stage, channel, dispute reason, age, plan status or outcome kind by its label; 'none'
        (no step, no channel, nobody) in words."""
        if dimension == "collector":
            return self.L["nobody"] if code == "none" else (code or "—")
        if dimension == "stage":
            return self.L["no_step"] if code == "none" else self.stage(code)
        if dimension == "channel":
            return self.L["no_channel"] if code == "none" else self.channel(code)
        group = {
            "reason": "dispute_reasons",
            "age_bucket": "dispute_ages",
            "status": "plan_statuses",
            "kind": "outcome_kinds",
        }.get(dimension)
        return self.term(group, code) if group else self.missing("dimension", dimension)

    def outcome_row(self, dimension: str, code: str) -> tuple[str, str]:
        """(what the row is by, e.g. "By collector"; the dimension value's label) of an outcome
        metric's row: ("", "") for the 'all' row; collector and stage for 'collector_stage'."""
        L = self.L
        if dimension == "all":
            return "", ""
        if dimension == "collector_stage":
            collector, _, stage = code.rpartition(":")
            return (
                f"{L['by_collector']}, {L['by_stage'].lower()}",
                f"{self.outcome_value('collector', collector)} · {self.outcome_value('stage', stage)}",
            )
        titles = {
            "collector": "by_collector",
            "reason": "by_reason",
            "age_bucket": "by_age",
            "status": "by_status",
            "kind": "by_kind",
            "stage": "by_stage",
            "channel": "by_channel",
        }
        return (
            L[titles[dimension]] if dimension in titles else self.missing("dimension", dimension),
            self.outcome_value(dimension, code),
        )
