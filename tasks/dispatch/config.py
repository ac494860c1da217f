"""The channels' settings (templates/channels.yaml): creditor, email, SMS, letters, worklists.

Finance owns that file with the wording in templates/; secrets never go in it. A run may use
another file (the `channels_config` argument of dispatch, or RELANCE_CHANNELS_CONFIG).
The SMS gateway's credentials are environment settings (RELANCE_SMS_*), see tasks.dispatch.sms.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from relance.core.paths import TEMPLATES_DIR
from relance.core.yaml_models import Strict, load_yaml_model

DEFAULT_CHANNELS_CONFIG = TEMPLATES_DIR / "channels.yaml"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Creditor(Strict):
    name: str
    legal_mentions: str = ""
    street: str = ""
    postal_code: str = ""
    city: str = ""
    country: str = "FR"
    phone: str = ""
    email: str = ""
    website: str | None = None
    iban: str = ""
    bic: str = ""
    bank: str = ""
    payment_url: str | None = None
    signatory: str = ""
    signatory_title: dict[str, str] = Field(default_factory=dict)
    language: Literal["fr", "en"] = "fr"


class _Http(Strict):
    concurrency: int = Field(default=8, ge=1, le=64)
    timeout_seconds: float = Field(default=30, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_seconds: float = Field(default=1.0, ge=0)
    max_backoff_seconds: float = Field(default=60, ge=0)


class EmailCfg(_Http):
    from_email: str
    from_name: str = ""
    reply_to: str | None = None
    sandbox: bool = False
    prefect_rate_limit: str | None = "sendgrid"

    @model_validator(mode="before")
    @classmethod
    def _attachments_moved_to_the_policy(cls, data: Any) -> Any:
        """`attach_letter_for_stages` (channels files before the stage keys) is now the stage's
        `attach_letter` in the policy. Its old default, [formal_notice], is what the policy says and
        is ignored; anything else is refused with the way to say it now."""
        if isinstance(data, dict) and "attach_letter_for_stages" in data:
            data = dict(data)
            stages = data.pop("attach_letter_for_stages")
            if list(stages or []) != ["formal_notice"]:
                raise ValueError(
                    "attach_letter_for_stages moved to the policy: set `attach_letter: true` "
                    "on those stages in the policy file (docs/policy.md) and remove it here"
                )
        return data


class SmsCfg(_Http):
    sender: str = "RELANCE"
    window_start: str = "08:00"
    window_end: str = "20:00"
    no_send_weekdays: tuple[str, ...] = ("sunday",)
    skip_public_holidays: bool = True
    transliterate: bool = True
    max_segments: int = Field(default=3, ge=1, le=10)

    @field_validator("window_start", "window_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time written HH:MM")
        return v

    @field_validator("no_send_weekdays")
    @classmethod
    def _weekdays(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in v if d.lower() not in WEEKDAYS]
        if bad:
            raise ValueError(f"unknown weekday(s) {bad}: use {', '.join(WEEKDAYS)}")
        return tuple(d.lower() for d in v)

    def minutes(self, which: str) -> int:
        h, m = _HHMM.match(getattr(self, which)).groups()  # type: ignore[union-attr]
        return int(h) * 60 + int(m)


class LettersCfg(Strict):
    place: str | None = None
    processes: int = Field(default=0, ge=0)
    parallel_from: int = Field(default=60, ge=1)
    chunk_size: int = Field(default=40, ge=1)


class FormalNoticeCfg(Strict):
    deadline_days: int = Field(default=8, ge=1)


class RiskWeights(Strict):
    """What a unit's risk class (docs/metrics.md "Debtor profile") multiplies its worklist priority
    by: a debtor that pays late is called before an equal debt of one that pays on time. `new`
    also serves a unit without a profile yet."""

    A: float = Field(default=0.8, ge=0, le=10)
    B: float = Field(default=1.0, ge=0, le=10)
    C: float = Field(default=1.25, ge=0, le=10)
    D: float = Field(default=1.5, ge=0, le=10)
    new: float = Field(default=1.0, ge=0, le=10)

    def of(self, risk_class: str | None) -> float:
        return getattr(self, risk_class) if risk_class in ("A", "B", "C", "D") else self.new


class WorklistsCfg(Strict):
    recovery_curve: tuple[tuple[int, float], ...] = ((0, 1.0), (90, 0.9), (365, 0.1))
    unassigned: str = "unassigned"
    #: each promise or plan the debtor broke in the last 180 days multiplies its chance by this
    broken_promise_factor: float = Field(default=0.5, ge=0, le=1)
    #: the unit's risk class multiplies its priority by this (tasks/dispatch/worklists.py)
    risk_weights: RiskWeights = RiskWeights()

    @field_validator("recovery_curve")
    @classmethod
    def _curve(cls, v: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
        if not v:
            raise ValueError("needs at least one [days, chance] point")
        days = [d for d, _ in v]
        if days != sorted(set(days)):
            raise ValueError("days must increase from one point to the next")
        if any(not 0 <= p <= 1 for _, p in v):
            raise ValueError("chances are between 0 and 1")
        return v


class ChannelsConfig(Strict):
    creditor: Creditor
    email: EmailCfg
    sms: SmsCfg = SmsCfg()
    letters: LettersCfg = LettersCfg()
    formal_notice: FormalNoticeCfg = FormalNoticeCfg()
    worklists: WorklistsCfg = WorklistsCfg()


def config_path(path: str | Path | None = None) -> Path:
    from relance.core.settings import get_settings

    return Path(path or get_settings().channels_config or DEFAULT_CHANNELS_CONFIG)


@lru_cache(maxsize=8)
def _load(path: Path, mtime: float) -> ChannelsConfig:
    return load_yaml_model(
        path,
        ChannelsConfig,
        name="channels settings",
        missing="channels settings",
        verb="are",
        keys_hint=" (creditor, email, sms, …)",
        empty_ok=True,
    )


def load_channels_config(path: str | Path | None = None) -> ChannelsConfig:
    p = config_path(path)
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError:
        mtime = 0.0
    return _load(p, mtime)
