"""Run dates: as_of defaults to today in the business timezone (or the flow run's scheduled date)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Europe/Paris")

#: The run dates relance accepts (as_of, backfill start and end). Outside them the date
#: arithmetic of the ladder, the charges and the metrics (as_of − 365 days, due date + offsets)
#: leaves the calendar, and no ledger of receivables is that old or that far ahead.
MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2199, 12, 31)


def check_range(day: date, name: str = "date") -> date:
    from relance.core.errors import UserError

    if not MIN_DATE <= day <= MAX_DATE:
        raise UserError(
            f"{name} {day.isoformat()} is out of range: relance runs for dates from "
            f"{MIN_DATE.isoformat()} to {MAX_DATE.isoformat()}"
        )
    return day


def parse_date(value: str | date | None, name: str = "date") -> date | None:
    from relance.core.errors import UserError

    if value is None:
        return value
    if isinstance(value, date):
        check_range(value.date() if isinstance(value, datetime) else value, name)
        return value
    text = str(value).strip()
    if text.lower() == "today":
        return today()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{name} {text!r} is not a date written YYYY-MM-DD") from None
    return check_range(day, name)


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
