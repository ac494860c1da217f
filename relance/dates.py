"""Run dates: as_of defaults to today in the business timezone (or the flow run's scheduled date)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Europe/Paris")


def parse_date(value: str | date | None, name: str = "date") -> date | None:
    from relance.errors import UserError

    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    if text.lower() == "today":
        return today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{name} {text!r} is not a date written YYYY-MM-DD") from None


def today() -> date:
    return datetime.now(BUSINESS_TZ).date()


def scheduled_date(scheduled: datetime) -> date:
    """The business date of a scheduled time: its date in Europe/Paris."""
    if scheduled.tzinfo is None:
        scheduled = scheduled.replace(tzinfo=ZoneInfo("UTC"))
    return scheduled.astimezone(BUSINESS_TZ).date()


def default_as_of() -> date:
    """The scheduled date of the current flow run in Europe/Paris, else today there."""
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            scheduled = flow_run.scheduled_start_time
            if scheduled is not None:
                return scheduled_date(datetime.fromisoformat(scheduled.isoformat()))
    except Exception:
        pass
    return today()
