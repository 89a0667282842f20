"""``kizuna health run|backfill|train|explain|signals``: results in text and JSON, and errors
that name the option. Data: ``ui_helpers.portfolio``."""

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kizuna.core.roles import Role
from kizuna.health.models import HealthScore
from kizuna.health.tests.ui_helpers import Portfolio, portfolio

pytestmark = pytest.mark.django_db


@pytest.fixture
def data() -> Portfolio:
    return portfolio()


def health(*args: str) -> str:
    out = StringIO()
    with translation.override("en"):
        call_command("health", *args, stdout=out)
    return out.getvalue()


def test_explain_says_why_the_score_fell_in_text_and_json(data: Portfolio) -> None:
    text = health("explain", "Acme")
    body: dict[str, Any] = json.loads(health("explain", str(data.acme.pk), "--json"))

    assert text.splitlines()[0].startswith(f"Acme: 24 (at_risk) on {data.today}, Test; 68 on")
    assert "(-44)" in text.splitlines()[0]
    assert (body["score"], body["band"], body["missing_weight"]) == (24.0, "at_risk", 0.25)
    assert body["lines"][0]["key"] == "usage_trend"
    assert body["lines"][0]["text"] in text


def test_explain_of_an_earlier_day_and_of_an_unknown_customer(data: Portfolio) -> None:
    body = json.loads(health("explain", "Acme", "--day", data.earlier.isoformat(), "--json"))

    assert (body["day"], body["band"]) == (data.earlier.isoformat(), "watch")
    with pytest.raises(CommandError, match="CUSTOMER: no customer"):
        health("explain", "Nobody")
    with pytest.raises(CommandError, match="--day: 'soon' is not a date"):
        health("explain", "Acme", "--day", "soon")


def test_signals_lists_open_ones_with_their_reason(data: Portfolio) -> None:
    rows = json.loads(health("signals", "--open", "--json"))
    every = json.loads(health("signals", "--json"))
    text = health("signals", "--open")

    assert [(r["customer_name"], r["kind"]) for r in rows] == [("Acme", "usage_drop")]
    assert rows[0]["reason"].startswith("Events (28 days) fell 35% (from 1,200 to 780)")
    assert sorted(r["kind"] for r in every) == ["no_login", "usage_drop"]
    assert "(open) high   usage_drop" in text


def test_backfill_scores_every_day_of_the_range(data: Portfolio) -> None:
    body = json.loads(
        health(
            "backfill",
            "--start",
            data.earlier.isoformat(),
            "--end",
            data.today.isoformat(),
            "--only",
            "scores",
            "--json",
        )
    )

    assert body["scores"]["days"] == 29
    assert "signals" not in body
    # The two days with metric files score as before (backfill = the daily run).
    today = HealthScore.objects.get(customer=data.acme, day=data.today)
    assert (today.score, today.band) == (24.0, "at_risk")


def test_backfill_and_train_refuse_bad_options_naming_them(data: Portfolio) -> None:
    with pytest.raises(CommandError, match="--start: required"):
        health("backfill", "--end", "2026-01-31")
    with pytest.raises(CommandError, match="--end: must not be before --start"):
        health("backfill", "--start", "2026-02-01", "--end", "2026-01-31")
    with pytest.raises(CommandError, match="--scorecard: no scorecard with id 999"):
        health("backfill", "--start", "2026-01-01", "--end", "2026-01-31", "--scorecard", "999")
    with pytest.raises(CommandError, match="--horizon: 'soon' is not a number"):
        health("train", "--horizon", "soon")
    with pytest.raises(CommandError, match="--start: not an option of `health run`"):
        health("run", "--start", "2026-01-01")


def test_train_with_too_little_history_is_a_clear_error(data: Portfolio) -> None:
    with pytest.raises(CommandError, match="could not be trained"):
        health("train", "--as-of", data.today.isoformat())


def test_train_acts_as_a_user_only_with_manage_health(data: Portfolio, make_user: Any) -> None:
    make_user(Role.ADOPTION_CSM, username="aiko")

    with pytest.raises(CommandError, match="--user: 'aiko'"):
        health("train", "--user", "aiko")


def test_run_does_the_daily_job_and_reports_it(data: Portfolio) -> None:
    body = json.loads(health("run", "--as-of", data.today.isoformat(), "--json"))

    assert body["as_of"] == data.today.isoformat()
    assert body["scored"] == 2
    assert set(body["signals"]) >= {"opened", "kept", "closed"}
    assert "Health " in health("run", "--as-of", data.today.isoformat())
