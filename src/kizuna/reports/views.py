"""Report pages: the KPI dashboard (contract KPIs, and adoption KPIs from product events)."""

from datetime import date
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from kizuna.core.access import requires
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.selectors import segments
from kizuna.customers.templatetags.customer_tags import money
from kizuna.reports import selectors
from kizuna.reports.forms import DashboardFilterForm
from kizuna.reports.kpis import KPIS, AnyKpi, KpiInputError, KpiResult, Unit, last_complete_month
from kizuna.reports.kpis.population import Population
from kizuna.reports.kpis.results import Number

UNDEFINED = "—"


def kpi_name(definition: AnyKpi) -> str:
    """The KPI's name in the user's language."""
    return definition.name_ja if (get_language() or "").startswith("ja") else definition.name_en


def show_rate(value: Decimal | None) -> str:
    return UNDEFINED if value is None else f"{value * 100:.1f}%"


def show_amount(value: Number | None, *, money_unit: bool) -> str:
    if value is None:
        return UNDEFINED
    return money(value) if money_unit else f"{value:,}"


def _percent(value: Decimal | None) -> float | None:
    return None if value is None else round(float(value) * 100, 2)


@require_GET
@requires(Capability.VIEW)
def dashboard(request: HttpRequest) -> HttpResponse:
    owners = list(User.objects.filter(is_active=True).order_by("username"))
    form = DashboardFilterForm(request.GET, segments=segments(), owners=owners)
    default_month = last_complete_month()
    month = form.month_or(default_month)
    context: dict[str, Any] = {
        "area": "reports",
        "form": form,
        "month": month.strftime("%Y-%m"),
        "filtered": any(request.GET.get(key) for key in ("segment", "touch_model", "owner")),
    }
    if not selectors.has_subscriptions():
        return render(request, "reports/dashboard.html", {**context, "no_subscriptions": True})
    population = form.population()
    try:
        board = selectors.contract_dashboard(month=month, population=population)
        adoption = _adoption_context(month, population)
    except KpiInputError as exc:
        return render(request, "reports/dashboard.html", {**context, "kpi_error": str(exc)})
    details = board.movements.details
    context["cards"] = [
        {
            "id": definition.id,
            "name": kpi_name(definition),
            "description": definition.description,
            "value": show_rate(result.value),
            "numerator": show_amount(result.numerator, money_unit=_is_money(definition.id)),
            "denominator": show_amount(result.denominator, money_unit=_is_money(definition.id)),
            "annual": show_rate(result.details.get("annual_equivalent"))
            if definition.id == "monthly_equivalent_churn"
            else None,
        }
        for definition, result in board.cards
        if definition.unit is Unit.RATE
    ]
    context["period"] = (board.movements.start, board.movements.end)
    context["movements"] = [
        ("mrr_start", _("MRR at start"), money(details["mrr_start"])),
        ("new_mrr", _("New"), money(details["new_mrr"])),
        ("expansion_mrr", _("Expansion"), money(details["expansion_mrr"])),
        ("reactivation_mrr", _("Reactivation"), money(details["reactivation_mrr"])),
        ("contraction_mrr", _("Contraction"), money(-details["contraction_mrr"])),
        ("churned_mrr", _("Churn"), money(-details["churned_mrr"])),
        ("mrr_end", _("MRR at end"), money(details["mrr_end"])),
    ]
    context["net_change"] = money(board.movements.value)
    context["trend_rows"] = [
        {
            "month": point.month,
            "rates": [show_rate(point.results[kpi_id].value) for kpi_id in selectors.TREND_KPIS],
            "mrr_end": money(point.results["mrr_movements"].details["mrr_end"]),
        }
        for point in board.months
    ]
    context["trend_names"] = [kpi_name(KPIS[kpi_id]) for kpi_id in selectors.TREND_KPIS]
    context["chart_data"] = {
        "labels": [point.month for point in board.months],
        "rates": [
            {
                "label": kpi_name(KPIS[kpi_id]),
                "data": [_percent(point.results[kpi_id].value) for point in board.months],
            }
            for kpi_id in selectors.TREND_KPIS
        ],
        "movements": [
            {
                "key": key,
                "label": label,
                "data": [
                    float(sign * point.results["mrr_movements"].details[key])
                    for point in board.months
                ],
            }
            for key, label, sign in (
                ("new_mrr", _("New"), 1),
                ("expansion_mrr", _("Expansion"), 1),
                ("reactivation_mrr", _("Reactivation"), 1),
                ("contraction_mrr", _("Contraction"), -1),
                ("churned_mrr", _("Churn"), -1),
            )
        ],
        "currency": str(details["currency"]),
    }
    context.update(adoption)
    if "adoption_rates" in adoption:
        context["chart_data"]["adoption"] = adoption["adoption_rates"]
    return render(request, "reports/dashboard.html", context)


def _adoption_context(month: date, population: Population) -> dict[str, Any]:
    """The adoption section: cards, the key-feature table and the monthly series."""
    if not selectors.has_events():
        return {"no_events": True}
    board = selectors.adoption_dashboard(month=month, population=population)
    current = board.months[-1].results
    trend_ids = selectors.ADOPTION_CARD_KPIS
    return {
        "adoption_cards": [
            {
                "id": definition.id,
                "name": kpi_name(definition),
                "description": definition.description,
                "value": show_rate(result.value),
                "numerator": show_amount(result.numerator, money_unit=False),
                "denominator": show_amount(result.denominator, money_unit=False),
                "note": _adoption_note(definition.id, result),
            }
            for definition, result in board.cards
        ],
        "adoption_features": [
            {
                "feature": row["feature"],
                "customers": row["customers"],
                "active_customers": row["active_customers"],
                "rate": show_rate(row["rate"]),
            }
            for row in current["feature_usage_rate"].details["features"]
        ],
        "adoption_trend_names": [kpi_name(KPIS[kpi_id]) for kpi_id in trend_ids],
        "adoption_trend_rows": [
            {
                "month": point.month,
                "rates": [show_rate(point.results[kpi_id].value) for kpi_id in trend_ids],
            }
            for point in board.months
        ],
        "adoption_rates": [
            {
                "key": kpi_id,
                "label": kpi_name(KPIS[kpi_id]),
                "data": [_percent(point.results[kpi_id].value) for point in board.months],
            }
            for kpi_id in trend_ids
        ],
        "inactivity_days": board.inactivity_days,
    }


def _adoption_note(kpi_id: str, result: KpiResult) -> str:
    """A second line under an adoption card that says what the two numbers are."""
    details = result.details
    if kpi_id == "active_rate":
        return _("customers with an active user / customers")
    if kpi_id == "monthly_login_rate":
        return _("users / %(seats)s seats + %(known)s known users") % {
            "seats": details["seats"],
            "known": details["known_users"],
        }
    if kpi_id == "stickiness":
        mean = details["mean_dau"]
        return _("mean DAU %(mean)s / MAU %(mau)s") % {
            "mean": UNDEFINED if mean is None else mean,
            "mau": details["mau"],
        }
    if kpi_id == "feature_usage_rate":
        return _("key features used / active customers × %(count)s key features") % {
            "count": len(details["key_features"])
        }
    return _("quiet customers / customers active in the %(days)s days before the start") % {
        "days": details["inactivity_days"]
    }


def _is_money(kpi_id: str) -> bool:
    return kpi_id in {"mrr_churn_rate", "grr", "nrr", "mrr_movements"}
