"""Template helpers of the customer pages: money amounts and the home page's overview."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.conf import settings

from kizuna.customers.models import LifecycleStage
from kizuna.customers.selectors import customer_book_totals, customer_counts_by_stage

register = template.Library()

CURRENCY_SYMBOLS = {"JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£"}
ZERO_DECIMAL_CURRENCIES = {"JPY", "KRW", "VND", "CLP", "ISK"}


@register.filter
def money(amount: Any, currency: str | None = None) -> str:
    """An amount with thousands separators and its currency: ¥1,200,000, $1,234.50, 10.00 CHF."""
    if amount is None or amount == "":
        return "—"
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    code = (currency or str(settings.KIZUNA_BASE_CURRENCY)).upper()
    places = 0 if code in ZERO_DECIMAL_CURRENCIES else 2
    text = f"{value:,.{places}f}"
    symbol = CURRENCY_SYMBOLS.get(code)
    if symbol:
        return f"-{symbol}{text[1:]}" if text.startswith("-") else f"{symbol}{text}"
    return f"{text} {code}"


@register.inclusion_tag("customers/_overview.html")
def customer_overview() -> dict[str, Any]:
    """Counts for the home page: customers, customers in service, ARR in service, by stage."""
    totals = customer_book_totals()
    by_stage = customer_counts_by_stage()
    return {
        "totals": totals,
        "arr_by_currency": sorted(
            (currency, mrr * 12) for currency, mrr in totals.mrr_by_currency.items()
        ),
        "stages": [
            (value, label, by_stage.get(value, 0)) for value, label in LifecycleStage.choices
        ],
    }
