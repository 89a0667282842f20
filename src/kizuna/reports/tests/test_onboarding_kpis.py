"""The onboarding KPIs in `kizuna kpi` and the API: values, program filter, groups, errors.

Every answer is worked out in ``onboarding_data.march_onboarding``'s docstring; "today" is
pinned to its judging day, 2026-06-01.
"""

import json
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from kizuna.core.models import User
from kizuna.reports.kpis import KPIS, Unit
from kizuna.reports.tests.contracts_data import product
from kizuna.reports.tests.onboarding_data import (
    JUDGED_ON,
    MARCH_ARGS,
    MARCH_QUERY,
    march_onboarding,
    write_logins,
)

pytestmark = pytest.mark.django_db


def kpi(*args: str) -> str:
    out = StringIO()
    call_command("kpi", *args, stdout=out)
    return out.getvalue()


def kpi_json(*args: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(kpi(*args, "--json"))
    return payload


@pytest.fixture
def story(make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: JUDGED_ON)
    csm1 = make_user("onboarding_csm", username="csm1", first_name="Aiko", last_name="Sato")
    csm2 = make_user("onboarding_csm", username="csm2", first_name="Ben", last_name="Kato")
    return {**march_onboarding(csm1, csm2), "csm1": csm1, "csm2": csm2}


@pytest.mark.parametrize(
    ("kpi_id", "value", "numerator", "denominator"),
    [
        # On time A and F of the plans of A B C F G.
        ("onboarding_completion_rate", 0.4, 2, 5),
        # A (day 0) and F (day 3) of A B C D F G; G's login on its day 31 is too late.
        ("initial_usage_rate", 0.333333, 2, 6),
        # First goals achieved by their due date: A and F of A B C F G.
        ("initial_outcome_achievement_rate", 0.4, 2, 5),
        # Days 20, 29, 61: median 29; 3 of the 6 customers reached their first value.
        ("time_to_first_value", 29.0, 3, 6),
        # No single value; the denominator is the plans.
        ("milestone_funnel", None, None, 5),
    ],
)
def test_the_command_and_the_api_give_the_hand_computed_values(
    story: dict[str, Any],
    api_client: Callable[..., Client],
    kpi_id: str,
    value: float | None,
    numerator: int | None,
    denominator: int,
) -> None:
    write_logins()
    payload = kpi_json(kpi_id, *MARCH_ARGS)
    assert (payload["value"], payload["numerator"], payload["denominator"]) == (
        value,
        numerator,
        denominator,
    )
    assert payload["start"] == "2026-03-01"
    assert payload["details"]["as_of"] == "2026-06-01"
    response = api_client("viewer").get(f"/api/v1/kpis/{kpi_id}?{MARCH_QUERY}")
    assert response.status_code == 200
    assert response.json() == payload


def test_the_details_say_what_is_late_open_or_missing(story: dict[str, Any]) -> None:
    completion = kpi_json("onboarding_completion_rate", *MARCH_ARGS)["details"]
    assert completion["completed_late"] == 1  # B
    assert completion["not_completed_past_target"] == 2  # C, G
    assert completion["by_day"] == {
        "30": {"plans": 5, "completed": 0, "rate": 0.0},
        "60": {"plans": 5, "completed": 2, "rate": 0.4},  # A 44 days, F 36
        "90": {"plans": 1, "completed": 1, "rate": 1.0},  # only A started by 03-03
    }
    outcome = kpi_json("initial_outcome_achievement_rate", *MARCH_ARGS)["details"]
    assert (outcome["achieved_late"], outcome["open_before_due_date"]) == (1, 1)  # B; C
    value = kpi_json("time_to_first_value", *MARCH_ARGS)["details"]
    # Onboarding completed after 44 (A), 71 (B) and 36 (F) days.
    assert value["median_days_to_onboarding_completed"] == 44.0
    assert value["not_reached_share"] == 0.5
    usage = kpi_json("initial_usage_rate", *MARCH_ARGS)["details"]
    assert usage["has_usage_data"] is False


def test_the_funnel_compares_the_versions_and_finds_where_plans_stall(
    story: dict[str, Any],
) -> None:
    versions = kpi_json("milestone_funnel", *MARCH_ARGS)["details"]["versions"]
    assert [(v["program"], v["version"], v["plans"], v["completed_plans"]) for v in versions] == [
        ("std", 1, 3, 2),
        ("std", 2, 2, 1),
    ]

    def steps(version: dict[str, Any]) -> list[tuple[object, ...]]:
        return [
            (s["key"], s["completed"], s["median_days"], s["overdue"], s["stalled"])
            for s in version["steps"]
        ]

    # v1: m1 done by A (8 days) and B (15, late), C open past due and stalled there;
    # m2 (optional) done by A (44) and B (71, late), skipped by C.
    assert steps(versions[0]) == [("m1", 2, 11.5, 2, 1), ("m2", 2, 57.5, 1, 0)]
    # v2: k1 by F (1) and G (2); m1 by F (15, late), G open past due and stalled; m2 by F
    # (36), G open past due.
    assert steps(versions[1]) == [
        ("k1", 2, 1.5, 0, 0),
        ("m1", 1, 15.0, 2, 1),
        ("m2", 1, 36.0, 1, 0),
    ]
    assert [v["stall_key"] for v in versions] == ["m1", "m1"]
    assert versions[1]["steps"][1]["overdue_share"] == 1.0
    assert versions[1]["steps"][0]["phase"] == "Start"
    text = kpi("milestone_funnel", *MARCH_ARGS)
    assert "Standard (std) v2: 2 plans, 1 completed, target 45 days" in text
    assert "* m1 Account setup" in text
    assert "m2 Go-live (optional)" in text


def test_the_text_output_names_the_cohort_and_the_judging_day(story: dict[str, Any]) -> None:
    text = kpi("onboarding_completion_rate", *MARCH_ARGS)
    assert "cohort       first start in [2026-03-01, 2026-04-01)" in text
    assert "judged on    2026-06-01" in text
    assert "value        0.400000 (40.00%)" in text
    assert "60: plans=5  completed=2  rate=0.400000 (40.00%)" in text
    assert "value        29.0 days" in kpi("time_to_first_value", *MARCH_ARGS)


@pytest.mark.parametrize(
    ("options", "kpi_id", "expected"),
    [
        (["--program", "std", "--version", "1"], "onboarding_completion_rate", (1, 3)),  # A
        (["--program", "std", "--version", "2"], "onboarding_completion_rate", (1, 2)),  # F
        (["--program", "std", "--version", "2"], "initial_outcome_achievement_rate", (1, 2)),
        # Customers with a plan of the program: A B C F G (not D, whose plan is cancelled).
        (["--program", "std"], "initial_usage_rate", (2, 5)),
        (["--program", "std", "--version", "1"], "time_to_first_value", (2, 3)),  # A, B
    ],
)
def test_a_program_version_narrows_the_cohort(
    story: dict[str, Any],
    api_client: Callable[..., Client],
    options: list[str],
    kpi_id: str,
    expected: tuple[int, int],
) -> None:
    write_logins()
    payload = kpi_json(kpi_id, *MARCH_ARGS, *options)
    assert (payload["numerator"], payload["denominator"]) == expected
    assert payload["details"]["program"] == "std"
    query = "&".join(
        f"{name.lstrip('-')}={value}"
        for name, value in zip(options[::2], options[1::2], strict=True)
    )
    assert api_client("viewer").get(f"/api/v1/kpis/{kpi_id}?{MARCH_QUERY}&{query}").json() == (
        payload
    )


def test_version_one_reads_its_own_median_and_funnel(story: dict[str, Any]) -> None:
    # A after 29 days, B after 61.
    assert kpi_json("time_to_first_value", *MARCH_ARGS, "--program", "std", "--version", "1")[
        "value"
    ] == (45.0)
    funnel = kpi_json("milestone_funnel", *MARCH_ARGS, "--program", "std", "--version", "2")
    assert [v["version"] for v in funnel["details"]["versions"]] == [2]
    assert funnel["denominator"] == 2


def test_group_by_touch_model_reads_the_cohort_start(
    story: dict[str, Any], api_client: Callable[..., Client]
) -> None:
    payload = kpi_json("onboarding_completion_rate", *MARCH_ARGS, "--group-by", "touch_model")
    # On 03-01: high A C (A on time), low B D G (plans B G, none on time), tech F (on time).
    # E (April, high) and H (February, low) are not in the cohort.
    assert payload["as_of"] == "2026-03-01"
    assert [(g["key"], g["numerator"], g["denominator"]) for g in payload["groups"]] == [
        ("high", 1, 2),
        ("low", 0, 2),
        ("tech", 1, 1),
    ]
    assert (payload["numerator"], payload["denominator"]) == (2, 5)
    # Every group is judged on the same day as the total (today), not on the cohort start.
    assert {g["details"]["as_of"] for g in payload["groups"]} == {"2026-06-01"}
    response = api_client("viewer").get(
        f"/api/v1/kpis/onboarding_completion_rate?{MARCH_QUERY}&group_by=touch_model"
    )
    assert response.json() == payload


def test_as_of_reads_the_groups_and_judges_the_plans_on_that_day(story: dict[str, Any]) -> None:
    payload = kpi_json(
        "onboarding_completion_rate", *MARCH_ARGS, "--group-by", "touch_model", "--as-of",
        "2026-03-20",
    )  # fmt: skip
    # B is high from 03-15; on 03-20 no plan of the cohort was completed yet.
    assert [(g["key"], g["numerator"], g["denominator"]) for g in payload["groups"]] == [
        ("high", 0, 3),
        ("low", 0, 1),
        ("tech", 0, 1),
    ]
    # On 04-12: F completed (04-10, on time); A (04-15) not yet; all others within target.
    earlier = kpi_json("onboarding_completion_rate", *MARCH_ARGS, "--as-of", "2026-04-12")
    assert (earlier["numerator"], earlier["denominator"]) == (1, 5)
    assert earlier["details"]["in_progress_within_target"] == 4
    # First values reached by 04-12: F after 20 days, A after 29 (B's comes on 05-10).
    value = kpi_json("time_to_first_value", *MARCH_ARGS, "--as-of", "2026-04-12")
    assert (value["value"], value["numerator"], value["denominator"]) == (24.5, 2, 6)


def test_group_by_owner_on_onboarding_kpis(
    story: dict[str, Any], api_client: Callable[..., Client]
) -> None:
    body = (
        api_client("viewer")
        .get(f"/api/v1/kpis/onboarding_completion_rate?{MARCH_QUERY}&group_by=owner")
        .json()
    )
    # csm1 owns A B (A on time), csm2 F G (F on time); C and D have no owner (C's plan open).
    assert [(g["label"], g["numerator"], g["denominator"]) for g in body["groups"]] == [
        ("Aiko Sato", 1, 2),
        ("Ben Kato", 1, 2),
        (body["groups"][2]["label"], 0, 1),
    ]
    assert body["groups"][2]["key"] == ""
    assert body["groups_overlap"] is True
    owned = kpi_json("onboarding_completion_rate", *MARCH_ARGS, "--owner", "csm2")
    assert (owned["numerator"], owned["denominator"]) == (1, 2)


def test_the_trend_gives_one_point_per_cohort(
    story: dict[str, Any], api_client: Callable[..., Client]
) -> None:
    client = api_client("viewer")
    completion = client.get("/api/v1/kpis/onboarding_completion_rate/trend?months=2&end=2026-03")
    assert completion.status_code == 200
    # February: H on time (1 / 1); March: 2 / 5.
    assert [(p["month"], p["value"], p["numerator"], p["denominator"]) for p in
            completion.json()["points"]] == [("2026-02", 1.0, 1, 1), ("2026-03", 0.4, 2, 5)]  # fmt: skip
    days = client.get("/api/v1/kpis/time_to_first_value/trend?months=2&end=2026-03").json()
    assert days["unit"] == "days"
    # H reached its first goal after 19 days.
    assert [p["value"] for p in days["points"]] == [19.0, 29.0]
    version = client.get(
        "/api/v1/kpis/onboarding_completion_rate/trend?months=2&end=2026-03&program=std&version=1"
    ).json()
    # H is on version 2: February has no plan of version 1.
    assert [(p["value"], p["denominator"]) for p in version["points"]] == [(None, 0), (0.333333, 3)]


def test_the_catalog_lists_the_onboarding_kpis(api_client: Callable[..., Client]) -> None:
    by_id = {entry["id"]: entry for entry in api_client("viewer").get("/api/v1/kpis").json()}
    assert by_id["onboarding_completion_rate"]["unit"] == "rate"
    assert by_id["onboarding_completion_rate"]["name_ja"] == "導入完了率 / オンボーディング完了率"
    assert by_id["time_to_first_value"]["unit"] == "days"
    assert by_id["milestone_funnel"]["unit"] == "funnel"
    assert by_id["milestone_funnel"]["name_ja"] == "つまずきポイント"
    assert KPIS["initial_usage_rate"].unit is Unit.RATE
    assert "initial_outcome_achievement_rate" in kpi("list")


@pytest.mark.parametrize(
    ("kpi_id", "query", "field"),
    [
        ("onboarding_completion_rate", "program=nope", "program"),
        ("onboarding_completion_rate", "program=std&version=9", "version"),
        ("onboarding_completion_rate", "program=std&version=0", "version"),
        ("onboarding_completion_rate", "program=std&version=first", "version"),
        ("onboarding_completion_rate", "version=1", "program"),
        ("milestone_funnel", "program=std&version=3", "version"),
        ("onboarding_completion_rate", "product=p1", "product"),
        ("nrr", "program=std", "program"),
        ("active_rate", "version=1", "version"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    story: dict[str, Any], api_client: Callable[..., Client], kpi_id: str, query: str, field: str
) -> None:
    product("p1")  # a product that exists: the onboarding KPIs refuse it all the same
    response = api_client("viewer").get(f"/api/v1/kpis/{kpi_id}?{MARCH_QUERY}&{query}")
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]
    trend = api_client("viewer").get(f"/api/v1/kpis/{kpi_id}/trend?{query}")
    assert trend.status_code == 422
    assert [error["loc"][-1] for error in trend.json()["detail"]] == [field]


def test_an_empty_cohort_period_is_422_naming_the_end(
    story: dict[str, Any], api_client: Callable[..., Client]
) -> None:
    response = api_client("viewer").get(
        "/api/v1/kpis/onboarding_completion_rate?start=2026-03-01&end=2026-03-01"
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "end"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["onboarding_completion_rate", "--program", "nope"], "--program"),
        (["onboarding_completion_rate", "--program", "std", "--version", "9"], "--version"),
        (["onboarding_completion_rate", "--program", "std", "--version", "x"], "--version"),
        (["onboarding_completion_rate", "--version", "1"], "--program"),
        (["time_to_first_value", "--product", "p1"], "--product"),
        (["grr", "--program", "std"], "--program"),
        (["stickiness", "--version", "2"], "--version"),
    ],
)
def test_the_command_refuses_bad_values_naming_the_option(
    story: dict[str, Any], args: list[str], named: str
) -> None:
    product("p1")
    with pytest.raises(CommandError) as error:
        kpi(*args, *MARCH_ARGS)
    assert str(error.value).startswith(f"{named}:")
