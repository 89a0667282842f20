"""The contract KPI dashboard: cards with numerator/denominator, movements, trend data."""

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.core.models import User
from kizuna.reports.tests.contracts_data import march_book
from kizuna.reports.tests.usage_data import march_usage

pytestmark = pytest.mark.django_db


def _card(html: str, kpi_id: str) -> str:
    match = re.search(rf'data-kpi="{kpi_id}".*?</div>\s*</div>', html, re.S)
    assert match, kpi_id
    return match.group(0)


def test_dashboard_without_subscriptions_shows_the_empty_state(admin_client: Client) -> None:
    response = admin_client.get(reverse("reports:dashboard"))
    assert response.status_code == 200
    assert response.context["no_subscriptions"] is True
    assert reverse("customers:import-upload") in response.content.decode()
    assert "kpi-trend-data" not in response.content.decode()


def test_dashboard_shows_the_chosen_months_kpis_with_numerator_and_denominator(
    admin_client: Client,
) -> None:
    march_book()
    response = admin_client.get(
        reverse("reports:dashboard"), {"month": "2026-03"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    html = response.content.decode()
    assert response.status_code == 200
    churn = _card(html, "logo_churn_rate")
    assert "33.3%" in churn
    assert "2 / 6" in churn
    nrr = _card(html, "nrr")
    assert "66.9%" in nrr
    assert "¥810 / ¥1,210" in nrr
    assert 'data-movement="new_mrr"' in html
    movements = dict(
        re.findall(r'data-movement="(\w+)".*?<td class="num">([^<]+)</td>', html, re.S)
    )
    assert movements == {
        "mrr_start": "¥1,210",
        "new_mrr": "¥570",
        "expansion_mrr": "¥150",
        "reactivation_mrr": "¥90",
        "contraction_mrr": "-¥50",
        "churned_mrr": "-¥500",
        "mrr_end": "¥1,470",
        "net": "¥260",
    }


def test_dashboard_passes_twelve_months_of_trend_to_the_charts(admin_client: Client) -> None:
    march_book()
    response = admin_client.get(reverse("reports:dashboard"), {"month": "2026-03"})
    html = response.content.decode()
    data = json.loads(re.search(r'id="kpi-trend-data"[^>]*>(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert len(data["labels"]) == 12
    assert data["labels"][-1] == "2026-03"
    assert data["rates"][0]["data"][-1] == 33.33
    churn = next(series for series in data["movements"] if series["key"] == "churned_mrr")
    assert churn["data"][-1] == -500.0
    assert "chart-4.6.1.umd.min.js" in html
    assert "kizuna/reports.js" in html
    nonce = response.context["csp_nonce"]
    assert f'src="/static/kizuna/reports.js" nonce="{nonce}"' in html


def test_undefined_rates_show_a_dash(admin_client: Client) -> None:
    march_book()
    html = admin_client.get(reverse("reports:dashboard"), {"month": "2020-01"}).content.decode()
    assert '<div class="value">—</div>' in _card(html, "logo_churn_rate")


def test_filters_narrow_the_dashboard(admin_client: Client, admin_user: User) -> None:
    book = march_book()
    book["B"].segment = "SMB"
    book["B"].expansion_owner = admin_user
    book["B"].save()
    for query in ({"segment": "SMB"}, {"owner": str(admin_user.pk)}):
        html = admin_client.get(
            reverse("reports:dashboard"), {"month": "2026-03", **query}
        ).content.decode()
        assert "1 / 1" in _card(html, "logo_churn_rate"), query


def test_a_bad_month_falls_back_to_the_last_complete_month_with_a_message(
    admin_client: Client,
) -> None:
    march_book()
    response = admin_client.get(reverse("reports:dashboard"), {"month": "March", "owner": "x"})
    assert response.status_code == 200
    assert response.context["form"].errors["month"]
    assert response.context["cards"]


def test_the_dashboard_speaks_japanese_kpi_names(admin_client: Client) -> None:
    march_book()
    admin_client.cookies["kizuna_language"] = "ja"
    html = admin_client.get(reverse("reports:dashboard"), {"month": "2026-03"}).content.decode()
    assert "チャーンレート(顧客数)" in html
    admin_client.cookies["kizuna_language"] = "en"
    html = admin_client.get(reverse("reports:dashboard"), {"month": "2026-03"}).content.decode()
    assert "logo churn rate" in html


def test_viewers_may_see_the_dashboard(client: Client, make_user) -> None:  # type: ignore[no-untyped-def]
    client.force_login(make_user("viewer"))
    assert client.get(reverse("reports:dashboard")).status_code == 200


def test_the_adoption_group_shows_cards_key_features_and_its_trend(admin_client: Client) -> None:
    march_usage()
    response = admin_client.get(
        reverse("reports:dashboard"), {"month": "2026-03"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    html = response.content.decode()
    assert 'id="adoption-heading"' in html
    active = _card(html, "active_rate")
    assert "75.0%" in active
    assert "3 / 4" in active
    assert "5 / 22" in _card(html, "monthly_login_rate")
    assert "mean DAU 0.32 / MAU 5" in _card(html, "stickiness")
    assert "2 / 6" in _card(html, "activity_churn_rate")
    features = dict(
        re.findall(r'data-feature="(\w+)">.*?<td class="num">([^<]+)</td></tr>', html, re.S)
    )
    assert features == {"reports": "66.7%", "export": "33.3%", "share": "33.3%"}
    data = json.loads(re.search(r'id="kpi-trend-data"[^>]*>(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    series = {line["key"]: line["data"] for line in data["adoption"]}
    assert series["active_rate"][-2:] == [80.0, 75.0]
    # Before 02-01 nobody had a login: February's activity churn is a gap, not 0.
    assert series["activity_churn_rate"][-2:] == [None, 33.33]


def test_without_events_the_adoption_group_says_where_they_come_from(
    admin_client: Client,
) -> None:
    march_book()
    response = admin_client.get(reverse("reports:dashboard"), {"month": "2026-03"})
    assert response.context["no_events"] is True
    assert 'data-kpi="active_rate"' not in response.content.decode()
    assert "adoption" not in response.context["chart_data"]
