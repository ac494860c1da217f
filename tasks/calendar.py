"""Business days: weekends (Saturday, Sunday) and the public holidays of each customer's country.

Public holidays are the country-level ones of the `holidays` package (no regions or states:
Alsace-Moselle's Good Friday or a German Land's holidays are not counted). A country the
package does not know gets weekends only, and the run's log says so. The same lookup serves
the ladder (the temp table ladder_calendar) and the SMS quiet days (tasks/dispatch/sms.py).
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

CALENDAR_DDL = """
create or replace temp table ladder_calendar (
    country varchar, day date, is_business_day boolean, holiday_name varchar
)
"""

# Every (country, day) of the span, from the country list and the holiday rows: one statement.
_FILL = """
insert into ladder_calendar
with

countries as (
    select unnest(cast($countries as varchar[])) as country
),

days as (
    select cast(generate_series as date) as day
    from generate_series(cast($start as timestamp), cast($end as timestamp), interval 1 day)
),

public_holidays as (
    select
        unnest(cast($holiday_countries as varchar[])) as country,
        unnest(cast($holiday_days as date[])) as day,
        unnest(cast($holiday_names as varchar[])) as holiday_name
)

select
    countries.country,
    days.day,
    isodow(days.day) < 6 and public_holidays.day is null as is_business_day,
    public_holidays.holiday_name
from countries
cross join days
left join public_holidays
    on public_holidays.country = countries.country and public_holidays.day = days.day
"""


@lru_cache(maxsize=1024)
def _country_holidays(country: str, year: int) -> dict[date, str] | None:
    import holidays

    try:
        return dict(holidays.country_holidays(country, years=year))
    except (NotImplementedError, KeyError, AttributeError):  # a country the package does not know
        return None


def public_holidays(country: str, start: date, end: date) -> dict[date, str] | None:
    """The country's public holidays between start and end (inclusive); None if the package does not know it."""
    found: dict[date, str] = {}
    for year in range(start.year, end.year + 1):
        days = _country_holidays(country.upper(), year)
        if days is None:
            return None
        found.update({d: n for d, n in days.items() if start <= d <= end})
    return found


def holiday_name(country: str, day: date) -> str | None:
    """The name of the country's public holiday on `day`, None on any other day (or an unknown country)."""
    return (public_holidays(country, day, day) or {}).get(day)


def write_calendar(con, countries: list[str], start: date, end: date) -> list[str]:
    """Build the temp table ladder_calendar (country, day, is_business_day, holiday_name) for
    every country and every day of [start, end]; returns the countries with no holiday data."""
    countries = sorted({c.upper() for c in countries if c})
    rows: list[tuple[str, date, str]] = []
    unknown: list[str] = []
    for country in countries:
        days = public_holidays(country, start, end)
        if days is None:
            unknown.append(country)
            continue
        rows.extend((country, d, n) for d, n in sorted(days.items()))
    con.execute(CALENDAR_DDL)
    con.execute(
        _FILL,
        {
            "countries": countries,
            "start": start,
            "end": end,
            "holiday_countries": [r[0] for r in rows],
            "holiday_days": [r[1] for r in rows],
            "holiday_names": [r[2] for r in rows],
        },
    )
    return unknown
