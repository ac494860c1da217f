"""The dunning policy: a YAML file a finance person reads (policies/default.yaml), validated before anything runs."""

from __future__ import annotations

import csv
import functools
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from relance.core.errors import PolicyError
from relance.core.paths import DEFAULT_POLICY, SQL_DIR
from relance.core.yaml_models import Strict, load_yaml_model

Channel = Literal["email", "sms", "letter", "registered_letter", "phone", "visit", "handoff"]
CHANNELS: tuple[str, ...] = Channel.__args__  # type: ignore[attr-defined]
_HALF_YEAR = re.compile(r"^(\d{4})-H([12])$")

#: Plausible ranges (documented in docs/policy.md): a ladder and buckets span at most ten years
#: either side of the due date; amounts stay far below the warehouse's DECIMAL(18,2).
MAX_DAYS = 3650
MAX_AMOUNT = Decimal("1000000000.00")
MAX_POINTS = Decimal("100")


@functools.cache
def currency_codes() -> frozenset[str]:
    """The ISO 4217 codes relance knows (sql/seeds/currencies.csv, also the staging check's list)."""
    with (SQL_DIR / "seeds" / "currencies.csv").open(encoding="utf-8", newline="") as f:
        return frozenset(row["currency"].strip() for row in csv.DictReader(f))


_CODE = r"^[a-z][a-z0-9_]*$"


def distinct_channels(v: tuple[str, ...]) -> tuple[str, ...]:
    """A list of channels (a stage's, a statement's): each at most once."""
    if len(set(v)) != len(v):
        raise ValueError("a channel is listed twice")
    return v


def cents_not_negative(v: Decimal) -> Decimal:
    """An amount of the policy (a stage's minimum, a tolerance): never negative, kept to the cent."""
    if v < 0:
        raise ValueError("must not be negative")
    return v.quantize(Decimal("0.01"))


#: What the contract's stage codes do when a policy does not say (policies written before the
#: stage keys); a key set in the file always wins. The default policy states all of them.
CLASSIC_STAGE_KEYS: dict[str, dict[str, Any]] = {
    "preventive": {"stopped_by_opt_out": True},
    "formal_notice": {
        "charged": True,
        "formal": True,
        "attach_letter": True,
        "legal_notice": True,
        "reference_prefix": "MD",
    },
    "litigation": {"charged": True, "reference_prefix": "CT"},
}


class Stage(Strict):
    """One step of the ladder. What the step does is said by its keys, never by its code: a policy
    may rename or add stages (docs/policy.md §3, "What a stage does")."""

    code: str = Field(pattern=_CODE)
    offset_days: int = Field(ge=-MAX_DAYS, le=MAX_DAYS)
    channels: tuple[Channel, ...] = Field(min_length=1)
    min_amount: Decimal = Field(default=Decimal("0.00"), le=MAX_AMOUNT, allow_inf_nan=False)
    requires_approval: bool = False
    description: str = ""
    #: its actions state the late-payment charges (interest L441-10 and the fixed recovery indemnity)
    charged: bool = False
    #: its letters are formal: the letter's title is set as a heading (mise en demeure layout);
    #: a registered letter always is
    formal: bool = False
    #: its emails carry the action's letter as a PDF attachment
    attach_letter: bool = False
    #: the legal notice (mise en demeure): the stages above it are taken live only once it was
    #: really sent in the episode (`formal_notice_not_sent`); its postal receipt starts the
    #: deadline; at most one stage
    legal_notice: bool = False
    #: an unsubscribe or a spam report stops its emails (courtesy steps only: never a charged,
    #: formal or legal-notice stage)
    stopped_by_opt_out: bool = False
    #: the prefix of the human reference printed on its messages ("Notre référence", e.g. MD-K7QF-2XBM)
    reference_prefix: str = Field(default="RL", pattern=r"^[A-Z]{2,4}$")
    #: the wording files of its messages, templates/<kind>/<lang>/<template>.j2; default: the code
    template: str | None = Field(default=None, pattern=_CODE)

    @property
    def wording(self) -> str:
        """The name of its wording files (templates/<kind>/<lang>/<wording>.j2)."""
        return self.template or self.code

    @model_validator(mode="before")
    @classmethod
    def _classic_codes(cls, data: Any) -> Any:
        """A policy written before the stage keys existed still means what it meant: the contract's
        stage codes keep their behaviour unless the file says otherwise (docs/policy.md §3)."""
        if isinstance(data, dict) and isinstance(data.get("code"), str):
            implied = CLASSIC_STAGE_KEYS.get(data["code"], {})
            data = {**implied, **data}
        return data

    @model_validator(mode="after")
    def _opt_out_only_for_courtesy(self) -> Stage:
        if self.stopped_by_opt_out and (self.charged or self.formal or self.legal_notice):
            raise ValueError("stopped_by_opt_out: an opt-out never stops a charged, formal or legal-notice stage")
        return self

    @field_validator("min_amount")
    @classmethod
    def _min_amount_in_cents(cls, v: Decimal) -> Decimal:
        return cents_not_negative(v)

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return distinct_channels(v)


class Bucket(Strict):
    name: str = Field(min_length=1)
    max_days: int | None = Field(default=None, ge=-MAX_DAYS, le=MAX_DAYS)


Segment = Literal["b2b", "b2c", "public"]
SEGMENTS: tuple[str, ...] = Segment.__args__  # type: ignore[attr-defined]
RiskClass = Literal["A", "B", "C", "D", "new"]
#: the ladder `stages:` describes: the catalogue of stages and the ladder of units no rule chooses
STANDARD = "standard"
#: the rule name recorded when no ladder rule matches
DEFAULT_RULE = "default"


class Charges(Strict):
    applies_to_segments: tuple[Segment, ...] = ("b2b",)
    #: percentage points over the reference rate
    margin_points: Decimal = Field(default=Decimal("10.00"), ge=0, le=MAX_POINTS, allow_inf_nan=False)
    indemnity_per_invoice: Decimal = Field(default=Decimal("40.00"), ge=0, le=MAX_AMOUNT, allow_inf_nan=False)
    indemnity_currency: str = "EUR"
    #: the interest's year: 365 (L441-10), 360 or 366 (exact/360, leap years)
    days_in_year: int = 365

    @field_validator("days_in_year")
    @classmethod
    def _a_year(cls, v: int) -> int:
        if v not in (360, 365, 366):
            raise ValueError(f"{v} must be 360, 365 or 366 (the days of the interest's year)")
        return v

    @field_validator("indemnity_currency")
    @classmethod
    def _known_currency(cls, v: str) -> str:
        if v not in currency_codes():
            raise ValueError(f"{v!r} is not an ISO 4217 currency code (e.g. EUR, USD, GBP)")
        return v


class LateChargesStatement(Strict):
    """The periodic statement of late-payment charges on invoices paid late (docs/policy.md
    "Statements of late-payment charges"): off unless enabled."""

    enabled: bool = False
    #: monthly: on the first business day of each month, for the invoices paid in the previous
    #: month; quarterly: on the first business day of each quarter, for the previous quarter
    period: Literal["monthly", "quarterly"] = "monthly"
    #: no statement when a debtor's charges of the period (in its currency) stay below this
    min_total: Decimal = Field(default=Decimal("40.00"), ge=0, le=MAX_AMOUNT, allow_inf_nan=False)
    channels: tuple[Literal["email", "letter"], ...] = Field(default=("email", "letter"), min_length=1)
    #: statements wait for `relance approve` (or the Prefect pause), like formal notices
    requires_approval: bool = True
    #: a statement also picks up the invoices settled late in the N months ending with its period
    #: that no statement has charged yet (a payment loaded late, a dispute rejected since, charges
    #: below min_total before); 0: only the period's own invoices
    lookback_months: int = Field(default=12, ge=0, le=120)

    @field_validator("min_total")
    @classmethod
    def _min_total_in_cents(cls, v: Decimal) -> Decimal:
        return cents_not_negative(v)

    @field_validator("channels")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return distinct_channels(v)

    def period_of(self, as_of: date) -> tuple[date, date, str]:
        """(first day, last day, label) of the period just before the one as_of falls in: the
        period a statement made on as_of covers (label 2025-07 or 2025-Q3)."""
        months = 1 if self.period == "monthly" else 3
        start_month = (as_of.month - 1) // months * months + 1
        current = date(as_of.year, start_month, 1)
        end = current - timedelta(days=1)
        first = date(end.year, (end.month - 1) // months * months + 1, 1)
        label = f"{first.year:04d}-{first.month:02d}" if months == 1 else f"{first.year:04d}-Q{(first.month + 2) // 3}"
        return first, end, label

    def window_start_of(self, as_of: date) -> date:
        """The first settlement date a statement made on as_of picks up: the day after its period's
        end, lookback_months earlier (2025-07 statement, 12 months: 2024-08-01), never after the
        period's first day."""
        first, end, _ = self.period_of(as_of)
        after = end + timedelta(days=1)
        months = after.year * 12 + after.month - 1 - self.lookback_months
        return min(first, date(months // 12, months % 12 + 1, 1))

    def period_start_of(self, as_of: date) -> date:
        """The first day of the period as_of falls in (its statement is made on its first business day)."""
        months = 1 if self.period == "monthly" else 3
        return date(as_of.year, (as_of.month - 1) // months * months + 1, 1)


class HalfYearRow(Strict):
    """A row of a dated rate table, one half-year each (reference rates, legal interest rates)."""

    half_year: str

    @field_validator("half_year")
    @classmethod
    def _half_year(cls, v: str) -> str:
        if not _HALF_YEAR.match(str(v)):
            raise ValueError(f"{v!r} is not a half-year like 2026-H1")
        return str(v)

    @property
    def start(self) -> date:
        y, h = _HALF_YEAR.match(self.half_year).groups()  # type: ignore[union-attr]
        return date(int(y), 1 if h == "1" else 7, 1)


def half_years(start: date, end: date):
    """The half-years from start's to end's, inclusive, as (year, 1 or 2)."""
    y, h = start.year, 1 if start.month <= 6 else 2
    while (y, h) <= (end.year, 1 if end.month <= 6 else 2):
        yield y, h
        y, h = (y, 2) if h == 1 else (y + 1, 1)


class ReferenceRate(HalfYearRow):
    rate: Decimal = Field(ge=-MAX_POINTS, le=MAX_POINTS, allow_inf_nan=False)


_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Tolerance(Strict):
    """The amount below which a unit is not contacted at all, per currency (contract §3)."""

    default: Decimal = Decimal("5.00")
    by_currency: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("default")
    @classmethod
    def _default_in_cents(cls, v: Decimal) -> Decimal:
        return cents_not_negative(v)

    @field_validator("by_currency")
    @classmethod
    def _amounts(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for cur, amount in v.items():
            if not _CURRENCY.match(str(cur)):
                raise ValueError(f"{cur!r} is not a currency code like EUR")
            if amount < 0:
                raise ValueError(f"{cur}: must not be negative")
        return {str(c): a.quantize(Decimal("0.01")) for c, a in v.items()}

    def rows(self) -> list[tuple[str, Decimal]]:
        return sorted(self.by_currency.items())


class DebtorProfile(Strict):
    """The payment-behaviour score (docs/metrics.md "Debtor profile"): who has too little history,
    and the lowest score of each class (A best; below class_c_min_score: D)."""

    min_paid_invoices: int = Field(default=3, ge=1, le=1000)
    class_a_min_score: int = Field(default=80, ge=0, le=100)
    class_b_min_score: int = Field(default=60, ge=0, le=100)
    class_c_min_score: int = Field(default=40, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> DebtorProfile:
        if not self.class_a_min_score > self.class_b_min_score > self.class_c_min_score:
            raise ValueError(
                f"class_a_min_score ({self.class_a_min_score}) > class_b_min_score ({self.class_b_min_score}) "
                f"> class_c_min_score ({self.class_c_min_score}) is required"
            )
        return self

    def params(self) -> dict[str, int]:
        return {
            "min_paid_invoices": self.min_paid_invoices,
            "class_a_min_score": self.class_a_min_score,
            "class_b_min_score": self.class_b_min_score,
            "class_c_min_score": self.class_c_min_score,
        }


class CreditWatch(Strict):
    """Units the ERP should hold new orders for (docs/metrics.md "Credit watch"): a risk class
    listed here, an invoice overdue more than max_days_past_due days, or (broken_plans) a latest
    payment plan broken in the last 12 months."""

    classes: tuple[Literal["A", "B", "C", "D"], ...] = ("D",)
    max_days_past_due: int = Field(default=60, ge=1, le=MAX_DAYS)
    broken_plans: bool = True


#: The dispute reason codes of the default policy (issue 14): a collector picks one.
DISPUTE_REASONS = ("price", "quantity", "quality", "not_received", "already_paid", "other")


class Outcomes(Strict):
    """What recorded outcomes do to the ladder (tasks/outcomes.py; docs/policy.md "Outcomes")."""

    #: a promise holds the unit until its date + this many days; broken if not paid by then
    promise_grace_days: int = Field(default=3, ge=0, le=365)
    #: an instalment is missed when not paid by its date + this many days; the plan then breaks
    instalment_grace_days: int = Field(default=3, ge=0, le=365)
    #: "we paid": the unit is held this many days for the payment to appear
    paid_claimed_hold_days: int = Field(default=5, ge=0, le=365)
    #: a reminder email goes this many days before each instalment of a plan (0: none)
    instalment_reminder_days: int = Field(default=3, ge=0, le=365)
    #: the reason codes a dispute may give
    dispute_reasons: tuple[str, ...] = Field(default=DISPUTE_REASONS, min_length=1)

    @field_validator("dispute_reasons")
    @classmethod
    def _codes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for code in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", code):
                raise ValueError(f"{code!r} is not a lower-case code like not_received")
        if len(set(v)) != len(v):
            raise ValueError("a reason code is listed twice")
        return v


class Freshness(Strict):
    """The freshness guard (docs/policy.md "Freshness guard"): when is the source too old to dun on."""

    #: The largest gap, in business days, between the newest payment (`paid_date`) and as_of; null: not checked.
    max_payment_gap_business_days: int | None = Field(default=3, ge=0, le=MAX_DAYS)
    #: The same for the newest invoice (`issue_date`).
    max_invoice_gap_business_days: int | None = Field(default=5, ge=0, le=MAX_DAYS)
    #: The largest drop, in percent, of the rows of customers, invoices or payments since the previous
    #: run (PostgreSQL and HTTP sources); null: not checked.
    max_row_drop_percent: Decimal | None = Field(default=Decimal("20"), ge=0, le=100, allow_inf_nan=False)
    #: Whose public holidays the business days skip (ISO country code of the `holidays` package).
    country: str = Field(default="FR", pattern=r"^[A-Z]{2}$")


class LegalRate(HalfYearRow):
    """The taux de l'intérêt légal of one half-year (arrêté published each semester), in percent:
    `individuals` when the creditor is a natural person not acting for professional needs
    ("particuliers"), `other` in all other cases ("autres cas")."""

    individuals: Decimal = Field(ge=0, le=MAX_POINTS, allow_inf_nan=False)
    other: Decimal = Field(ge=0, le=MAX_POINTS, allow_inf_nan=False)


class LegalInterest(Strict):
    """The legal interest rate table (Code civil 1344-1, Code monétaire et financier L313-2): which
    column applies (the creditor's category: `other` for a business creditor) and the rates."""

    creditor: Literal["individuals", "other"] = "other"
    rates: tuple[LegalRate, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> LegalInterest:
        halves = [r.half_year for r in self.rates]
        for i, h in enumerate(halves):
            if h in halves[:i]:
                raise ValueError(f"rates[{i}].half_year: {h} is listed twice")
        return self

    def rows(self) -> list[tuple[str, date, Decimal]]:
        return [
            (r.half_year, r.start, r.individuals if self.creditor == "individuals" else r.other) for r in self.rates
        ]


class ChargeRule(Strict):
    """What a ladder's charged stages state (docs/policy.md "Ladders"): `commercial` — interest at the
    reference rate + margin_points from the day after each due date, and the fixed indemnity per
    invoice (L441-10 for b2b; Code de la commande publique L2192-13 for public buyers at + 8 points);
    `legal_rate` — interest at the legal rate only from the day after the formal notice (Code civil
    1344-1), no indemnity; `none` — no charges."""

    kind: Literal["commercial", "legal_rate", "none"]
    margin_points: Decimal = Field(default=Decimal("10.00"), ge=0, le=MAX_POINTS, allow_inf_nan=False)
    indemnity_per_invoice: Decimal = Field(default=Decimal("40.00"), ge=0, le=MAX_AMOUNT, allow_inf_nan=False)

    @model_validator(mode="after")
    def _no_indemnity_at_legal_rate(self) -> ChargeRule:
        if (
            self.kind != "commercial"
            and "indemnity_per_invoice" in self.model_fields_set
            and self.indemnity_per_invoice
        ):
            raise ValueError(f"indemnity_per_invoice: only a commercial rule has an indemnity (kind is {self.kind})")
        return self


class LadderStep(Strict):
    """One stage of a named ladder: a stage code of the catalogue (`stages:`) and what this ladder
    changes of it."""

    code: str = Field(pattern=_CODE)
    offset_days: int | None = Field(default=None, ge=-MAX_DAYS, le=MAX_DAYS)
    min_amount: Decimal | None = Field(default=None, le=MAX_AMOUNT, allow_inf_nan=False)
    channels: tuple[Channel, ...] | None = Field(default=None, min_length=1)
    requires_approval: bool | None = None
    template: str | None = Field(default=None, pattern=_CODE)
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_code(cls, data: Any) -> Any:
        return {"code": data} if isinstance(data, str) else data

    @field_validator("min_amount")
    @classmethod
    def _cents(cls, v: Decimal | None) -> Decimal | None:
        return None if v is None else cents_not_negative(v)

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if v is None else distinct_channels(v)


class LadderDef(Strict):
    """A named ladder: catalogue stages in catalogue order, with overrides, and its charge rule
    (absent: late_payment_charges, as the standard ladder)."""

    name: str = Field(pattern=_CODE)
    description: str = ""
    stages: tuple[LadderStep, ...] = Field(min_length=1)
    charges: ChargeRule | None = None
    #: every action that sends a letter (a letter channel, or a fallback to one) waits for approval
    letters_require_approval: bool = False


class RuleWhen(Strict):
    """The conditions of a ladder rule, all of which must hold (an absent one always holds)."""

    segment: tuple[Segment, ...] | None = Field(default=None, min_length=1)
    risk_class: tuple[RiskClass, ...] | None = Field(default=None, min_length=1)
    customers: tuple[str, ...] | None = Field(default=None, min_length=1)
    tag: str | None = Field(default=None, pattern=_CODE)
    #: the unit's dunnable amount is at least this much
    min_amount: Decimal | None = Field(default=None, ge=0, le=MAX_AMOUNT, allow_inf_nan=False)


class LadderRule(Strict):
    name: str = Field(pattern=_CODE)
    ladder: str = Field(pattern=_CODE)
    when: RuleWhen = RuleWhen()


class Policy(Strict):
    stages: tuple[Stage, ...] = Field(min_length=1)
    tolerance: Tolerance = Tolerance()
    min_gap_days: int = Field(default=3, ge=0, le=MAX_DAYS)
    business_days_only: bool = True
    aging_buckets: tuple[Bucket, ...] = Field(min_length=2)
    late_payment_charges: Charges = Charges()
    #: the periodic statement of the charges owed on invoices paid late (off by default)
    late_charges_statement: LateChargesStatement = LateChargesStatement()
    reference_rates: tuple[ReferenceRate, ...] = ()
    debtor_profile: DebtorProfile = DebtorProfile()
    credit_watch: CreditWatch = CreditWatch()
    #: The language of a customer whose `language` is empty or one the templates do not have.
    default_language: Literal["fr", "en"] = "fr"
    #: what recorded outcomes (promises, plans, disputes) do to the ladder
    outcomes: Outcomes = Outcomes()
    #: The freshness guard: how old the source may be before the run plans no contact.
    freshness: Freshness = Freshness()
    #: How long the step after a formal notice waits for the registered letter's receipt when none
    #: is known, in days after the letter was sent (docs/policy.md "Registered letters").
    receipt_wait_days: int = Field(default=0, ge=0, le=MAX_DAYS)
    #: named ladders beside the standard one (`stages:`), docs/policy.md "Ladders"
    ladders: tuple[LadderDef, ...] = ()
    #: which ladder each unit climbs: the first rule that matches; none → the standard ladder
    ladder_rules: tuple[LadderRule, ...] = ()
    #: the legal interest rate table (legal_rate charges)
    legal_interest_rates: LegalInterest = LegalInterest()

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        codes = [s.code for s in self.stages]
        for i, code in enumerate(codes):
            if code in codes[:i]:
                raise ValueError(f"stages[{i}].code: duplicate stage code {code!r}")
        notices = [i for i, s in enumerate(self.stages) if s.legal_notice]
        if len(notices) > 1:
            raise ValueError(
                f"stages[{notices[1]}].legal_notice: only one stage can be the legal notice (stages[{notices[0]}] is)"
            )
        for i in range(1, len(self.stages)):
            if self.stages[i].offset_days <= self.stages[i - 1].offset_days:
                raise ValueError(
                    f"stages[{i}].offset_days: {self.stages[i].offset_days} must be greater than the "
                    f"previous stage's {self.stages[i - 1].offset_days} (offsets must increase)"
                )
        names = [b.name for b in self.aging_buckets]
        if "unapplied_credit" in names:
            raise ValueError("aging_buckets: 'unapplied_credit' is reserved for unapplied credit")
        for i, b in enumerate(self.aging_buckets):
            if b.name in names[:i]:
                raise ValueError(f"aging_buckets[{i}].name: duplicate bucket {b.name!r}")
            last = i == len(self.aging_buckets) - 1
            if last and b.max_days is not None:
                raise ValueError(f"aging_buckets[{i}].max_days: the last bucket must have no max_days")
            if not last and b.max_days is None:
                raise ValueError(f"aging_buckets[{i}].max_days: required for every bucket but the last")
            if i > 0 and not last and b.max_days <= self.aging_buckets[i - 1].max_days:  # type: ignore[operator]
                raise ValueError(f"aging_buckets[{i}].max_days: must be greater than the previous bucket's")
        halves = [r.half_year for r in self.reference_rates]
        for i, h in enumerate(halves):
            if h in halves[:i]:
                raise ValueError(f"reference_rates[{i}].half_year: {h} is listed twice")
        self._check_ladders()
        return self

    def _check_ladders(self) -> None:
        codes = [s.code for s in self.stages]
        notice = self.notice_stage
        notice_rank = codes.index(notice.code) if notice is not None else None
        names = [STANDARD]
        for i, lad in enumerate(self.ladders):
            where = f"ladders[{i}]"
            if lad.name in names:
                what = "is the ladder of `stages:`" if lad.name == STANDARD else "is listed twice"
                raise ValueError(f"{where}.name: {lad.name!r} {what}")
            names.append(lad.name)
            ranks = []
            for j, step in enumerate(lad.stages):
                if step.code not in codes:
                    raise ValueError(
                        f"{where}.stages[{j}].code: unknown stage {step.code!r} (stages: has {', '.join(codes)})"
                    )
                rank = codes.index(step.code)
                if ranks and rank <= ranks[-1]:
                    raise ValueError(
                        f"{where}.stages[{j}].code: {step.code!r} must come after {codes[ranks[-1]]!r}, "
                        "in the order of stages: (listed once each)"
                    )
                ranks.append(rank)
            resolved = self.ladder_stages(lad.name)
            for j in range(1, len(resolved)):
                if resolved[j][1].offset_days <= resolved[j - 1][1].offset_days:
                    raise ValueError(
                        f"{where}.stages[{j}].offset_days: {resolved[j][1].offset_days} must be greater than "
                        f"the previous stage's {resolved[j - 1][1].offset_days} (offsets must increase)"
                    )
            if notice_rank is not None and ranks[-1] > notice_rank and notice_rank not in ranks:
                raise ValueError(
                    f"{where}.stages: {codes[ranks[-1]]!r} comes after the legal notice {notice.code!r}, "  # type: ignore[union-attr]
                    f"which the ladder must then include"
                )
        rule_names: list[str] = []
        for i, rule in enumerate(self.ladder_rules):
            if rule.ladder not in names:
                raise ValueError(
                    f"ladder_rules[{i}].ladder: unknown ladder {rule.ladder!r} (ladders: {', '.join(names)})"
                )
            if rule.name in rule_names or rule.name == DEFAULT_RULE:
                raise ValueError(f"ladder_rules[{i}].name: {rule.name!r} is taken (names are unique, not 'default')")
            rule_names.append(rule.name)
        uses_legal = any(lad.charges is not None and lad.charges.kind == "legal_rate" for lad in self.ladders)
        if uses_legal and not self.legal_interest_rates.rates:
            raise ValueError("legal_interest_rates.rates: a ladder charges at the legal rate, the table is empty")

    # -- helpers used by the pipeline ------------------------------------------------------
    def stage(self, code: str | None, ladder: str | None = None) -> Stage | None:
        """The stage of that code (None for a code the policy does not have, e.g. an old action's),
        as `ladder` has it (its overrides of offset, minimum, channels, approval, template); the
        catalogue's (standard) stage for None, the standard ladder, an unknown ladder or a stage
        the ladder does not list."""
        for s in self.stages:
            if s.code == code:
                lad = self.ladder(ladder)
                step = next((st for st in lad.stages if st.code == code), None) if lad is not None else None
                if step is None:
                    return s
                update = {
                    k: v
                    for k, v in step.model_dump(exclude={"code"}).items()
                    if v is not None and k in step.model_fields_set
                }
                return s.model_copy(update=update)
        return None

    def ladder(self, name: str | None) -> LadderDef | None:
        """The named ladder (None for the standard one or a name the policy does not have)."""
        return next((lad for lad in self.ladders if lad.name == name), None)

    @property
    def ladder_names(self) -> list[str]:
        return [STANDARD] + [lad.name for lad in self.ladders]

    def ladder_stages(self, name: str = STANDARD) -> list[tuple[int, Stage]]:
        """(global rank, stage as the ladder has it) of a ladder, in order. Ranks are the catalogue's
        (`stages:` order, from 1) whatever the ladder, so they compare across ladders."""
        lad = self.ladder(name)
        ranks = {s.code: i for i, s in enumerate(self.stages, start=1)}
        if lad is None:
            return list(enumerate(self.stages, start=1))
        return [(ranks[st.code], self.stage(st.code, name)) for st in lad.stages]  # type: ignore[misc]

    def charge_rule(self, name: str = STANDARD) -> tuple[str, Decimal, Decimal, tuple[str, ...] | None]:
        """(kind, margin_points, indemnity, segments) of a ladder's charges: its `charges:`, else
        late_payment_charges (commercial, for the segments of applies_to_segments; None: all)."""
        lad = self.ladder(name)
        if lad is not None and lad.charges is not None:
            c = lad.charges
            indemnity = c.indemnity_per_invoice if c.kind == "commercial" else Decimal("0.00")
            return c.kind, c.margin_points if c.kind == "commercial" else Decimal("0.00"), indemnity, None
        lpc = self.late_payment_charges
        return "commercial", lpc.margin_points, lpc.indemnity_per_invoice, lpc.applies_to_segments

    def legal_rate_for(self, day: date) -> Decimal | None:
        half = f"{day.year:04d}-H{1 if day.month <= 6 else 2}"
        return next((rate for h, _, rate in self.legal_interest_rates.rows() if h == half), None)

    def require_legal_rates(self, start: date, end: date) -> None:
        """Refuse when a half-year between start and end (inclusive) has no legal interest rate."""
        for y, h in half_years(start, end):
            if self.legal_rate_for(date(y, 1 if h == 1 else 7, 1)) is None:
                raise PolicyError(
                    f"policy legal_interest_rates: no rate for {y:04d}-H{h}, needed for legal-rate interest "
                    f'up to {end.isoformat()}; add `- {{half_year: {y:04d}-H{h}, individuals: "…", other: "…"}}`'
                )

    @property
    def needs_risk_class(self) -> bool:
        """A ladder rule reads the debtor profile's class."""
        return any(r.when.risk_class is not None for r in self.ladder_rules)

    @property
    def notice_stage(self) -> Stage | None:
        """The legal-notice stage (legal_notice: true), if the ladder has one."""
        return next((s for s in self.stages if s.legal_notice), None)

    def bucket_rows(self) -> list[tuple[int, str, int | None, int | None]]:
        """(position, name, min_days, max_days) for each bucket; None = unbounded."""
        rows, lo = [], None
        for i, b in enumerate(self.aging_buckets):
            rows.append((i, b.name, lo, b.max_days))
            lo = b.max_days
        return rows

    def rate_for(self, day: date) -> Decimal | None:
        half = f"{day.year:04d}-H{1 if day.month <= 6 else 2}"
        for r in self.reference_rates:
            if r.half_year == half:
                return r.rate
        return None

    def require_rates(self, start: date, end: date) -> None:
        """Refuse to run when a half-year between start and end (inclusive) has no reference rate."""
        for y, h in half_years(start, end):
            if self.rate_for(date(y, 1 if h == 1 else 7, 1)) is None:
                raise PolicyError(
                    f"policy reference_rates: no rate for {y:04d}-H{h}, needed for late-payment charges "
                    f'up to {end.isoformat()}; add `- {{half_year: {y:04d}-H{h}, rate: "…"}}`'
                )


@functools.cache
def default_policy() -> Policy:
    """policies/default.yaml, read once (previews and the template check's sample stages)."""
    return load_policy(None)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; a PolicyError names the key and the problem."""
    return load_yaml_model(
        Path(path) if path else DEFAULT_POLICY,
        Policy,
        name="policy",
        missing="policy file",
        keys_hint=" (stages, min_gap_days, …)",
        error=PolicyError,
    )
