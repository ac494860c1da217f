"""The dunning policy: a YAML file a finance person reads (policies/default.yaml), validated before anything runs."""

from __future__ import annotations

import csv
import functools
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relance import DEFAULT_POLICY, SQL_DIR
from relance.errors import PolicyError

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    offset_days: int = Field(ge=-MAX_DAYS, le=MAX_DAYS)
    channels: tuple[Channel, ...] = Field(min_length=1)
    min_amount: Decimal = Field(default=Decimal("0.00"), le=MAX_AMOUNT, allow_inf_nan=False)
    requires_approval: bool = False
    description: str = ""

    @field_validator("min_amount")
    @classmethod
    def _non_negative(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError("must not be negative")
        return v.quantize(Decimal("0.01"))

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a channel is listed twice")
        return v


class Bucket(_Strict):
    name: str = Field(min_length=1)
    max_days: int | None = Field(default=None, ge=-MAX_DAYS, le=MAX_DAYS)


class Charges(_Strict):
    applies_to_segments: tuple[Literal["b2b", "b2c"], ...] = ("b2b",)
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


class ReferenceRate(_Strict):
    half_year: str
    rate: Decimal = Field(ge=-MAX_POINTS, le=MAX_POINTS, allow_inf_nan=False)

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


_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Tolerance(_Strict):
    """The amount below which a unit is not contacted at all, per currency (contract §3)."""

    default: Decimal = Decimal("5.00")
    by_currency: dict[str, Decimal] = Field(default_factory=dict)

    @field_validator("default")
    @classmethod
    def _default(cls, v: Decimal) -> Decimal:
        if v < 0:
            raise ValueError("must not be negative")
        return v.quantize(Decimal("0.01"))

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


class Freshness(_Strict):
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


class Policy(_Strict):
    stages: tuple[Stage, ...] = Field(min_length=1)
    tolerance: Tolerance = Tolerance()
    min_gap_days: int = Field(default=3, ge=0, le=MAX_DAYS)
    business_days_only: bool = True
    aging_buckets: tuple[Bucket, ...] = Field(min_length=2)
    late_payment_charges: Charges = Charges()
    reference_rates: tuple[ReferenceRate, ...] = ()
    #: The language of a customer whose `language` is empty or one the templates do not have.
    default_language: Literal["fr", "en"] = "fr"
    #: The freshness guard: how old the source may be before the run plans no contact.
    freshness: Freshness = Freshness()
    #: How long the step after a formal notice waits for the registered letter's receipt when none
    #: is known, in days after the letter was sent (docs/policy.md "Registered letters").
    receipt_wait_days: int = Field(default=15, ge=0, le=MAX_DAYS)

    @model_validator(mode="after")
    def _consistent(self) -> "Policy":
        codes = [s.code for s in self.stages]
        for i, code in enumerate(codes):
            if code in codes[:i]:
                raise ValueError(f"stages[{i}].code: duplicate stage code {code!r}")
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
        return self

    # -- helpers used by the pipeline ------------------------------------------------------
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
        y, h = start.year, 1 if start.month <= 6 else 2
        while (y, h) <= (end.year, 1 if end.month <= 6 else 2):
            if self.rate_for(date(y, 1 if h == 1 else 7, 1)) is None:
                raise PolicyError(
                    f"policy reference_rates: no rate for {y:04d}-H{h}, needed for late-payment charges "
                    f"up to {end.isoformat()}; add `- {{half_year: {y:04d}-H{h}, rate: \"…\"}}`"
                )
            y, h = (y, 2) if h == 1 else (y + 1, 1)


def _format_error(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return f"policy {path} is not valid:\n  " + "\n  ".join(lines)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; a PolicyError names the key and the problem."""
    path = Path(path) if path else DEFAULT_POLICY
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise PolicyError(f"policy {path} is not readable YAML: {e}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy {path} must be a mapping of keys (stages, min_gap_days, …)")
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise PolicyError(_format_error(path, e)) from None
