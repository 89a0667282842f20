"""The contract KPI dashboard: cards with numerator/denominator, movements, trend data."""

import json
import re
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.core.models import User
from kizuna.reports.tests.contracts_data import march_book, set_state
from kizuna.reports.tests.dimension_data import segment_book
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
    set_state(book["B"], segment="SMB", expansion_owner=admin_user)
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


def test_group_by_shows_the_breakdown_as_a_table_and_bars(
    admin_client: Client, make_user: Callable[..., User]
) -> None:
    segment_book(
        make_user("adoption_csm", username="csm1"), make_user("adoption_csm", username="csm2")
    )
    response = admin_client.get(
        reverse("reports:dashboard"),
        {"month": "2026-02", "group_by": "segment", "breakdown": "logo_churn_rate"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    html = response.content.decode()
    rows = re.findall(
        r'<tr data-group="([\w-]*)"><td>([^<]+)</td><td class="num">([^<]+)</td>'
        r'<td class="num">([^<]+)</td><td class="num">([^<]+)</td>',
        html,
    )
    # X moved to mid-market on 02-10: February reads 02-01, X is enterprise.
    assert rows == [
        ("enterprise", "Enterprise", "50.0%", "1", "2"),
        ("mid-market", "Mid-market", "0.0%", "0", "2"),
        ("", "No segment", "0.0%", "0", "1"),
    ]
    total = re.search(r"<tr data-group-total.*?</tr>", html, re.S)
    assert total
    assert re.findall(r'<td class="num">([^<]+)</td>', total.group(0)) == ["20.0%", "1", "5"]
    bars = dict(re.findall(r'<g data-bar="([\w-]*)">.*?<rect [^>]*width="([\d.]+)"', html, re.S))
    # 50 % is the widest bar; 0 % bars have no width.
    assert float(bars["enterprise"]) > 0
    assert float(bars["mid-market"]) == 0.0
    assert "data-total-line" in html
    # March by owner: a KPI chosen from the catalog, owners by name.
    march = admin_client.get(
        reverse("reports:dashboard"),
        {"month": "2026-03", "group_by": "owner", "breakdown": "nrr"},
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()
    owners = re.findall(r'<tr data-group="(\d*)"><td>([^<]+)</td>', march)
    # csm1 keeps W; the other CSM has X (since 02-10) and W; Z and V have no owner.
    assert [label for _key, label in owners] == ["csm1", "csm2", "No owner"]
    assert "can add up to more than the total" in march


def test_without_group_by_there_is_no_breakdown(admin_client: Client) -> None:
    march_book()
    response = admin_client.get(reverse("reports:dashboard"), {"month": "2026-03"})
    assert "breakdown" not in response.context
    assert "data-breakdown" not in response.content.decode()


def test_the_stage_filter_narrows_the_dashboard(admin_client: Client) -> None:
    book = march_book()
    set_state(book["B"], lifecycle_stage="expansion")
    html = admin_client.get(
        reverse("reports:dashboard"), {"month": "2026-03", "stage": "expansion"}
    ).content.decode()
    assert "1 / 1" in _card(html, "logo_churn_rate")
