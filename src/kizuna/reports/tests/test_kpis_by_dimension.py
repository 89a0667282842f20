"""KPIs filtered and grouped by segment, touch model, stage and owner as of the period's start."""

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import translation

from kizuna.core.models import User
from kizuna.reports.kpis import (
    GroupBy,
    KpiInputError,
    Population,
    compute_grouped_kpi,
    compute_kpi,
    parse_group_by,
    resolve_population,
    trend,
)
from kizuna.reports.kpis.trend import monthly_totals
from kizuna.reports.kpis.usage import usage_totals_series
from kizuna.reports.tests.contracts_data import set_state
from kizuna.reports.tests.dimension_data import (
    CHANGE_DAY,
    FEBRUARY,
    JANUARY,
    MARCH,
    segment_book,
)
from kizuna.reports.tests.usage_data import march_usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def csms(make_user: Callable[..., User]) -> tuple[User, User]:
    return (
        make_user("adoption_csm", username="csm1", first_name="Aiko", last_name="Sato"),
        make_user("adoption_csm", username="csm2", first_name="Ben", last_name="Kato"),
    )


def counts(kpi_id: str, period: tuple[date, date], **filters: object) -> tuple[object, object]:
    result = compute_kpi(
        kpi_id=kpi_id,
        start=period[0],
        end=period[1],
        population=Population(**filters),  # type: ignore[arg-type]
    )
    return result.numerator, result.denominator


def test_a_segment_filter_reads_the_segment_of_the_periods_first_day(
    csms: tuple[User, User],
) -> None:
    segment_book(*csms)
    # X moved from enterprise to mid-market on 02-10: enterprise in January and in February
    # (read on 02-01), mid-market in March.
    assert counts("logo_churn_rate", JANUARY, segment="enterprise") == (0, 2)
    assert counts("logo_churn_rate", FEBRUARY, segment="enterprise") == (1, 2)
    assert counts("logo_churn_rate", MARCH, segment="enterprise") == (0, 0)
    assert counts("logo_churn_rate", JANUARY, segment="mid-market") == (0, 2)
    assert counts("logo_churn_rate", FEBRUARY, segment="mid-market") == (0, 2)
    assert counts("logo_churn_rate", MARCH, segment="mid-market") == (1, 3)
    # X's whole February (no change in MRR) stays in enterprise: 100 / (100 + 200).
    assert counts("nrr", FEBRUARY, segment="enterprise") == (Decimal("100.00"), Decimal("300.00"))


def test_as_of_overrides_the_day_the_segment_is_read_on(csms: tuple[User, User]) -> None:
    segment_book(*csms)
    after_the_change = date(2026, 2, 15)
    assert counts("logo_churn_rate", FEBRUARY, segment="enterprise", as_of=after_the_change) == (
        1,
        1,
    )
    assert counts("logo_churn_rate", FEBRUARY, segment="mid-market", as_of=after_the_change) == (
        0,
        3,
    )
    # The day before the change X is still enterprise.
    day_before = date(2026, 2, 9)
    assert counts("logo_churn_rate", FEBRUARY, segment="enterprise", as_of=day_before) == (1, 2)


def test_a_trend_reads_each_month_as_of_its_own_first_day(csms: tuple[User, User]) -> None:
    segment_book(*csms)
    enterprise = Population(segment="enterprise")
    points = trend("logo_churn_rate", months=3, end_month=MARCH[0], population=enterprise)
    assert [(p.result.numerator, p.result.denominator) for p in points] == [
        (0, 2),
        (1, 2),
        (0, 0),
    ]
    assert points[2].result.value is None
    mid_market = Population(segment="mid-market")
    points = trend("logo_churn_rate", months=3, end_month=MARCH[0], population=mid_market)
    assert [(p.result.numerator, p.result.denominator) for p in points] == [
        (0, 2),
        (0, 2),
        (1, 3),
    ]
    # The one-statement series equals each month computed on its own.
    for totals, period in zip(
        monthly_totals(months=3, end_month=MARCH[0], population=mid_market),
        (JANUARY, FEBRUARY, MARCH),
        strict=True,
    ):
        assert totals.start == period[0]
        assert (totals.churned_customers, totals.customers_start) == counts(
            "logo_churn_rate", period, segment="mid-market"
        )
    # With as_of every month reads the same day: after 02-10 X is mid-market throughout.
    pinned = Population(segment="mid-market", as_of=date(2026, 2, 15))
    points = trend("logo_churn_rate", months=3, end_month=MARCH[0], population=pinned)
    assert [(p.result.numerator, p.result.denominator) for p in points] == [
        (0, 3),
        (0, 3),
        (1, 3),
    ]


def test_the_owner_filter_is_read_as_of_the_first_day(csms: tuple[User, User]) -> None:
    csm1, csm2 = csms
    segment_book(csm1, csm2)
    # 02-01: csm1 owns X (adoption) and W (adoption); csm2 owns W (onboarding).
    assert counts("logo_churn_rate", FEBRUARY, owner_id=csm1.pk) == (0, 2)
    assert counts("logo_churn_rate", FEBRUARY, owner_id=csm2.pk) == (0, 1)
    # 03-01: X's adoption CSM is csm2 since 02-10.
    assert counts("logo_churn_rate", MARCH, owner_id=csm1.pk) == (0, 1)
    assert counts("logo_churn_rate", MARCH, owner_id=csm2.pk) == (0, 2)


def test_customers_without_history_are_judged_by_their_current_fields(
    csms: tuple[User, User],
) -> None:
    book = segment_book(*csms)
    # As if the lifecycle context had never seen V: no history rows at all.
    book["V"].state_history.all().delete()
    book["V"].__class__.objects.filter(pk=book["V"].pk).update(segment="enterprise")
    assert counts("logo_churn_rate", FEBRUARY, segment="enterprise") == (1, 3)


def test_group_by_segment_gives_each_segment_and_the_groups_add_up_to_the_total(
    csms: tuple[User, User],
) -> None:
    segment_book(*csms)
    with translation.override("en"):
        grouped = compute_grouped_kpi(
            kpi_id="logo_churn_rate",
            start=FEBRUARY[0],
            end=FEBRUARY[1],
            population=Population(),
            group_by=GroupBy.SEGMENT,
        )
    assert grouped.as_of == FEBRUARY[0]
    rows = [
        (group.key, group.label, group.result.numerator, group.result.denominator)
        for group in grouped.groups
    ]
    assert rows == [
        ("enterprise", "Enterprise", 1, 2),
        ("mid-market", "Mid-market", 0, 2),
        ("", "No segment", 0, 1),
    ]
    assert (grouped.total.numerator, grouped.total.denominator) == (1, 5)
    assert grouped.groups[0].result.value == Decimal("0.5")


@pytest.mark.parametrize("group_by", [GroupBy.SEGMENT, GroupBy.STAGE, GroupBy.TOUCH_MODEL])
@pytest.mark.parametrize("kpi_id", ["logo_churn_rate", "mrr_churn_rate", "nrr"])
@pytest.mark.parametrize("period", [JANUARY, FEBRUARY, MARCH])
def test_partitioning_groups_reconcile_with_the_total(
    csms: tuple[User, User], group_by: GroupBy, kpi_id: str, period: tuple[date, date]
) -> None:
    segment_book(*csms)
    grouped = compute_grouped_kpi(
        kpi_id=kpi_id,
        start=period[0],
        end=period[1],
        population=Population(),
        group_by=group_by,
    )
    numerators = [group.result.numerator for group in grouped.groups]
    denominators = [group.result.denominator for group in grouped.groups]
    assert sum(numerators) == grouped.total.numerator  # type: ignore[arg-type]
    assert sum(denominators) == grouped.total.denominator  # type: ignore[arg-type]
    assert not grouped.overlapping


def test_group_by_stage_uses_the_stage_labels(csms: tuple[User, User]) -> None:
    segment_book(*csms)
    with translation.override("en"):
        grouped = compute_grouped_kpi(
            kpi_id="logo_churn_rate",
            start=FEBRUARY[0],
            end=FEBRUARY[1],
            population=Population(),
            group_by=GroupBy.STAGE,
        )
    # Onboarding Y (churned), adoption X Z V, expansion W: in the stages' own order.
    assert [(g.label, g.result.numerator, g.result.denominator) for g in grouped.groups] == [
        ("Onboarding", 1, 1),
        ("Adoption", 0, 3),
        ("Expansion", 0, 1),
    ]


def test_group_by_owner_names_owners_and_may_overlap(csms: tuple[User, User]) -> None:
    csm1, csm2 = csms
    segment_book(csm1, csm2)
    with translation.override("en"):
        grouped = compute_grouped_kpi(
            kpi_id="logo_churn_rate",
            start=FEBRUARY[0],
            end=FEBRUARY[1],
            population=Population(),
            group_by=GroupBy.OWNER,
        )
    rows = [(g.key, g.label, g.result.numerator, g.result.denominator) for g in grouped.groups]
    # By display name; W counts for csm1 (adoption) and csm2 (onboarding).
    assert rows == [
        (str(csm1.pk), csm1.display_name, 0, 2),
        (str(csm2.pk), csm2.display_name, 0, 1),
        ("", "No owner", 1, 3),
    ]
    assert grouped.overlapping
    march = compute_grouped_kpi(
        kpi_id="logo_churn_rate",
        start=MARCH[0],
        end=MARCH[1],
        population=Population(),
        group_by=GroupBy.OWNER,
    )
    assert [(g.key, g.result.denominator) for g in march.groups] == [
        (str(csm1.pk), 1),
        (str(csm2.pk), 2),
        ("", 2),
    ]


def test_a_filter_and_a_breakdown_combine(csms: tuple[User, User]) -> None:
    csm1, csm2 = csms
    segment_book(csm1, csm2)
    grouped = compute_grouped_kpi(
        kpi_id="logo_churn_rate",
        start=MARCH[0],
        end=MARCH[1],
        population=Population(segment="mid-market"),
        group_by=GroupBy.STAGE,
    )
    # Mid-market on 03-01: X (adoption), Z (adoption, churns), W (expansion).
    assert [(g.key, g.result.numerator, g.result.denominator) for g in grouped.groups] == [
        ("adoption", 1, 2),
        ("expansion", 0, 1),
    ]


def test_adoption_kpis_read_the_segment_as_of_each_periods_start() -> None:
    customers = march_usage()
    # E leaves enterprise for smb on 03-10.
    set_state(customers["E"], on=date(2026, 3, 10), segment="smb")
    enterprise = Population(segment="enterprise")
    points = trend("active_rate", months=3, end_month=date(2026, 4, 1), population=enterprise)
    # February (02-01: A D E; active on 03-01 A D E; February logins A D E): 3 / 3.
    # March (03-01: still A D E; active on 04-01 A E; logins A): 1 / 2.
    # April (04-01: A D; active on 05-01 A; A's u4 logs in on 04-01): 1 / 1.
    assert [(p.result.numerator, p.result.denominator) for p in points] == [(3, 3), (1, 2), (1, 1)]
    days = [date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1)]
    series = usage_totals_series(days=days, population=enterprise)
    for k, totals in enumerate(series):
        alone = usage_totals_series(days=days[k : k + 2], population=enterprise)[0]
        assert totals == alone, totals.start
    # Activity churn of March reads 03-01 too: A D E before 03-01, D and E quiet before 04-01.
    march = compute_kpi(
        kpi_id="activity_churn_rate",
        start=date(2026, 3, 1),
        end=date(2026, 4, 1),
        population=enterprise,
    )
    assert (march.numerator, march.denominator) == (2, 3)


def test_bad_group_by_and_as_of_name_their_field() -> None:
    with pytest.raises(KpiInputError) as error:
        parse_group_by("colour")
    assert error.value.field == "group_by"
    assert parse_group_by("") is None
    assert parse_group_by("owner") is GroupBy.OWNER
    with pytest.raises(KpiInputError) as error:
        resolve_population(as_of="2026-02-30")
    assert error.value.field == "as_of"
    assert resolve_population(as_of="2026-02-15").as_of == date(2026, 2, 15)


# The command line


def kpi(*args: str) -> str:
    out = StringIO()
    call_command("kpi", *args, stdout=out)
    return out.getvalue()


FEBRUARY_ARGS = ["--start", "2026-02-01", "--end", "2026-03-01"]


def test_the_command_groups_by_segment_as_json(csms: tuple[User, User]) -> None:
    segment_book(*csms)
    with translation.override("en"):
        payload = json.loads(
            kpi("logo_churn_rate", *FEBRUARY_ARGS, "--group-by", "segment", "--json")
        )
    assert (payload["numerator"], payload["denominator"]) == (1, 5)
    assert payload["group_by"] == "segment"
    assert payload["as_of"] == "2026-02-01"
    assert payload["groups_overlap"] is False
    assert [
        (g["key"], g["label"], g["value"], g["numerator"], g["denominator"])
        for g in payload["groups"]
    ] == [
        ("enterprise", "Enterprise", 0.5, 1, 2),
        ("mid-market", "Mid-market", 0.0, 0, 2),
        ("", "No segment", 0.0, 0, 1),
    ]


def test_the_command_prints_a_row_per_group_and_the_total(csms: tuple[User, User]) -> None:
    segment_book(*csms)
    with translation.override("en"):
        text = kpi(
            "logo_churn_rate",
            *FEBRUARY_ARGS,
            "--group-by",
            "segment",
            "--as-of",
            CHANGE_DAY.isoformat(),
        )
    lines = {line.split("  ")[0].strip(): line.split() for line in text.splitlines()}
    # As of 02-10 X is already mid-market.
    assert lines["Enterprise"][-2:] == ["1", "1"]
    assert "100.00%" in " ".join(lines["Enterprise"])
    assert lines["Mid-market"][-2:] == ["0", "3"]
    assert lines["total"][-2:] == ["1", "5"]
    assert "as of 2026-02-10" in text


def test_the_command_filters_as_of_a_chosen_day(csms: tuple[User, User]) -> None:
    segment_book(*csms)
    args = ["logo_churn_rate", *FEBRUARY_ARGS, "--segment", "enterprise"]
    assert json.loads(kpi(*args, "--json"))["denominator"] == 2
    assert json.loads(kpi(*args, "--json", "--as-of", "2026-02-15"))["denominator"] == 1
    text = kpi(*args, "--as-of", "2026-02-15")
    assert "as of        2026-02-15" in text
    assert "denominator  1" in text


@pytest.mark.parametrize(
    ("option", "value"),
    [("--group-by", "colour"), ("--as-of", "2026-02-30"), ("--as-of", "yesterday")],
)
def test_the_command_refuses_bad_values_naming_the_option(option: str, value: str) -> None:
    with pytest.raises(CommandError) as error:
        kpi("logo_churn_rate", *FEBRUARY_ARGS, option, value)
    assert str(error.value).startswith(f"{option}:")


# The API

FEBRUARY_QUERY = "start=2026-02-01&end=2026-03-01"


def test_the_api_adds_groups_and_keeps_the_total(
    api_client: Callable[..., Client], csms: tuple[User, User]
) -> None:
    csm1, _csm2 = csms
    segment_book(*csms)
    client = api_client("viewer")
    plain = client.get(f"/api/v1/kpis/logo_churn_rate?{FEBRUARY_QUERY}").json()
    assert "groups" not in plain
    response = client.get(f"/api/v1/kpis/logo_churn_rate?{FEBRUARY_QUERY}&group_by=owner")
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in plain} == plain
    assert body["groups_overlap"] is True
    assert body["groups"][0]["key"] == str(csm1.pk)
    assert body["groups"][0]["label"] == csm1.display_name
    assert (body["groups"][0]["numerator"], body["groups"][0]["denominator"]) == (0, 2)
    # The CLI answers the same object.
    assert body == json.loads(
        kpi("logo_churn_rate", *FEBRUARY_ARGS, "--group-by", "owner", "--json")
    )


def test_the_api_takes_as_of_for_filters_and_trends(
    api_client: Callable[..., Client], csms: tuple[User, User]
) -> None:
    segment_book(*csms)
    client = api_client("viewer")
    pinned = client.get(
        f"/api/v1/kpis/logo_churn_rate?{FEBRUARY_QUERY}&segment=enterprise&as_of=2026-02-15"
    ).json()
    assert (pinned["numerator"], pinned["denominator"]) == (1, 1)
    points = client.get(
        "/api/v1/kpis/logo_churn_rate/trend?months=3&end=2026-03&segment=enterprise"
    ).json()["points"]
    assert [(p["numerator"], p["denominator"]) for p in points] == [(0, 2), (1, 2), (0, 0)]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("group_by=colour", "group_by"),
        ("as_of=2026-02-30", "as_of"),
        ("as_of=yesterday", "as_of"),
    ],
)
def test_the_api_refuses_bad_values_naming_the_field(
    api_client: Callable[..., Client], query: str, field: str
) -> None:
    response = api_client("viewer").get(f"/api/v1/kpis/logo_churn_rate?{FEBRUARY_QUERY}&{query}")
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]
