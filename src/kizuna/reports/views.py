"""Report pages: the KPI dashboard (contract KPIs, adoption KPIs from product events, a
breakdown by segment, touch model, stage or owner) and the time customers spend per stage."""

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
from kizuna.customers.templatetags.customer_tags import money
from kizuna.reports import selectors
from kizuna.reports.forms import GROUP_BY_CHOICES, DashboardFilterForm, TimeInStageForm
from kizuna.reports.kpis import (
    KPIS,
    AnyKpi,
    GroupBy,
    KpiInputError,
    KpiResult,
    Unit,
    UsageKpiDefinition,
    last_complete_month,
)
from kizuna.reports.kpis.population import Population
from kizuna.reports.kpis.results import Number
from kizuna.reports.time_in_stage import time_in_stage as time_in_stage_report

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
    form = DashboardFilterForm(
        request.GET,
        segments=selectors.segment_choices(),
        owners=owners,
        kpi_names=[(definition.id, kpi_name(definition)) for definition in KPIS.values()],
    )
    default_month = last_complete_month()
    month = form.month_or(default_month)
    context: dict[str, Any] = {
        "area": "reports",
        "tab": "kpis",
        "form": form,
        "month": month.strftime("%Y-%m"),
        "filtered": any(
            request.GET.get(key) for key in ("segment", "touch_model", "stage", "owner", "group_by")
        ),
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
    group_by = form.chosen_group_by()
    if group_by is not None:
        context["breakdown"] = _breakdown_context(
            KPIS[form.breakdown_kpi()], month, population, group_by
        )
    return render(request, "reports/dashboard.html", context)


def _breakdown_context(
    definition: AnyKpi, month: date, population: Population, group_by: GroupBy
) -> dict[str, Any]:
    """The breakdown section: a row per group and the total, and a horizontal bar chart."""
    context: dict[str, Any] = {
        "kpi": kpi_name(definition),
        "dimension": dict(GROUP_BY_CHOICES)[group_by.value],
        "overlap": group_by is GroupBy.OWNER,
    }
    if isinstance(definition, UsageKpiDefinition) and not selectors.has_events():
        return {**context, "error": _("There are no product usage events for this KPI yet.")}
    try:
        grouped = selectors.kpi_breakdown(
            kpi_id=definition.id, month=month, population=population, group_by=group_by
        )
    except KpiInputError as exc:
        return {**context, "error": str(exc)}
    is_money = definition.unit is Unit.MONEY

    def row(key: str, label: str, result: KpiResult) -> dict[str, Any]:
        return {
            "key": key,
            "label": label,
            "value": _show_value(result.value, is_money=is_money),
            "number": _chart_number(result.value, is_money=is_money),
            "numerator": show_amount(result.numerator, money_unit=_is_money(definition.id)),
            "denominator": show_amount(result.denominator, money_unit=_is_money(definition.id)),
        }

    rows = [row(group.key, group.label, group.result) for group in grouped.groups]
    total = row("", _("Total"), grouped.total)
    return {
        **context,
        "as_of": grouped.as_of,
        "rows": rows,
        "total": total,
        "chart": bar_chart(rows, total=total["number"]),
    }


def _show_value(value: Decimal | None, *, is_money: bool) -> str:
    if not is_money:
        return show_rate(value)
    return UNDEFINED if value is None else money(value)


def _chart_number(value: Decimal | None, *, is_money: bool) -> float | None:
    if value is None:
        return None
    return float(value) if is_money else float(value) * 100


# Geometry of the breakdown's bar chart, in SVG user units.
CHART_WIDTH = 640
CHART_LABEL_WIDTH = 180
CHART_VALUE_WIDTH = 80
CHART_ROW = 26
CHART_BAR = 16
CHART_LABEL_CHARS = 22


def bar_chart(rows: list[dict[str, Any]], *, total: float | None = None) -> dict[str, Any]:
    """Horizontal bars for ``rows`` (``label``, ``value`` as shown, ``number`` or None), drawn
    from a zero line; negative numbers (money) go left. ``total`` draws a dashed line."""
    numbers = [float(row["number"]) for row in rows if row["number"] is not None]
    if total is not None:
        numbers.append(total)
    low = min([0.0, *numbers])
    high = max([0.0, *numbers])
    span = (high - low) or 1.0
    area = CHART_WIDTH - CHART_LABEL_WIDTH - CHART_VALUE_WIDTH

    def x_of(number: float) -> float:
        return CHART_LABEL_WIDTH + (number - low) / span * area

    zero = x_of(0.0)
    bars = []
    for n, row in enumerate(rows):
        top = n * CHART_ROW + 4
        number = row["number"]
        label = str(row["label"])
        short = label if len(label) <= CHART_LABEL_CHARS else label[: CHART_LABEL_CHARS - 1] + "…"
        bar: dict[str, Any] = {
            "key": row["key"],
            "label": label,
            "short": short,
            "value": row["value"],
            "y": f"{top:.0f}",
            "text_y": f"{top + CHART_BAR - 4:.0f}",
            "height": f"{CHART_BAR}",
        }
        if number is None:
            bar.update(x=None, value_x=f"{zero + 4:.1f}")
        else:
            left = x_of(min(float(number), 0.0))
            width = abs(float(number)) / span * area
            bar.update(
                x=f"{left:.1f}",
                width=f"{width:.1f}",
                negative=number < 0,
                value_x=f"{left + width + 4:.1f}",
            )
        bars.append(bar)
    height = len(rows) * CHART_ROW + 8
    return {
        "width": CHART_WIDTH,
        "height": height,
        "label_x": CHART_LABEL_WIDTH - 8,
        "zero_x": f"{zero:.1f}",
        "total_x": None if total is None else f"{x_of(total):.1f}",
        "bars": bars,
    }


@require_GET
@requires(Capability.VIEW)
def time_in_stage(request: HttpRequest) -> HttpResponse:
    """Days spent per lifecycle stage, completed and current stays, from stage history."""
    form = TimeInStageForm(request.GET, segments=selectors.segment_choices())
    context: dict[str, Any] = {"area": "reports", "tab": "time-in-stage", "form": form}
    if form.is_valid():
        data = form.cleaned_data
        context["report"] = time_in_stage_report(
            segment=data.get("segment") or "",
            touch_model=data.get("touch_model") or "",
            cohort=data.get("cohort") or "",
        )
    context["filtered"] = any(request.GET.get(key) for key in ("segment", "touch_model", "cohort"))
    return render(request, "reports/time_in_stage.html", context)


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
