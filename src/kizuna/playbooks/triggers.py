"""Playbook triggers: checking their parameters, describing them, and finding their occurrences.

A trigger *occurrence* is one customer and one moment the trigger happened, named by a key
that the ``PlaybookRun`` unique constraint uses to fire at most once:

- timeline — an entry of one of the ``kinds`` (payload keys equal when given): key
  ``timeline:<entry id>``, on the entry's local day;
- customer_date — ``offset_days`` after (negative: before) the customer's first start date or
  a renewal date (the end date of a subscription in service that day): key ``date:<day>``;
- schedule — every week on a weekday, every month or quarter on the nth weekday (``nth`` 1–5,
  −1 the last) or on a day of the month: every customer, key ``schedule:<day>``;
- metric — the day a customer's metric value crosses a threshold (the value satisfies
  ``op value`` that day and did not on its previous measured day within the last week):
  key ``metric:<day>``.

The finders are set-based (one query per playbook and day, or one per playbook for a range of
timeline entries) and shared by the runner and the simulation, so that what the simulation
shows is what the runner does. ``eligible`` narrows customers to a playbook's segments, touch
models and condition as of a day.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import Customer, Subscription
from kizuna.customers.selectors import active_on
from kizuna.playbooks.models import Playbook, TriggerKind

__all__ = [
    "CUSTOMER_DATES",
    "METRIC_OPERATORS",
    "SCHEDULE_EVERY",
    "Occurrence",
    "TriggerError",
    "date_occurrences",
    "describe_trigger",
    "eligible",
    "metric_occurrences",
    "occurrences_on",
    "schedule_occurrences",
    "timeline_occurrences",
    "validate_trigger",
]

CUSTOMER_DATES = {
    "first_start_date": gettext_lazy("the first start date"),
    "renewal_date": gettext_lazy("the renewal date"),
}
SCHEDULE_EVERY = ("week", "month", "quarter")
METRIC_OPERATORS = (">=", ">", "<=", "<")
MAX_OFFSET_DAYS = 3650
MAX_KINDS = 20
# How far back the previous value of a metric is looked for (a skipped day is not a crossing).
METRIC_LOOKBACK_DAYS = 7
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_CHUNK = 500
_WHOLE_POPULATION = 2000


class TriggerError(ValueError):
    """Trigger parameters that cannot be used: ``field`` names the parameter (``kinds``,
    ``payload.kind``, ``offset_days``…), ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True)
class Occurrence:
    """One customer to whom a trigger happened: ``key`` names the occurrence (see the module)."""

    customer_id: int
    key: str
    day: date
    summary: str


# --- Validation -----------------------------------------------------------------------------


def _int(params: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = params.get(name)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TriggerError(
            name, _("Give a whole number from {low} to {high}.").format(low=low, high=high)
        )
    return value


def _number(params: Mapping[str, Any], name: str) -> float | int:
    value = params.get(name)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN
        raise TriggerError(name, _("Give a number."))
    return int(value) if float(value).is_integer() else float(value)


def _validate_timeline(params: Mapping[str, Any]) -> dict[str, Any]:
    kinds = params.get("kinds")
    if isinstance(kinds, str):
        kinds = [part.strip() for part in kinds.split(",") if part.strip()]
    if not isinstance(kinds, list) or not kinds:
        raise TriggerError("kinds", _("Choose at least one kind of timeline entry."))
    if len(kinds) > MAX_KINDS:
        raise TriggerError("kinds", _("At most {n} kinds.").format(n=MAX_KINDS))
    for kind in kinds:
        if not isinstance(kind, str) or len(kind) > 64 or not _KIND_RE.match(kind):
            raise TriggerError(
                "kinds",
                _("“{kind}” is not a timeline kind (like risk.raised).").format(kind=kind),
            )
    payload = params.get("payload") or {}
    if not isinstance(payload, Mapping):
        raise TriggerError("payload", _("Give the payload as keys and values."))
    lookups = TimelineEntry._meta.get_field("payload").get_lookups()
    checked: dict[str, Any] = {}
    for key, value in payload.items():
        if not isinstance(key, str) or not _KEY_RE.match(key) or "__" in key or key in lookups:
            raise TriggerError("payload", _("“{key}” cannot be a payload key.").format(key=key))
        if value is None or isinstance(value, list | dict):
            raise TriggerError(f"payload.{key}", _("Give one text, number or yes/no value."))
        if value == "":
            continue
        checked[key] = value
    return {"kinds": list(dict.fromkeys(kinds)), "payload": checked}


def _validate_customer_date(params: Mapping[str, Any]) -> dict[str, Any]:
    which = params.get("date")
    if which not in CUSTOMER_DATES:
        raise TriggerError(
            "date", _("Choose one of: {choices}.").format(choices=", ".join(CUSTOMER_DATES))
        )
    raw = params.get("offset_days")
    if isinstance(raw, list | tuple):
        if not raw:
            raise TriggerError("offset_days", _("Give at least one number of days."))
        offsets = sorted(
            {
                _int({"offset_days": item}, "offset_days", -MAX_OFFSET_DAYS, MAX_OFFSET_DAYS)
                for item in raw
            }
        )
        return {"date": which, "offset_days": offsets}
    if isinstance(raw, str) and "," in raw:
        return _validate_customer_date({"date": which, "offset_days": raw.split(",")})
    offset = _int(params, "offset_days", -MAX_OFFSET_DAYS, MAX_OFFSET_DAYS)
    return {"date": which, "offset_days": offset}


def _validate_schedule(params: Mapping[str, Any]) -> dict[str, Any]:
    every = params.get("every")
    if every not in SCHEDULE_EVERY:
        raise TriggerError(
            "every", _("Choose one of: {choices}.").format(choices=", ".join(SCHEDULE_EVERY))
        )
    if every == "week":
        return {"every": every, "weekday": _int(params, "weekday", 0, 6)}
    if params.get("day") not in (None, ""):
        return {"every": every, "day": _int(params, "day", 1, 28)}
    weekday = _int(params, "weekday", 0, 6)
    nth = _int({"nth": params.get("nth", 1)}, "nth", -1, 5)
    if nth == 0:
        raise TriggerError("nth", _("Give 1 to 5, or -1 for the last."))
    return {"every": every, "weekday": weekday, "nth": nth}


def _validate_metric(params: Mapping[str, Any]) -> dict[str, Any]:
    metric = params.get("metric")
    if not isinstance(metric, str) or not metric.strip():
        raise TriggerError("metric", _("Choose a metric."))
    metric = metric.strip()
    from kizuna.analytics.models import MetricDefinition

    if not MetricDefinition.objects.filter(key=metric).exists():
        from kizuna.analytics.metric_defaults import DEFAULT_METRICS

        if metric not in {item.key for item in DEFAULT_METRICS}:
            raise TriggerError("metric", _("No metric has the key “{key}”.").format(key=metric))
    op = params.get("op")
    if op not in METRIC_OPERATORS:
        raise TriggerError(
            "op", _("Choose one of: {choices}.").format(choices=" ".join(METRIC_OPERATORS))
        )
    return {"metric": metric, "op": op, "value": _number(params, "value")}


_VALIDATORS = {
    TriggerKind.TIMELINE: _validate_timeline,
    TriggerKind.CUSTOMER_DATE: _validate_customer_date,
    TriggerKind.SCHEDULE: _validate_schedule,
    TriggerKind.METRIC: _validate_metric,
}


# A playbook may hold back for a while after it fired for a customer (a signal that flickers, a
# metric hovering around its threshold): at most a year.
MAX_COOLDOWN_DAYS = 365


def validate_trigger(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a ``kind`` trigger, checked and normalised (what to store).

    Raises ``TriggerError`` naming the parameter at fault.
    """
    if kind not in TriggerKind.values:
        raise TriggerError(
            "kind", _("Choose one of: {choices}.").format(choices=", ".join(TriggerKind.values))
        )
    if not isinstance(params, Mapping):
        raise TriggerError("", _("Give the trigger's parameters as keys and values."))
    params = dict(params)
    cooldown = params.pop("cooldown_days", None)
    checked = _VALIDATORS[TriggerKind(kind)](params)
    if cooldown not in (None, "", 0):
        try:
            days = int(cooldown)
        except (TypeError, ValueError):
            days = -1
        if not 0 <= days <= MAX_COOLDOWN_DAYS or isinstance(cooldown, bool):
            raise TriggerError(
                "cooldown_days",
                _("Give a whole number of days from 0 to {most}.").format(most=MAX_COOLDOWN_DAYS),
            )
        if days:
            checked["cooldown_days"] = days
    return checked


def cooldown_days(playbook: Playbook) -> int:
    """Days during which the playbook does not fire again for a customer it fired for (0: none)."""
    return int((playbook.trigger_params or {}).get("cooldown_days") or 0)


# --- Describing -----------------------------------------------------------------------------

_WEEKDAYS = (
    gettext_lazy("Monday"),
    gettext_lazy("Tuesday"),
    gettext_lazy("Wednesday"),
    gettext_lazy("Thursday"),
    gettext_lazy("Friday"),
    gettext_lazy("Saturday"),
    gettext_lazy("Sunday"),
)
_NTH = {
    1: gettext_lazy("first"),
    2: gettext_lazy("second"),
    3: gettext_lazy("third"),
    4: gettext_lazy("fourth"),
    5: gettext_lazy("fifth"),
    -1: gettext_lazy("last"),
}


def _kind_label(kind: str) -> str:
    try:
        return str(TimelineKind(kind).label)
    except ValueError:
        return kind


def _offsets(params: Mapping[str, Any]) -> list[int]:
    raw = params.get("offset_days", 0)
    return [int(item) for item in raw] if isinstance(raw, list) else [int(raw)]


def describe_trigger(playbook: Playbook) -> str:
    """The trigger in a sentence ("90 days before the renewal date")."""
    params = playbook.trigger_params or {}
    kind = playbook.trigger_kind
    if kind == TriggerKind.TIMELINE:
        kinds = ", ".join(_kind_label(item) for item in params.get("kinds", []))
        payload = params.get("payload") or {}
        if payload:
            details = ", ".join(f"{key} = {value}" for key, value in payload.items())
            return _("When the timeline records: {kinds} ({details})").format(
                kinds=kinds, details=details
            )
        return _("When the timeline records: {kinds}").format(kinds=kinds)
    if kind == TriggerKind.CUSTOMER_DATE:
        which = str(CUSTOMER_DATES.get(params.get("date", ""), params.get("date", "")))
        parts = []
        for offset in _offsets(params):
            if offset > 0:
                parts.append(_("{n} days after").format(n=offset))
            elif offset < 0:
                parts.append(_("{n} days before").format(n=-offset))
            else:
                parts.append(_("on the day of"))
        return _("{when} {date}").format(when=" / ".join(parts), date=which)
    if kind == TriggerKind.SCHEDULE:
        every = params.get("every")
        if every == "week":
            return _("Every {weekday}").format(weekday=_WEEKDAYS[int(params.get("weekday", 0))])
        if "day" in params:
            text = (
                _("Day {day} of every month")
                if every == "month"
                else _("Day {day} of every quarter")
            )
            return text.format(day=params["day"])
        text = (
            _("The {nth} {weekday} of every month")
            if every == "month"
            else _("The {nth} {weekday} of every quarter")
        )
        return text.format(
            nth=_NTH.get(int(params.get("nth", 1)), ""),
            weekday=_WEEKDAYS[int(params.get("weekday", 0))],
        )
    if kind == TriggerKind.METRIC:
        return _("When {metric} crosses {op} {value}").format(
            metric=params.get("metric", ""), op=params.get("op", ""), value=params.get("value", "")
        )
    return str(kind)


# --- Occurrences ----------------------------------------------------------------------------


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(0, 0)))


def timeline_occurrences(
    playbooks: Sequence[Playbook],
    after_id: int = 0,
    upto_id: int | None = None,
    *,
    start: date | None = None,
    end: date | None = None,
    since: datetime | None = None,
) -> list[list[Occurrence]]:
    """For each timeline playbook (in order), the entries that trigger it, oldest first.

    Entries are those with ``after_id < id <= upto_id`` (the runner's cursor) and, when given,
    occurring on local days ``start``–``end`` (the simulation) and at or after ``since`` (a
    playbook's ``enabled_at``). One query per playbook.
    """
    found: list[list[Occurrence]] = []
    for playbook in playbooks:
        params = playbook.trigger_params or {}
        if playbook.trigger_kind != TriggerKind.TIMELINE or not params.get("kinds"):
            found.append([])
            continue
        entries = TimelineEntry.objects.filter(kind__in=params["kinds"], id__gt=after_id)
        if upto_id is not None:
            entries = entries.filter(id__lte=upto_id)
        if start is not None:
            entries = entries.filter(occurred_at__gte=_start_of(start))
        if end is not None:
            entries = entries.filter(occurred_at__lt=_start_of(end + timedelta(days=1)))
        if since is not None:
            entries = entries.filter(occurred_at__gte=since)
        for key, value in (params.get("payload") or {}).items():
            entries = entries.filter(**{f"payload__{key}": value})
        rows = entries.order_by("occurred_at", "id").values_list(
            "id", "customer_id", "occurred_at", "kind", "title"
        )
        found.append(
            [
                Occurrence(
                    customer_id=customer_id,
                    key=f"timeline:{entry_id}",
                    day=timezone.localdate(occurred_at),
                    summary=f"{_kind_label(kind)}: {title}"[:300],
                )
                for entry_id, customer_id, occurred_at, kind, title in rows
            ]
        )
    return found


def date_occurrences(playbook: Playbook, day: date) -> list[Occurrence]:
    """Customers whose first start or renewal date is ``offset_days`` away from ``day``."""
    params = playbook.trigger_params or {}
    which = params.get("date")
    found: dict[int, Occurrence] = {}
    for offset in _offsets(params):
        anchor = day - timedelta(days=offset)
        if which == "first_start_date":
            ids: Iterable[int] = Customer.objects.filter(first_start_date=anchor).values_list(
                "pk", flat=True
            )
            summary = _("{n} days from the first start date ({date})")
        elif which == "renewal_date":
            ids = (
                Subscription.objects.filter(active_on(day), end_date=anchor)
                .order_by()
                .values_list("customer_id", flat=True)
                .distinct()
            )
            summary = _("{n} days from the renewal date ({date})")
        else:
            return []
        text = summary.format(n=offset, date=anchor.isoformat())
        for customer_id in ids:
            found.setdefault(
                customer_id,
                Occurrence(customer_id=customer_id, key=f"date:{day}", day=day, summary=text),
            )
    return sorted(found.values(), key=lambda item: item.customer_id)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date | None:
    days = [
        date(year, month, number)
        for number in range(1, calendar.monthrange(year, month)[1] + 1)
        if date(year, month, number).weekday() == weekday
    ]
    if nth == -1:
        return days[-1]
    return days[nth - 1] if nth <= len(days) else None


def schedule_matches(params: Mapping[str, Any], day: date) -> bool:
    """Whether a schedule trigger falls on ``day``."""
    every = params.get("every")
    if every == "week":
        return day.weekday() == int(params.get("weekday", 0))
    if every == "quarter" and day.month not in (1, 4, 7, 10):
        return False
    if every not in ("month", "quarter"):
        return False
    if "day" in params:
        return day.day == int(params["day"])
    target = _nth_weekday(
        day.year, day.month, int(params.get("weekday", 0)), int(params.get("nth", 1))
    )
    return target == day


def schedule_occurrences(playbook: Playbook, day: date) -> list[Occurrence]:
    """Every customer, when the schedule falls on ``day`` (the condition narrows them)."""
    if not schedule_matches(playbook.trigger_params or {}, day):
        return []
    summary = describe_trigger(playbook)
    return [
        Occurrence(customer_id=pk, key=f"schedule:{day}", day=day, summary=summary)
        for pk in Customer.objects.order_by("pk").values_list("pk", flat=True)
    ]


def _metric_files(first: date, last: date) -> list[tuple[date, str]]:
    from kizuna.analytics import lake

    root = lake.metrics_dir()
    files = []
    day = first
    while day <= last:
        path = root / day.isoformat() / "metrics.parquet"
        if path.exists():
            files.append((day, str(path)))
        day += timedelta(days=1)
    return files


def metric_day_available(day: date) -> bool:
    """Whether the metric history of ``day`` has been written (the runner waits for it)."""
    return bool(_metric_files(day, day))


def metric_occurrences(playbook: Playbook, day: date) -> list[Occurrence]:
    """Customers whose metric crosses the threshold on ``day`` (from the lake's history)."""
    params = playbook.trigger_params or {}
    op = params.get("op")
    if op not in METRIC_OPERATORS or not params.get("metric"):
        return []
    files = _metric_files(day - timedelta(days=METRIC_LOOKBACK_DAYS), day)
    if not files or files[-1][0] != day:
        return []
    threshold = float(params.get("value", 0))
    con = duckdb.connect(config={"threads": settings.KIZUNA_DUCKDB_THREADS})
    try:
        con.execute("SET enable_progress_bar=false")
        # ``op`` is one of METRIC_OPERATORS (checked above), the values are parameters.
        rows = con.execute(
            f"""
            WITH history AS (
                SELECT customer_id, day, value FROM read_parquet(?)
                WHERE metric = ? AND value IS NOT NULL
            ),
            today AS (SELECT customer_id, value FROM history WHERE day = ?),
            before AS (
                SELECT customer_id, arg_max(value, day) AS value
                FROM history WHERE day < ? GROUP BY customer_id
            )
            SELECT today.customer_id, before.value, today.value
            FROM today JOIN before USING (customer_id)
            WHERE today.value {op} ? AND NOT (before.value {op} ?)
            ORDER BY today.customer_id
            """,  # noqa: S608 - op is from a fixed list
            [[path for _day, path in files], params["metric"], day, day, threshold, threshold],
        ).fetchall()
    finally:
        con.close()
    metric = params["metric"]
    return [
        Occurrence(
            customer_id=int(customer_id),
            key=f"metric:{day}",
            day=day,
            summary=f"{metric}: {_fmt(before)} → {_fmt(value)} ({op} {_fmt(threshold)})",
        )
        for customer_id, before, value in rows
    ]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def occurrences_on(playbook: Playbook, day: date) -> list[Occurrence]:
    """The occurrences of a dated trigger (customer date, schedule, metric) on ``day``."""
    if playbook.trigger_kind == TriggerKind.CUSTOMER_DATE:
        return date_occurrences(playbook, day)
    if playbook.trigger_kind == TriggerKind.SCHEDULE:
        return schedule_occurrences(playbook, day)
    if playbook.trigger_kind == TriggerKind.METRIC:
        return metric_occurrences(playbook, day)
    return []


# --- Eligibility ----------------------------------------------------------------------------


def eligible(playbook: Playbook, customer_ids: Iterable[int], day: date) -> set[int]:
    """The customers among ``customer_ids`` the playbook applies to on ``day``: in one of its
    segments and touch models (as they were that day; empty lists mean all) and satisfying
    its condition (contract values as of that day). One query per 500 customers, or one over
    the whole population for more than 2,000."""
    from kizuna.lifecycle.conditions import compile_condition, is_everyone
    from kizuna.lifecycle.history import as_of_filter
    from kizuna.lifecycle.models import Dimension

    ids = sorted(set(customer_ids))
    if not ids:
        return set()
    scope = Q()
    if playbook.segments:
        scope &= as_of_filter(Dimension.SEGMENT, playbook.segments, day)
    if playbook.touch_models:
        scope &= as_of_filter(Dimension.TOUCH_MODEL, playbook.touch_models, day)
    tree = playbook.condition or {}
    compiled = None if is_everyone(tree) else compile_condition(tree, as_of=day)
    if len(ids) > _WHOLE_POPULATION:
        # Many customers (a schedule): one query over everyone, then keep those asked about.
        customers = Customer.objects.filter(scope)
        if compiled is not None:
            customers = compiled.apply(customers)
        return set(customers.order_by().values_list("pk", flat=True)) & set(ids)
    found: set[int] = set()
    for index in range(0, len(ids), _CHUNK):
        customers = Customer.objects.filter(pk__in=ids[index : index + _CHUNK]).filter(scope)
        if compiled is not None:
            customers = compiled.apply(customers)
        found.update(customers.order_by().values_list("pk", flat=True))
    return found
