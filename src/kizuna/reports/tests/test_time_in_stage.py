"""Time in stage: days per lifecycle stage from stage history, worked out by hand."""

from collections.abc import Callable
from datetime import date

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.customers.models import Customer
from kizuna.reports.kpis import KpiInputError
from kizuna.reports.tests.contracts_data import customer, set_state
from kizuna.reports.time_in_stage import StageTime, time_in_stage

pytestmark = pytest.mark.django_db

TODAY = date(2026, 6, 30)


def stage_book() -> dict[str, Customer]:
    """Stage history (valid_from empty = since the first start date), today 2026-06-30.

    customer  first start  segment     touch  stays
    P         2026-01-01   enterprise  high   onboarding → 01-31 (30 days); adoption 01-31 → now (150)
    Q         2026-03-01   enterprise  high   onboarding → 03-11 (10); adoption 03-11 → 05-01 (51);
                                              expansion 05-01 → now (60)
    R         2026-02-01   smb         high   onboarding → 04-02 (60); adoption 04-02 → now (89)
    S         —            smb         high   onboarding since the beginning: start unknown
    T         2026-06-20   smb         tech   onboarding 06-20 → now (10)

    onboarding: customers P Q R T = 4; completed 30 10 60 → median 30, mean 33.3;
                current T 10.
    adoption:   customers P Q R = 3; completed Q 51; current P 150, R 89 → median and mean 119.5.
    expansion:  customers Q = 1; current 60.
    """
    book = {
        "P": customer("P", first_start_date=date(2026, 1, 1), segment="enterprise"),
        "Q": customer("Q", first_start_date=date(2026, 3, 1), segment="enterprise"),
        "R": customer("R", first_start_date=date(2026, 2, 1), segment="smb"),
        "S": customer("S", segment="smb"),
        "T": customer("T", first_start_date=date(2026, 6, 20), segment="smb", touch_model="tech"),
    }
    set_state(book["P"], on=date(2026, 1, 31), lifecycle_stage="adoption")
    set_state(book["Q"], on=date(2026, 3, 11), lifecycle_stage="adoption")
    set_state(book["Q"], on=date(2026, 5, 1), lifecycle_stage="expansion")
    set_state(book["R"], on=date(2026, 4, 2), lifecycle_stage="adoption")
    return book


def by_stage(**filters: str) -> dict[str, StageTime]:
    report = time_in_stage(today=TODAY, **filters)
    return {stage.stage: stage for stage in report.stages}


def test_medians_and_means_of_completed_and_current_stays() -> None:
    stage_book()
    report = time_in_stage(today=TODAY)
    stages = {stage.stage: stage for stage in report.stages}
    assert [stage.stage for stage in report.stages][:3] == ["onboarding", "adoption", "expansion"]
    onboarding = stages["onboarding"]
    assert onboarding.customers == 4
    assert (onboarding.completed.count, onboarding.completed.median_days) == (3, 30.0)
    assert onboarding.completed.mean_days == 33.3
    assert (onboarding.current.count, onboarding.current.median_days) == (1, 10.0)
    adoption = stages["adoption"]
    assert adoption.customers == 3
    assert (adoption.completed.count, adoption.completed.median_days) == (1, 51.0)
    assert (adoption.current.count, adoption.current.median_days) == (2, 119.5)
    assert adoption.current.mean_days == 119.5
    expansion = stages["expansion"]
    assert (expansion.customers, expansion.current.median_days) == (1, 60.0)
    assert expansion.completed.median_days is None
    churned = stages["churned"]
    assert (churned.customers, churned.current.count, churned.current.mean_days) == (0, 0, None)
    # S has been onboarding "since the beginning" and has no first start date.
    assert report.unknown_start == 1


def test_segment_touch_model_and_cohort_filters() -> None:
    stage_book()
    enterprise = by_stage(segment="enterprise")
    # P 30 and Q 10.
    assert enterprise["onboarding"].completed.median_days == 20.0
    assert enterprise["onboarding"].current.count == 0
    tech = by_stage(touch_model="tech")
    assert tech["onboarding"].current.median_days == 10.0
    assert tech["adoption"].customers == 0
    february = by_stage(cohort="2026-02")
    assert february["onboarding"].completed.median_days == 60.0
    assert february["adoption"].current.median_days == 89.0


@pytest.mark.parametrize(
    ("filters", "field"), [({"touch_model": "warm"}, "touch_model"), ({"cohort": "2026"}, "cohort")]
)
def test_bad_filters_name_their_field(filters: dict[str, str], field: str) -> None:
    with pytest.raises(KpiInputError) as error:
        time_in_stage(today=TODAY, **filters)
    assert error.value.field == field


def test_the_api_answers_the_report(api_client: Callable[..., Client]) -> None:
    stage_book()
    client = api_client("viewer")
    response = client.get("/api/v1/kpis/time-in-stage?segment=enterprise")
    assert response.status_code == 200
    body = response.json()
    onboarding = next(stage for stage in body["stages"] if stage["stage"] == "onboarding")
    # Completed stays do not depend on today.
    assert onboarding["completed"] == {"count": 2, "median_days": 20.0, "mean_days": 20.0}
    assert onboarding["customers"] == 2
    assert body["filters"]["segment"] == "enterprise"
    refused = client.get("/api/v1/kpis/time-in-stage?cohort=March")
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"][-1] == "cohort"


def test_the_page_shows_a_row_per_stage_and_is_in_the_reports_tabs(
    admin_client: Client,
) -> None:
    stage_book()
    response = admin_client.get(
        reverse("reports:time-in-stage"), {"segment": "enterprise"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-stage="onboarding"' in html
    assert '<td class="num" data-median="completed">20.0</td>' in html
    assert f'href="{reverse("reports:time-in-stage")}"' in html
    dashboard = admin_client.get(reverse("reports:dashboard")).content.decode()
    assert f'href="{reverse("reports:time-in-stage")}"' in dashboard


def test_a_bad_cohort_on_the_page_is_an_inline_error(admin_client: Client) -> None:
    response = admin_client.get(reverse("reports:time-in-stage"), {"cohort": "March"})
    assert response.status_code == 200
    assert response.context["form"].errors["cohort"]
    assert "report" not in response.context


def test_viewers_may_see_the_page(client: Client, make_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(make_user("viewer"))
    assert client.get(reverse("reports:time-in-stage")).status_code == 200
