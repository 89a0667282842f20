"""Reports → Onboarding: cards with numerator/denominator, day 30/60/90, the funnel per version
with the stall highlighted, 12 cohorts, filters, errors and empty states.

The data and answers are those of ``onboarding_data.march_onboarding``; today is 2026-06-01,
so the page opens on the March 2026 cohort (three months back).
"""

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import User
from kizuna.reports.charts import line_chart
from kizuna.reports.onboarding_report import default_cohort
from kizuna.reports.tests.contracts_data import subscribe
from kizuna.reports.tests.onboarding_data import JUDGED_ON, march_onboarding

pytestmark = pytest.mark.django_db


@pytest.fixture
def story(make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: JUDGED_ON)
    csm1 = make_user("onboarding_csm", username="csm1")
    csm2 = make_user("onboarding_csm", username="csm2")
    return {**march_onboarding(csm1, csm2), "csm1": csm1, "csm2": csm2}


def page(client: Client, **query: str) -> str:
    response = client.get(reverse("reports:onboarding"), query, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    return response.content.decode()


def card(html: str, kpi_id: str) -> str:
    match = re.search(rf'data-kpi="{kpi_id}".*?</div>\s*</div>', html, re.S)
    assert match, kpi_id
    return match.group(0)


def section(html: str, attribute: str) -> str:
    match = re.search(rf"<section[^>]*{attribute}.*?</section>", html, re.S)
    assert match, attribute
    return match.group(0)


def row(html: str, attribute: str) -> str:
    match = re.search(rf"<tr[^>]*{attribute}.*?</tr>", html, re.S)
    assert match, attribute
    return match.group(0)


def test_the_page_opens_on_the_cohort_of_three_months_ago(
    story: dict[str, Any], admin_client: Client
) -> None:
    assert default_cohort(date(2026, 6, 1)) == date(2026, 3, 1)
    assert default_cohort(date(2026, 2, 15)) == date(2025, 11, 1)
    html = page(admin_client)
    assert 'name="cohort" id="id_cohort" value="2026-03"' in html
    assert "three months ago" in html


def test_the_cards_show_each_kpi_with_numerator_and_denominator(
    story: dict[str, Any], admin_client: Client
) -> None:
    html = page(admin_client, cohort="2026-03")
    completion = card(html, "onboarding_completion_rate")
    assert "40.0%" in completion
    assert "2 / 5" in completion
    assert "1 completed late, 0 within their target days, 2 not completed past it" in completion
    usage = card(html, "initial_usage_rate")
    assert "0 / 6" in usage
    assert "There are no product usage events yet." in usage
    assert "2 / 5" in card(html, "initial_outcome_achievement_rate")
    ttfv = card(html, "time_to_first_value")
    assert "29 days" in ttfv
    assert "3 / 6" in ttfv
    assert "median 44 days" in ttfv
    # Completed by day 30, 60, 90: 0 / 5, 2 / 5, 1 / 1 — as bars and as a table.
    by_day = section(html, 'aria-labelledby="by-day-heading"')
    assert re.search(r'data-day="60">.*?>2</td>.*?>5</td>.*?40\.0%', by_day, re.S)
    assert re.search(r'data-day="90">.*?>1</td>.*?>1</td>.*?100\.0%', by_day, re.S)
    assert 'data-bar="60"' in by_day
    assert re.search(r'data-outcome="late">.*?>1</td>', html, re.S)


def test_the_funnel_shows_each_version_and_highlights_the_stall(
    story: dict[str, Any], admin_client: Client
) -> None:
    html = page(admin_client, cohort="2026-03")
    v1 = section(html, 'data-funnel="std-v1"')
    v2 = section(html, 'data-funnel="std-v2"')
    assert "3 plans, 2 completed; target 60 days" in v1
    m1 = row(v1, 'data-step="m1"')
    assert "data-stall" in m1
    assert "Most plans stall here" in m1
    assert "66.7%" in m1
    assert "11.5 days" in m1
    assert "data-stall" not in row(v1, 'data-step="m2"')
    assert "(optional)" in row(v1, 'data-step="m2"')
    kickoff = row(v2, 'data-step="k1"')
    assert 'width="100.0"' in kickoff  # the completed share bar: 2 of 2
    assert "1.5 days" in kickoff
    assert "0.0%" in kickoff
    setup = row(v2, 'data-step="m1"')
    assert "data-stall" in setup
    assert 'width="50.0"' in setup
    assert "100.0%" in setup  # overdue: F late, G open past due


def test_the_trend_charts_the_last_twelve_cohorts(
    story: dict[str, Any], admin_client: Client
) -> None:
    html = page(admin_client, cohort="2026-03")
    cohorts = re.findall(r'data-cohort="([\d-]+)"', html)
    assert len(cohorts) == 12
    assert (cohorts[0], cohorts[-1]) == ("2025-04", "2026-03")
    assert re.search(r'data-cohort="2026-02">.*?100\.0%.*?19 days.*?1 / 1', html, re.S)
    points = re.findall(r'data-point="([\d-]+)"><title>[^<]*</title>', html)
    # Two points per chart (February and March); the other cohorts have no plan: gaps.
    assert points == ["2026-02", "2026-03", "2026-02", "2026-03"]
    assert "<title>2026-03: 40.0%</title>" in html
    assert "<title>2026-03: 29 days</title>" in html


def test_a_line_chart_breaks_at_undefined_values() -> None:
    chart = line_chart(
        ["01", "02", "03", "04"], [50.0, None, 100.0, 0.0], shown=["a", "b", "c", "d"], top=100.0
    )
    assert len(chart["lines"]) == 2  # 01 alone, then 03–04
    assert [point["label"] for point in chart["points"]] == ["01", "03", "04"]
    top, zero = chart["points"][1]["y"], chart["points"][2]["y"]
    assert float(top) < float(chart["points"][0]["y"]) < float(zero)
    assert [tick["label"] for tick in line_chart(["x"], [37.0], shown=["x"])["ticks"]] == [
        "0",
        "25",
        "50",
    ]


def test_filters_narrow_the_cohort(story: dict[str, Any], admin_client: Client) -> None:
    version = page(admin_client, cohort="2026-03", program="std", version="2")
    assert "1 / 2" in card(version, "onboarding_completion_rate")  # F of F G
    assert 'data-funnel="std-v2"' in version
    assert 'data-funnel="std-v1"' not in version
    tech = page(admin_client, cohort="2026-03", touch_model="tech")
    assert "1 / 1" in card(tech, "onboarding_completion_rate")  # F
    owner = page(admin_client, cohort="2026-03", owner=str(story["csm1"].pk))
    assert "1 / 2" in card(owner, "onboarding_completion_rate")  # A of A B
    assert 'data-funnel="std-v2"' not in owner


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"program": "std", "version": "9"}, "version"),
        ({"program": "std", "version": "two"}, "version"),
        ({"version": "1"}, "program"),
        ({"program": "nope"}, "program"),
    ],
)
def test_a_bad_program_or_version_is_an_error_naming_the_field(
    story: dict[str, Any], admin_client: Client, query: dict[str, str], field: str
) -> None:
    html = page(admin_client, cohort="2026-03", **query)
    assert re.findall(r'data-error="(\w+)"', html) == [field]
    assert "data-kpi=" not in html


def test_a_bad_month_falls_back_to_the_default_with_an_error(
    story: dict[str, Any], admin_client: Client
) -> None:
    html = page(admin_client, cohort="March")
    assert re.findall(r'data-error="(\w+)"', html) == ["cohort"]
    assert 'value="2026-03"' in html
    assert "2 / 5" in card(html, "onboarding_completion_rate")


def test_empty_states(story: dict[str, Any], admin_client: Client) -> None:
    html = page(admin_client, cohort="2025-01")
    assert 'data-empty="cohort"' in html
    assert "0 / 0" in card(html, "onboarding_completion_rate")
    assert "data-funnel" not in html


def test_without_any_plan_the_page_says_where_plans_come_from(admin_client: Client) -> None:
    html = page(admin_client)
    assert 'data-empty="no-plans"' in html
    assert reverse("onboarding:programs") in html


def test_the_page_speaks_japanese_and_is_in_the_reports_tabs(
    story: dict[str, Any], admin_client: Client
) -> None:
    admin_client.cookies["kizuna_language"] = "ja"
    html = admin_client.get(reverse("reports:onboarding"), {"cohort": "2026-03"}).content.decode()
    assert "導入完了率 / オンボーディング完了率" in html
    assert "初期成果到達日数" in html
    tabs = admin_client.get(reverse("reports:dashboard")).content.decode()
    assert reverse("reports:onboarding") in tabs


def test_viewers_may_see_the_onboarding_report(
    story: dict[str, Any], client: Client, make_user: Callable[..., User]
) -> None:
    client.force_login(make_user("viewer"))
    assert client.get(reverse("reports:onboarding")).status_code == 200


def test_the_dashboard_breaks_an_onboarding_kpi_down_in_days(
    story: dict[str, Any], admin_client: Client
) -> None:
    subscribe(story["customers"]["A"], "2026-03-02", None, 100)
    html = admin_client.get(
        reverse("reports:dashboard"),
        {"month": "2026-03", "group_by": "touch_model", "breakdown": "time_to_first_value"},
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()
    # high A (29 days; C none), low B (61; D, G none), tech F (20); total 29.
    assert re.search(r'data-group="high">.*?29 days.*?>1</td>.*?>2</td>', html, re.S)
    assert re.search(r'data-group="low">.*?61 days', html, re.S)
    assert re.search(r'data-group="tech">.*?20 days', html, re.S)
    assert 'value="milestone_funnel"' not in html  # no single value to break down
