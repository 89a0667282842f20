"""What a KPI computation returns: a value with the numerator and denominator behind it."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import Any

Number = Decimal | int

RATE_PLACES = Decimal("0.000001")


class Unit(StrEnum):
    RATE = "rate"  # a fraction; NRR and the monthly login rate may exceed 1
    MONEY = "money"  # in the base currency
    DAYS = "days"  # a number of days (a median may end in .5)
    FUNNEL = "funnel"  # no single value: the steps are in ``details``


def fraction(numerator: Number, denominator: Number) -> Decimal | None:
    """numerator / denominator exactly enough for rates, None when the denominator is empty."""
    if not denominator:
        return None
    with localcontext() as context:
        context.prec = 34
        return Decimal(numerator) / Decimal(denominator)


def rounded_rate(value: Decimal | None) -> Decimal | None:
    """A rate to 6 decimal places (None stays None)."""
    return None if value is None else value.quantize(RATE_PLACES)


def json_number(value: Any) -> Any:
    """Decimals as JSON numbers (floats), recursively through dicts and lists; dates as ISO."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: json_number(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_number(item) for item in value]
    return value


@dataclass(frozen=True, kw_only=True)
class KpiResult:
    """One KPI for one period. ``value`` is None when undefined (an empty denominator)."""

    id: str
    start: date
    end: date
    value: Decimal | None
    numerator: Number | None
    denominator: Number | None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self, *, name_en: str, name_ja: str) -> dict[str, Any]:
        """The shape shared by ``kizuna kpi --json`` and ``GET /api/v1/kpis/{id}``."""
        return {
            "id": self.id,
            "name_en": name_en,
            "name_ja": name_ja,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "value": json_number(self.value),
            "numerator": json_number(self.numerator),
            "denominator": json_number(self.denominator),
            "details": json_number(self.details),
        }


@dataclass(frozen=True, kw_only=True)
class TrendPoint:
    """A KPI for one calendar month, the period [first day, first day of the next month]."""

    month: str  # YYYY-MM
    result: KpiResult
