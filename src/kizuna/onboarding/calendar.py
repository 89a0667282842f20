"""Due dates of onboarding plans: the start date plus a number of calendar days.

Offsets are *calendar* days ("day 7" is a week after the start, whatever the weekdays): the
simplest rule to explain to a customer. When the company skips weekends
(``OnboardingSettings.skip_weekends``), a due date that lands on a Saturday, a Sunday or a
``Holiday`` then moves *forward* to the next working day; it never moves back. With the
setting off, the due date is exactly the start plus the offset (holidays are not consulted).
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta

SATURDAY = 5


def next_working_day(day: date, *, skip_weekends: bool, holidays: Collection[date]) -> date:
    """``day`` itself when it is a working day, else the first working day after it."""
    if not skip_weekends:
        return day
    while day.weekday() >= SATURDAY or day in holidays:
        day += timedelta(days=1)
    return day


def add_working_days(
    start: date, days: int, *, skip_weekends: bool, holidays: Collection[date]
) -> date:
    """``start + days`` calendar days, moved to the next working day when ``skip_weekends``."""
    return next_working_day(
        start + timedelta(days=days), skip_weekends=skip_weekends, holidays=holidays
    )


@dataclass(frozen=True)
class WorkCalendar:
    """The company's settings and holidays, loaded once for many due dates."""

    skip_weekends: bool
    holidays: frozenset[date]

    def due(self, start: date, offset_days: int) -> date:
        return add_working_days(
            start, offset_days, skip_weekends=self.skip_weekends, holidays=self.holidays
        )


def load_calendar(since: date | None = None) -> WorkCalendar:
    """The calendar from ``OnboardingSettings`` and the ``Holiday`` table (from ``since`` on)."""
    from kizuna.onboarding.models import Holiday, OnboardingSettings

    holidays = Holiday.objects.all()
    if since is not None:
        holidays = holidays.filter(day__gte=since)
    return WorkCalendar(
        skip_weekends=OnboardingSettings.load().skip_weekends,
        holidays=frozenset(holidays.values_list("day", flat=True)),
    )


def due_date(start: date, offset_days: int) -> date:
    """The due date ``offset_days`` after ``start`` with the company's settings and holidays."""
    return load_calendar(since=start).due(start, offset_days)
