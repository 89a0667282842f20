"""Report pages: the KPI dashboard (contract KPIs, adoption KPIs from product events, a
breakdown by segment, touch model, stage or owner), the onboarding report (a cohort's
onboarding KPIs, the milestone funnel per program version, 12 cohorts) and the time customers
spend per stage."""

from datetime import date
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from kizuna.core.access import requires
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.templatetags.customer_tags import money
from kizuna.reports import onboarding_report as onboarding_reads
from kizuna.reports import selectors
from kizuna.reports.charts import line_chart
from kizuna.reports.forms import (
    GROUP_BY_CHOICES,
    DashboardFilterForm,
    OnboardingReportForm,
    TimeInStageForm,
)
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
        kpi_names=[
            (definition.id, kpi_name(definition))
            for definition in KPIS.values()
            if definition.unit is not Unit.FUNNEL  # no single value to break down
        ],
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
    unit = definition.unit

    def row(key: str, label: str, result: KpiResult) -> dict[str, Any]:
        return {
            "key": key,
            "label": label,
            "value": show_value(result.value, unit),
            "number": _chart_number(result.value, unit),
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


def show_days(value: Decimal | float | None) -> str:
    """A number of days as shown: "29 days", "11.5 days", "—"."""
    if value is None:
        return UNDEFINED
    return _("%(days)s days") % {"days": f"{float(value):g}"}


def show_value(value: Decimal | None, unit: Unit) -> str:
    """A KPI value as shown: a percentage, an amount or days."""
    if unit is Unit.MONEY:
        return UNDEFINED if value is None else money(value)
    if unit is Unit.DAYS:
        return show_days(value)
    return show_rate(value)


def _chart_number(value: Decimal | None, unit: Unit) -> float | None:
    if value is None:
        return None
    return float(value) if unit in (Unit.MONEY, Unit.DAYS) else float(value) * 100


# Geometry of the breakdown's bar chart, in SVG user units.
CHART_WIDTH = 640
CHART_LABEL_WIDTH = 180
CHART_VALUE_WIDTH = 80
CHART_ROW = 26
CHART_BAR = 16
CHART_LABEL_CHARS = 22


def bar_chart(
    rows: list[dict[str, Any]], *, total: float | None = None, top: float | None = None
) -> dict[str, Any]:
    """Horizontal bars for ``rows`` (``label``, ``value`` as shown, ``number`` or None), drawn
    from a zero line; negative numbers (money) go left. ``total`` draws a dashed line; ``top``
    fixes the right end of the scale (100 for percentages) instead of the largest number."""
    numbers = [float(row["number"]) for row in rows if row["number"] is not None]
    if total is not None:
        numbers.append(total)
    low = min([0.0, *numbers])
    high = max([0.0, *numbers, *([] if top is None else [top])])
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
def onboarding(request: HttpRequest) -> HttpResponse:
    """A cohort's onboarding KPIs with numerator and denominator, completion by day 30/60/90,
    the milestone funnel of each program version and the 12 cohorts up to it."""
    today = timezone.localdate()
    form = OnboardingReportForm(
        request.GET,
        segments=selectors.segment_choices(),
        owners=list(User.objects.filter(is_active=True).order_by("username")),
        programs=selectors.program_choices(),
    )
    cohort = form.cohort_or(onboarding_reads.default_cohort(today))
    context: dict[str, Any] = {
        "area": "reports",
        "tab": "onboarding",
        "form": form,
        "cohort": cohort.strftime("%Y-%m"),
        "cohort_start": cohort,
        "today": today,
        "filtered": any(
            request.GET.get(key)
            for key in ("segment", "touch_model", "stage", "owner", "program", "version")
        ),
    }
    if not onboarding_reads.has_plans():
        return render(request, "reports/onboarding.html", {**context, "no_plans": True})
    if form.has_program_errors():
        return render(request, "reports/onboarding.html", context)
    try:
        report = onboarding_reads.onboarding_report(
            cohort=cohort,
            population=form.population(),
            judged_on=today,
            program=form.program_filter,
        )
    except KpiInputError as exc:
        return render(request, "reports/onboarding.html", {**context, "kpi_error": str(exc)})
    context.update(_onboarding_context(report))
    return render(request, "reports/onboarding.html", context)


def _onboarding_context(report: onboarding_reads.OnboardingReport) -> dict[str, Any]:
    """Cards, the day-30/60/90 bars, the funnel tables and the two trend lines."""
    results = {definition.id: result for definition, result in report.cards}
    cards = [
        {
            "id": definition.id,
            "name": kpi_name(definition),
            "description": definition.description,
            "value": show_value(result.value, definition.unit),
            "numerator": result.numerator,
            "denominator": result.denominator,
            "fraction": _onboarding_fraction(definition.id),
            "note": _onboarding_note(definition.id, result),
        }
        for definition, result in report.cards
    ]
    completion = results["onboarding_completion_rate"]
    by_day = [
        {
            "key": mark,
            "label": _("Day %(day)s") % {"day": mark},
            "value": show_rate(_decimal(row["rate"])),
            "number": None if row["rate"] is None else float(row["rate"]) * 100,
            "completed": row["completed"],
            "plans": row["plans"],
        }
        for mark, row in completion.details["by_day"].items()
    ]
    plan_outcomes = [
        ("on_time", _("Completed within the target days"), completion.numerator),
        ("late", _("Completed late"), completion.details["completed_late"]),
        (
            "in_progress",
            _("Open, still within the target days"),
            completion.details["in_progress_within_target"],
        ),
        (
            "not_completed",
            _("Open past the target days"),
            completion.details["not_completed_past_target"],
        ),
        ("total", _("Customers with a plan"), completion.denominator),
    ]
    funnels = [_funnel_context(version) for version in report.funnel.details["versions"]]
    labels = [month for month, _results in report.months]
    rates = [_decimal_percent(r["onboarding_completion_rate"].value) for _m, r in report.months]
    days = [_chart_number(r["time_to_first_value"].value, Unit.DAYS) for _m, r in report.months]
    return {
        "cards": cards,
        "cohort_plans": completion.denominator,
        "by_day": by_day,
        "by_day_chart": bar_chart(by_day, top=100.0),
        "plan_outcomes": plan_outcomes,
        "funnels": funnels,
        "trend_charts": [
            (
                line_chart(
                    labels,
                    rates,
                    shown=[
                        show_rate(r["onboarding_completion_rate"].value) for _m, r in report.months
                    ],
                    top=100.0,
                    suffix="%",
                ),
                _("Onboarding completion rate by cohort"),
                "completion",
            ),
            (
                line_chart(
                    labels,
                    days,
                    shown=[show_days(r["time_to_first_value"].value) for _m, r in report.months],
                ),
                _("Time to first value by cohort (median days)"),
                "time-to-first-value",
            ),
        ],
        "trend_rows": [
            {
                "month": month,
                "completion": show_rate(r["onboarding_completion_rate"].value),
                "plans": r["onboarding_completion_rate"].denominator,
                "ttfv": show_days(r["time_to_first_value"].value),
                "reached": r["time_to_first_value"].numerator,
                "customers": r["time_to_first_value"].denominator,
            }
            for month, r in report.months
        ],
    }


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _decimal_percent(value: Decimal | None) -> float | None:
    return None if value is None else float(value) * 100


def _onboarding_fraction(kpi_id: str) -> str:
    """What the numerator / denominator of a card count."""
    if kpi_id == "onboarding_completion_rate":
        return _("plans completed on time / customers with a plan")
    if kpi_id == "initial_usage_rate":
        return _("customers with an active user in 30 days / customers")
    if kpi_id == "initial_outcome_achievement_rate":
        return _("first goals achieved by their due date / customers that set one")
    return _("customers that reached their first goal / customers")


def _onboarding_note(kpi_id: str, result: KpiResult) -> str:
    """A second line under an onboarding card: what is still open, or what is missing."""
    details = result.details
    if kpi_id == "onboarding_completion_rate":
        return _(
            "%(late)s completed late, %(open)s within their target days, %(missed)s not "
            "completed past it"
        ) % {
            "late": details["completed_late"],
            "open": details["in_progress_within_target"],
            "missed": details["not_completed_past_target"],
        }
    if kpi_id == "initial_usage_rate":
        if not details.get("has_usage_data"):
            return _("There are no product usage events yet.")
        return _("%(count)s customers' 30 days are not over yet") % {
            "count": details["customers_whose_window_is_still_open"]
        }
    if kpi_id == "initial_outcome_achievement_rate":
        return _("%(late)s achieved late, %(open)s still open before their due date") % {
            "late": details["achieved_late"],
            "open": details["open_before_due_date"],
        }
    return _("onboarding completed: median %(days)s") % {
        "days": show_days(details["median_days_to_onboarding_completed"])
    }


def _funnel_context(version: dict[str, Any]) -> dict[str, Any]:
    """One version's funnel as rows with a bar width (completed share, 0–100)."""
    steps = [
        {
            **step,
            "completed_percent": show_rate(_decimal(step["completed_share"])),
            "bar": 0.0
            if step["completed_share"] is None
            else round(step["completed_share"] * 100, 1),
            "median": show_days(step["median_days"]),
            "overdue_percent": show_rate(_decimal(step["overdue_share"])),
            "stall": step["key"] == version["stall_key"],
        }
        for step in version["steps"]
    ]
    return {**version, "steps": steps}


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
