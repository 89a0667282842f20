"""Due dates: calendar-day offsets, moved forward past weekends and holidays when configured."""

from datetime import date

import pytest

from kizuna.onboarding.calendar import add_working_days, due_date
from kizuna.onboarding.models import Holiday, OnboardingSettings

FRIDAY = date(2026, 11, 6)
NO_HOLIDAYS: frozenset[date] = frozenset()


def test_an_offset_landing_on_a_weekday_is_kept() -> None:
    monday = date(2026, 11, 2)
    assert add_working_days(monday, 3, skip_weekends=True, holidays=NO_HOLIDAYS) == date(
        2026, 11, 5
    )


def test_friday_plus_one_moves_to_monday_when_weekends_are_skipped() -> None:
    assert add_working_days(FRIDAY, 1, skip_weekends=True, holidays=NO_HOLIDAYS) == date(
        2026, 11, 9
    )
    # Sunday moves one day, to the same Monday.
    assert add_working_days(FRIDAY, 2, skip_weekends=True, holidays=NO_HOLIDAYS) == date(
        2026, 11, 9
    )


def test_friday_plus_one_is_saturday_when_weekends_count() -> None:
    assert add_working_days(FRIDAY, 1, skip_weekends=False, holidays=NO_HOLIDAYS) == date(
        2026, 11, 7
    )


def test_offsets_are_calendar_days_not_working_days() -> None:
    # Ten calendar days from Friday is a Monday, not two working weeks later.
    assert add_working_days(FRIDAY, 10, skip_weekends=True, holidays=NO_HOLIDAYS) == date(
        2026, 11, 16
    )


def test_a_holiday_on_monday_moves_a_weekend_due_date_to_tuesday() -> None:
    # 2026-11-23 (Monday) is Labour Thanksgiving Day.
    holidays = {date(2026, 11, 23)}
    friday = date(2026, 11, 20)
    assert add_working_days(friday, 1, skip_weekends=True, holidays=holidays) == date(2026, 11, 24)
    assert add_working_days(friday, 3, skip_weekends=True, holidays=holidays) == date(2026, 11, 24)


def test_a_run_of_holidays_is_skipped_to_the_first_working_day() -> None:
    # Golden Week 2026: Sunday 3 May to Wednesday 6 May (substitute holiday) are off.
    holidays = {date(2026, 5, 3), date(2026, 5, 4), date(2026, 5, 5), date(2026, 5, 6)}
    thursday = date(2026, 4, 30)
    assert add_working_days(thursday, 3, skip_weekends=True, holidays=holidays) == date(2026, 5, 7)


def test_holidays_are_ignored_when_weekends_are_not_skipped() -> None:
    holidays = {date(2026, 11, 23)}
    assert add_working_days(date(2026, 11, 20), 3, skip_weekends=False, holidays=holidays) == date(
        2026, 11, 23
    )


@pytest.mark.django_db
def test_due_date_reads_the_settings_and_the_holiday_table() -> None:
    Holiday.objects.create(day=date(2026, 11, 23), name="勤労感謝の日")
    friday = date(2026, 11, 20)
    assert due_date(friday, 3) == date(2026, 11, 24)
    settings = OnboardingSettings.load()
    settings.skip_weekends = False
    settings.save()
    assert due_date(friday, 3) == date(2026, 11, 23)
    assert due_date(friday, 1) == date(2026, 11, 21)
