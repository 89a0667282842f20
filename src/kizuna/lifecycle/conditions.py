"""The condition language of segments, stage criteria and assignment rules: parse, check, match.

People write rules as text::

    arr >= 10_000_000 or employees >= 1000
    industry in ("製造業", "小売") and not (touch_model = "tech")
    onboarding_completed or days_since_start >= 120
    metric.seat_utilisation_28d >= 0.8
    true

``parse`` turns the text into a JSON condition tree with a hand-written tokenizer and a
recursive-descent parser (nothing is ever evaluated as Python); ``validate`` checks a tree
that arrived as JSON (the API); ``to_expression`` writes a tree back as text; ``matching``
compiles a tree into Django ORM annotations and one ``Q`` and returns the customers that
satisfy it, in a single SQL query over all customers.

The tree::

    {}                                           everyone ("true"; also {"all": []})
    {"any": []}                                  nobody ("false")
    {"all": [node, ...]}                         and
    {"any": [node, ...]}                         or
    {"not": node}                                not
    {"field": "arr", "op": ">=", "value": 10000000}

Operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in`` / ``not in`` (with a list),
``contains`` (text), ``is empty`` / ``is not empty`` (no value). A bare boolean field
(``onboarding_completed``) means ``onboarding_completed = true``. ``and`` binds tighter
than ``or``; ``not`` tighter than both.

A missing value (no employee count, no renewal date, empty text) never satisfies a
comparison: ``employees < 50`` does not match a customer whose size is unknown, and
neither does ``employees != 50``; ``not (employees >= 1000)`` does (the comparison is
false, its negation true). ``is empty`` asks for missing values explicitly.

Error positions: ``ConditionError.position`` is the 0-based offset of the offending
character in the expression; messages count from 1 ("position 7: ..."), as people do.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, cast

from django.db.models import (
    CharField,
    DateField,
    DecimalField,
    Exists,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.aggregates import Min
from django.db.models.functions import Cast, Coalesce, ExtractDay, ExtractMonth, ExtractYear, Least
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import Customer, LifecycleStage, Subscription, TouchModel
from kizuna.customers.selectors import active_on
from kizuna.health.models import Band, HealthScore

__all__ = [
    "FIELDS",
    "OPERATORS",
    "ConditionError",
    "Field",
    "FieldType",
    "compile_condition",
    "compile_conditions",
    "describe_fields",
    "is_everyone",
    "matching",
    "parse",
    "to_expression",
    "validate",
]

MAX_EXPRESSION_LENGTH = 5000
MAX_DEPTH = 20
MAX_NODES = 300
MAX_LIST_ITEMS = 500
MAX_TEXT_LENGTH = 500


class ConditionError(ValueError):
    """A rule that cannot be used, with where it went wrong.

    ``position`` is the 0-based character offset in the expression (``None`` for trees or
    when the whole text is at fault); ``path`` is where in a JSON tree (``all[1].field``).
    ``str(error)`` is the message a person reads, position or path first.
    """

    def __init__(self, message: str, *, position: int | None = None, path: str | None = None):
        self.message = message
        self.position = position
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        if self.position is not None:
            return _("position %(position)d: %(message)s") % {
                "position": self.position + 1,
                "message": self.message,
            }
        if self.path:
            return f"{self.path}: {self.message}"
        return self.message

    def __str__(self) -> str:
        return self._render()


# ---------------------------------------------------------------------------------------
# The field catalog


class FieldType(StrEnum):
    NUMBER = "number"
    DAYS = "days"  # whole days
    TEXT = "text"
    CHOICE = "choice"
    BOOLEAN = "boolean"
    CODES = "codes"  # a set of codes (plans or products of the active subscriptions)


OPERATORS: tuple[str, ...] = (
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not in",
    "contains",
    "is empty",
    "is not empty",
)
_ORDER_OPS = ("<", "<=", ">", ">=")
_LIST_OPS = ("in", "not in")
_EMPTY_OPS = ("is empty", "is not empty")

_OPS_BY_TYPE: dict[FieldType, tuple[str, ...]] = {
    FieldType.NUMBER: ("=", "!=", *_ORDER_OPS, *_LIST_OPS, *_EMPTY_OPS),
    FieldType.DAYS: ("=", "!=", *_ORDER_OPS, *_LIST_OPS, *_EMPTY_OPS),
    FieldType.TEXT: ("=", "!=", *_LIST_OPS, "contains", *_EMPTY_OPS),
    FieldType.CHOICE: ("=", "!=", *_LIST_OPS),
    FieldType.BOOLEAN: ("=", "!="),
    FieldType.CODES: ("=", "!=", *_LIST_OPS, "contains", *_EMPTY_OPS),
}

_TYPE_LABELS: dict[FieldType, Promise] = {
    FieldType.NUMBER: gettext_lazy("number"),
    FieldType.DAYS: gettext_lazy("days"),
    FieldType.TEXT: gettext_lazy("text"),
    FieldType.CHOICE: gettext_lazy("choice"),
    FieldType.BOOLEAN: gettext_lazy("yes/no"),
    FieldType.CODES: gettext_lazy("codes"),
}


@dataclass(frozen=True)
class Field:
    """A field a condition can test. ``example`` is a condition people can copy."""

    name: str
    type: FieldType
    label: Promise
    help: Promise
    example: str
    choices: tuple[str, ...] = ()
    reserved: bool = False

    @property
    def type_label(self) -> str:
        return str(_TYPE_LABELS[self.type])

    @property
    def operators(self) -> tuple[str, ...]:
        return _OPS_BY_TYPE[self.type]


_METRIC_PREFIX = "metric."

FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field(
            "name",
            FieldType.TEXT,
            gettext_lazy("Customer name"),
            gettext_lazy("The company name."),
            'name contains "株式会社"',
        ),
        Field(
            "industry",
            FieldType.TEXT,
            gettext_lazy("Industry"),
            gettext_lazy("The customer's industry as recorded."),
            'industry in ("製造業", "小売")',
        ),
        Field(
            "region",
            FieldType.TEXT,
            gettext_lazy("Region"),
            gettext_lazy("The customer's region as recorded."),
            'region = "関東"',
        ),
        Field(
            "employees",
            FieldType.NUMBER,
            gettext_lazy("Employees"),
            gettext_lazy("The customer's employee count."),
            "employees >= 1000",
        ),
        Field(
            "segment",
            FieldType.TEXT,
            gettext_lazy("Segment"),
            gettext_lazy("The key of the customer's current segment."),
            'segment = "enterprise"',
        ),
        Field(
            "stage",
            FieldType.CHOICE,
            gettext_lazy("Lifecycle stage"),
            gettext_lazy("onboarding, adoption, expansion, churned or reactivated."),
            'stage = "adoption"',
            choices=tuple(LifecycleStage.values),
        ),
        Field(
            "touch_model",
            FieldType.CHOICE,
            gettext_lazy("Touch model"),
            gettext_lazy("high, low or tech."),
            'touch_model = "tech"',
            choices=tuple(TouchModel.values),
        ),
        Field(
            "arr",
            FieldType.NUMBER,
            gettext_lazy("ARR"),
            gettext_lazy(
                "12 × the MRR of the subscriptions active today (0 without any); "
                "currencies are not converted."
            ),
            "arr >= 10_000_000",
        ),
        Field(
            "mrr",
            FieldType.NUMBER,
            gettext_lazy("MRR"),
            gettext_lazy("The MRR of the subscriptions active today (0 without any)."),
            "mrr >= 100000",
        ),
        Field(
            "seats",
            FieldType.NUMBER,
            gettext_lazy("Seats"),
            gettext_lazy("The quantity of the subscriptions active today (0 without any)."),
            "seats >= 50",
        ),
        Field(
            "plan",
            FieldType.CODES,
            gettext_lazy("Plan"),
            gettext_lazy("Matches when any subscription active today is on that plan (code)."),
            'plan in ("enterprise", "business")',
        ),
        Field(
            "product",
            FieldType.CODES,
            gettext_lazy("Product"),
            gettext_lazy("Matches when any subscription active today is of that product (code)."),
            'product = "analytics"',
        ),
        Field(
            "days_since_start",
            FieldType.DAYS,
            gettext_lazy("Days since start"),
            gettext_lazy("Days since the customer's first subscription started."),
            "days_since_start >= 120",
        ),
        Field(
            "days_to_renewal",
            FieldType.DAYS,
            gettext_lazy("Days to renewal"),
            gettext_lazy(
                "Days until the earliest end date of the subscriptions active today; "
                "empty when none ends."
            ),
            "days_to_renewal <= 90",
        ),
        Field(
            "revenue_to_date",
            FieldType.NUMBER,
            gettext_lazy("Revenue to date (LTV estimate)"),
            gettext_lazy(
                "The LTV so far: each subscription's MRR × the months it has served until today."
            ),
            "revenue_to_date >= 5_000_000",
        ),
        Field(
            "onboarding_completed",
            FieldType.BOOLEAN,
            gettext_lazy("Onboarding completed"),
            gettext_lazy("The customer's onboarding has been completed."),
            "onboarding_completed",
        ),
        Field(
            "health",
            FieldType.NUMBER,
            gettext_lazy("Health score"),
            gettext_lazy(
                "The latest health score (0–100) on or before the day; a customer without "
                "a score does not match."
            ),
            "health >= 70",
        ),
        Field(
            "health_band",
            FieldType.CHOICE,
            gettext_lazy("Health band"),
            gettext_lazy(
                "good, watch or at_risk: the band of the latest health score on or before "
                "the day; a customer without a score does not match."
            ),
            'health_band in ("watch", "at_risk")',
            choices=tuple(Band.values),
        ),
    )
}

METRIC_FIELD_HELP = gettext_lazy(
    "metric.<key>: the latest value of a usage metric, e.g. metric.seat_utilisation_28d >= 0.8"
)


def describe_fields() -> list[Field]:
    """The fields for the editor's reference list (reserved ones left out)."""
    return [f for f in FIELDS.values() if not f.reserved]


def _metric_keys() -> set[str]:
    from kizuna.analytics.models import MetricDefinition

    return set(MetricDefinition.objects.values_list("key", flat=True))


class _FieldLookup:
    """Resolves field names, loading metric keys from the database once, when needed."""

    def __init__(self, metric_keys: Iterable[str] | None, *, any_metric: bool = False) -> None:
        self._metric_keys = set(metric_keys) if metric_keys is not None else None
        self.any_metric = any_metric

    def metric_keys(self) -> set[str]:
        if self._metric_keys is None:
            self._metric_keys = _metric_keys()
        return self._metric_keys

    def resolve(self, name: str) -> Field:
        """The field called ``name``; raises ``_LeafError`` saying what is wrong."""
        if name.startswith(_METRIC_PREFIX):
            key = name[len(_METRIC_PREFIX) :]
            if not key:
                raise _LeafError("field", _("a metric needs its key, e.g. metric.active_days_28d"))
            if not self.any_metric and key not in (known := self.metric_keys()):
                raise _LeafError(
                    "field",
                    _("unknown metric '%(key)s'%(hint)s")
                    % {"key": key, "hint": _did_you_mean(key, known)},
                )
            return Field(name, FieldType.NUMBER, gettext_lazy("Metric"), METRIC_FIELD_HELP, "")
        found = FIELDS.get(name) or FIELDS.get(name.lower())
        if found is None:
            raise _LeafError(
                "field",
                _("unknown field '%(name)s'%(hint)s")
                % {"name": name, "hint": _did_you_mean(name, FIELDS)},
            )
        if found.reserved:
            raise _LeafError(
                "field", _("the field '%(name)s' is not available yet") % {"name": found.name}
            )
        return found


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if not close:
        return ""
    return _(" (did you mean '%(word)s'?)") % {"word": close[0]}


# ---------------------------------------------------------------------------------------
# Leaf checks shared by the parser and the tree validator


class _LeafError(Exception):
    """A problem with one part ("field", "op" or "value"/"value[i]") of a comparison."""

    def __init__(self, part: str, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.part = part
        self.message = message
        self.index = index


Scalar = int | float | str | bool


def _describe_value(value: object) -> str:
    if isinstance(value, bool):
        return _("yes/no")
    if isinstance(value, (int, float)):
        return _("a number")
    if isinstance(value, str):
        return _("text")
    if isinstance(value, list):
        return _("a list")
    if value is None:
        return _("nothing")
    return _("a %(type)s") % {"type": type(value).__name__}


def _check_scalar(f: Field, op: str, value: object, index: int | None) -> Scalar:
    """``value`` checked against the field's type; numbers normalised (1e7 → 10000000)."""
    part = "value" if index is None else f"value[{index}]"
    if f.type in (FieldType.NUMBER, FieldType.DAYS):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _LeafError(
                part,
                _("'%(field)s' is a number; %(op)s needs a number, not %(got)s")
                % {"field": f.name, "op": op, "got": _describe_value(value)},
                index,
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise _LeafError(part, _("the number must be finite"), index)
        number = _tidy_number(value)
        if f.type is FieldType.DAYS and not isinstance(number, int):
            raise _LeafError(
                part,
                _("'%(field)s' counts whole days; %(value)s is not a whole number")
                % {"field": f.name, "value": value},
                index,
            )
        if abs(number) > 10**15:
            raise _LeafError(part, _("the number %(value)s is too large") % {"value": value}, index)
        return number
    if f.type is FieldType.BOOLEAN:
        if not isinstance(value, bool):
            raise _LeafError(
                part,
                _("'%(field)s' is yes/no; compare it with true or false, not %(got)s")
                % {"field": f.name, "got": _describe_value(value)},
                index,
            )
        return value
    # text, choice, codes
    if not isinstance(value, str):
        hint = ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            hint = _(' (put text in quotes: "%(value)s")') % {"value": value}
        raise _LeafError(
            part,
            _("'%(field)s' is text; %(op)s needs text, not %(got)s%(hint)s")
            % {"field": f.name, "op": op, "got": _describe_value(value), "hint": hint},
            index,
        )
    if "\x00" in value:
        raise _LeafError(part, _("text cannot contain NUL characters"), index)
    if len(value) > MAX_TEXT_LENGTH:
        raise _LeafError(
            part, _("text longer than %(max)d characters") % {"max": MAX_TEXT_LENGTH}, index
        )
    if f.type is FieldType.CHOICE and value not in f.choices:
        raise _LeafError(
            part,
            _("'%(value)s' is not a %(field)s; use one of %(choices)s%(hint)s")
            % {
                "value": value,
                "field": f.name,
                "choices": ", ".join(f.choices),
                "hint": _did_you_mean(value, f.choices),
            },
            index,
        )
    if op == "contains" and not value:
        raise _LeafError(part, _("contains needs some text to look for"), index)
    return value


def _tidy_number(value: int | float) -> int | float:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _check_leaf(f: Field, op: str, value: object, *, has_value: bool) -> dict[str, Any]:
    """A normalised leaf, or ``_LeafError``."""
    if op not in OPERATORS:
        raise _LeafError(
            "op",
            _("unknown operator '%(op)s'; use one of %(ops)s")
            % {"op": op, "ops": ", ".join(f.operators)},
        )
    if op not in f.operators:
        if op in _ORDER_OPS and f.type in (FieldType.TEXT, FieldType.CHOICE, FieldType.CODES):
            message = _("'%(field)s' is text; %(op)s compares numbers. Use %(ops)s") % {
                "field": f.name,
                "op": op,
                "ops": ", ".join(f.operators),
            }
        else:
            message = _("'%(field)s' (%(type)s) cannot be used with %(op)s; use %(ops)s") % {
                "field": f.name,
                "type": f.type_label,
                "op": op,
                "ops": ", ".join(f.operators),
            }
        raise _LeafError("op", message)
    if op in _EMPTY_OPS:
        if has_value:
            raise _LeafError("value", _("%(op)s takes no value") % {"op": op})
        return {"field": f.name, "op": op}
    if not has_value:
        raise _LeafError("value", _("%(op)s needs a value") % {"op": op})
    if op in _LIST_OPS:
        if not isinstance(value, list):
            raise _LeafError(
                "value",
                _('%(op)s needs a list in parentheses, e.g. %(field)s %(op)s ("a", "b")')
                % {"op": op, "field": f.name},
            )
        if not value:
            raise _LeafError("value", _("%(op)s needs at least one value") % {"op": op})
        if len(value) > MAX_LIST_ITEMS:
            raise _LeafError(
                "value", _("a list of more than %(max)d values") % {"max": MAX_LIST_ITEMS}
            )
        items = [_check_scalar(f, op, item, index) for index, item in enumerate(value)]
        return {"field": f.name, "op": op, "value": items}
    if isinstance(value, list):
        raise _LeafError(
            "value",
            _("%(op)s compares with one value; to test a list use in") % {"op": op},
        )
    return {"field": f.name, "op": op, "value": _check_scalar(f, op, value, None)}


# ---------------------------------------------------------------------------------------
# Tokenizer


class _Kind(StrEnum):
    NUMBER = "number"
    STRING = "string"
    NAME = "name"
    OP = "op"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    END = "end"


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str
    position: int
    value: Any = None

    def is_word(self, *words: str) -> bool:
        return self.kind is _Kind.NAME and self.text.lower() in words


_KEYWORDS = ("and", "or", "not", "in", "contains", "is", "empty", "true", "false")
_OP_ALIASES = {"==": "=", "≠": "!=", "<>": "!=", "≤": "<=", "≥": ">=", "＝": "="}
_TWO_CHAR_OPS = ("<=", ">=", "!=", "==", "<>")
_ONE_CHAR_OPS = ("=", "<", ">", "≠", "≤", "≥", "＝")
_QUOTES = {'"': '"', "'": "'", "“": "”", "「": "」"}


def _is_name_start(char: str) -> bool:
    return char.isascii() and (char.isalpha() or char == "_")


def _is_name_char(char: str) -> bool:
    return char.isascii() and (char.isalnum() or char in "_.-")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        start = i
        if char in "(（":
            tokens.append(_Token(_Kind.LPAREN, char, start))
            i += 1
        elif char in ")）":
            tokens.append(_Token(_Kind.RPAREN, char, start))
            i += 1
        elif char in ",、，":
            tokens.append(_Token(_Kind.COMMA, char, start))
            i += 1
        elif text.startswith(_TWO_CHAR_OPS, i):
            op = text[i : i + 2]
            tokens.append(_Token(_Kind.OP, _OP_ALIASES.get(op, op), start))
            i += 2
        elif char in _ONE_CHAR_OPS:
            tokens.append(_Token(_Kind.OP, _OP_ALIASES.get(char, char), start))
            i += 1
        elif char == "!":
            raise ConditionError(_("'!' must be followed by '=' (not equal)"), position=start)
        elif char in _QUOTES:
            i, value = _read_string(text, i, _QUOTES[char])
            tokens.append(_Token(_Kind.STRING, text[start:i], start, value))
        elif char.isdigit() or (char in "-." and i + 1 < n and text[i + 1].isdigit()):
            i, number = _read_number(text, i)
            tokens.append(_Token(_Kind.NUMBER, text[start:i], start, number))
        elif _is_name_start(char):
            while i < n and _is_name_char(text[i]):
                i += 1
            word = text[start:i]
            tokens.append(_Token(_Kind.NAME, word, start))
        elif char.isalpha():
            while i < n and text[i].isalnum():
                i += 1
            raise ConditionError(
                _('unquoted text %(text)s; put text in quotes: "%(text)s"')
                % {"text": text[start:i]},
                position=start,
            )
        else:
            raise ConditionError(
                _("unexpected character '%(char)s'") % {"char": char}, position=start
            )
    tokens.append(_Token(_Kind.END, "", n))
    return tokens


def _read_string(text: str, start: int, closing: str) -> tuple[int, str]:
    i = start + 1
    parts: list[str] = []
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            parts.append(text[i + 1])
            i += 2
            continue
        if char == closing:
            return i + 1, "".join(parts)
        parts.append(char)
        i += 1
    raise ConditionError(
        _("the text that starts here is never closed; add %(quote)s") % {"quote": closing},
        position=start,
    )


def _read_number(text: str, start: int) -> tuple[int, int | float]:
    i = start
    if text[i] == "-":
        i += 1
    while i < len(text) and (text[i].isdigit() or text[i] in "_."):
        i += 1
    if i < len(text) and text[i] in "eE":
        j = i + 1
        if j < len(text) and text[j] in "+-":
            j += 1
        if j < len(text) and text[j].isdigit():
            i = j
            while i < len(text) and text[i].isdigit():
                i += 1
    raw = text[start:i]
    if i < len(text) and (text[i].isalpha() or text[i] == "_"):
        raise ConditionError(
            _("'%(text)s' is not a number") % {"text": raw + text[i]}, position=start
        )
    try:
        if "." in raw or "e" in raw.lower():
            if raw.startswith(("_", "-_")) or "__" in raw or raw.endswith("_"):
                raise ValueError(raw)
            return i, _tidy_number(float(raw))
        return i, int(raw)
    except ValueError:
        raise ConditionError(
            _("'%(text)s' is not a number") % {"text": raw}, position=start
        ) from None


# ---------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, text: str, lookup: _FieldLookup) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.lookup = lookup
        self.depth = 0
        self.nodes = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def at(self, kind: _Kind) -> bool:
        return self.tokens[self.index].kind is kind

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind is not _Kind.END:
            self.index += 1
        return token

    def found(self, token: _Token) -> str:
        if token.kind is _Kind.END:
            return _("the end of the rule")
        return f"'{token.text}'"

    def fail(self, message: str, token: _Token | None = None) -> ConditionError:
        return ConditionError(message, position=(token or self.token).position)

    def count_node(self, token: _Token) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(
                _("the rule is too long (more than %(max)d conditions)") % {"max": MAX_NODES},
                token,
            )

    def parse(self) -> dict[str, Any]:
        if self.at(_Kind.END):
            raise ConditionError(_("the rule is empty; write a condition, or true for everyone"))
        tree = self.parse_or()
        if not self.at(_Kind.END):
            if self.at(_Kind.RPAREN):
                raise self.fail(_("')' without a matching '('"))
            raise self.fail(
                _("expected and, or or the end of the rule, found %(found)s")
                % {"found": self.found(self.token)}
            )
        return tree

    def parse_or(self) -> dict[str, Any]:
        items = [self.parse_and()]
        while self.token.is_word("or"):
            self.advance()
            items.append(self.parse_and())
        return _combine("any", items)

    def parse_and(self) -> dict[str, Any]:
        items = [self.parse_not()]
        while self.token.is_word("and"):
            self.advance()
            items.append(self.parse_not())
        return _combine("all", items)

    def parse_not(self) -> dict[str, Any]:
        if self.token.is_word("not"):
            token = self.advance()
            self.enter(token)
            inner = self.parse_not()
            self.depth -= 1
            self.count_node(token)
            return {"not": inner}
        return self.parse_primary()

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(
                _("the rule nests too deeply (more than %(max)d levels)") % {"max": MAX_DEPTH},
                token,
            )

    def parse_primary(self) -> dict[str, Any]:
        token = self.token
        if token.kind is _Kind.LPAREN:
            self.advance()
            self.enter(token)
            if self.at(_Kind.RPAREN):
                raise self.fail(_("empty parentheses; write a condition inside"))
            inner = self.parse_or()
            self.depth -= 1
            if not self.at(_Kind.RPAREN):
                raise self.fail(
                    _("expected ')' to close the '(' at position %(open)d, found %(found)s")
                    % {"open": token.position + 1, "found": self.found(self.token)}
                )
            self.advance()
            return inner
        if token.is_word("true"):
            self.advance()
            return {}
        if token.is_word("false"):
            self.advance()
            return {"any": []}
        if token.kind is _Kind.NAME and token.text.lower() not in _KEYWORDS:
            return self.parse_comparison()
        if token.kind is _Kind.END:
            raise self.fail(_("the rule ends too early; a condition is missing"))
        if token.kind in (_Kind.STRING, _Kind.NUMBER):
            raise self.fail(
                _("expected a field name before %(found)s, e.g. arr >= 10000000")
                % {"found": self.found(token)}
            )
        raise self.fail(_("expected a condition, found %(found)s") % {"found": self.found(token)})

    def parse_comparison(self) -> dict[str, Any]:
        name_token = self.advance()
        self.count_node(name_token)
        self.value_tokens = []
        try:
            f = self.lookup.resolve(name_token.text)
        except _LeafError as error:
            raise self.fail(error.message, name_token) from None
        op_token = self.token
        has_value = True
        value: object = None
        if op_token.kind is _Kind.OP:
            self.advance()
            op = op_token.text
            value = self.parse_value(f)
        elif op_token.is_word("in"):
            self.advance()
            op = "in"
            value = self.parse_list(f, op)
        elif op_token.is_word("not") and self.peek().is_word("in"):
            self.advance()
            self.advance()
            op = "not in"
            value = self.parse_list(f, op)
        elif op_token.is_word("contains"):
            self.advance()
            op = "contains"
            value = self.parse_value(f)
        elif op_token.is_word("is"):
            self.advance()
            negated = False
            if self.token.is_word("not"):
                self.advance()
                negated = True
            if not self.token.is_word("empty"):
                raise self.fail(
                    _("expected 'is empty' or 'is not empty', found %(found)s")
                    % {"found": self.found(self.token)}
                )
            self.advance()
            op = "is not empty" if negated else "is empty"
            has_value = False
        elif f.type is FieldType.BOOLEAN:
            # A bare yes/no field: "onboarding_completed".
            return {"field": f.name, "op": "=", "value": True}
        else:
            raise self.fail(
                _("expected an operator after '%(field)s' (%(ops)s), found %(found)s")
                % {
                    "field": name_token.text,
                    "ops": ", ".join(f.operators),
                    "found": self.found(op_token),
                },
                op_token,
            )
        try:
            return _check_leaf(f, op, value, has_value=has_value)
        except _LeafError as error:
            if error.part == "op":
                at = op_token
            elif error.index is not None and error.index < len(self.value_tokens):
                at = self.value_tokens[error.index]
            else:
                at = self.value_tokens[0] if self.value_tokens else op_token
            raise self.fail(error.message, at) from None

    def peek(self) -> _Token:
        return self.tokens[min(self.index + 1, len(self.tokens) - 1)]

    value_tokens: list[_Token]

    def parse_value(self, f: Field) -> Scalar | list[Scalar]:
        self.value_tokens = []
        if self.at(_Kind.LPAREN):
            # "x = (1, 2)": parse the list so the leaf check says "use in".
            return self.parse_list(f, "=")
        return self.parse_scalar()

    def parse_scalar(self) -> Scalar:
        token = self.token
        if token.kind in (_Kind.NUMBER, _Kind.STRING):
            self.advance()
            self.value_tokens.append(token)
            return cast(Scalar, token.value)
        if token.is_word("true", "false"):
            self.advance()
            self.value_tokens.append(token)
            return token.text.lower() == "true"
        if token.kind is _Kind.NAME:
            raise self.fail(
                _(
                    'expected a value (a number, "quoted text", true or false), found '
                    '%(found)s; put text in quotes: "%(text)s"'
                )
                % {"found": self.found(token), "text": token.text}
            )
        raise self.fail(
            _('expected a value (a number, "quoted text", true or false), found %(found)s')
            % {"found": self.found(token)}
        )

    def parse_list(self, f: Field, op: str) -> list[Scalar]:
        self.value_tokens = []
        if not self.at(_Kind.LPAREN):
            raise self.fail(
                _(
                    '%(op)s needs a list in parentheses, e.g. %(field)s %(op)s ("a", "b"); found %(found)s'
                )
                % {"op": op, "field": f.name, "found": self.found(self.token)}
            )
        open_token = self.advance()
        items: list[Scalar] = []
        while True:
            if self.at(_Kind.RPAREN) and not items:
                break
            items.append(self.parse_scalar())
            if len(items) > MAX_LIST_ITEMS:
                raise self.fail(_("a list of more than %(max)d values") % {"max": MAX_LIST_ITEMS})
            if self.at(_Kind.COMMA):
                self.advance()
                if self.at(_Kind.RPAREN):
                    break
                continue
            if self.at(_Kind.RPAREN):
                break
            raise self.fail(
                _(
                    "expected ',' or ')' in the list that starts at position %(open)d, found %(found)s"
                )
                % {"open": open_token.position + 1, "found": self.found(self.token)}
            )
        self.advance()
        if not items:
            self.value_tokens = [open_token]
        return items


def _combine(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """``all``/``any`` of ``items``, flattened, with one item standing for itself."""
    flat: list[dict[str, Any]] = []
    for item in items:
        if key == "any" and item == {}:
            return {}  # "true or x" is true
        if key == "all" and item == {"any": []}:
            return {"any": []}  # "false and x" is false
        if key in item and len(item) == 1:
            flat.extend(item[key])
        elif key == "all" and item == {}:
            continue  # "true and x" is x
        else:
            flat.append(item)
    if key == "all" and not flat:
        return {}
    if len(flat) == 1:
        return flat[0]
    return {key: flat}


def parse(expression: str, *, metric_keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The condition tree of ``expression``; raises ``ConditionError`` with the position.

    Metric keys are checked against the metric definitions in the database (loaded only if
    the rule names a metric) unless ``metric_keys`` is given.
    """
    if not isinstance(expression, str):
        raise ConditionError(_("the rule must be text"))
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(
            _("the rule is too long (more than %(max)d characters)")
            % {"max": MAX_EXPRESSION_LENGTH}
        )
    return _Parser(expression, _FieldLookup(metric_keys)).parse()


# ---------------------------------------------------------------------------------------
# Trees from JSON


def validate(tree: object, *, metric_keys: Iterable[str] | None = None) -> dict[str, Any]:
    """``tree`` checked and normalised (numbers tidied, single-item groups unwrapped).

    Raises ``ConditionError`` whose ``path`` names the offending node (``all[1].value``).
    """
    counter = [0]
    return _validate_node(tree, "", 0, _FieldLookup(metric_keys), counter)


def _join(path: str, part: str) -> str:
    if not path:
        return part
    return f"{path}{part}" if part.startswith("[") else f"{path}.{part}"


def _validate_node(
    node: object, path: str, depth: int, lookup: _FieldLookup, counter: list[int]
) -> dict[str, Any]:
    here = path or _("rule")
    if depth > MAX_DEPTH:
        raise ConditionError(
            _("the rule nests too deeply (more than %(max)d levels)") % {"max": MAX_DEPTH},
            path=here,
        )
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise ConditionError(
            _("the rule is too long (more than %(max)d conditions)") % {"max": MAX_NODES},
            path=here,
        )
    if not isinstance(node, Mapping):
        raise ConditionError(
            _("expected an object ({}, all, any, not or a field comparison), not %(got)s")
            % {"got": _describe_value(node)},
            path=here,
        )
    keys = set(node)
    if not keys:
        return {}
    for key in ("all", "any"):
        if key in keys:
            if keys != {key}:
                raise ConditionError(
                    _("'%(key)s' cannot be combined with %(others)s")
                    % {"key": key, "others": ", ".join(sorted(keys - {key}))},
                    path=here,
                )
            items = node[key]
            if not isinstance(items, list):
                raise ConditionError(
                    _("'%(key)s' must be a list of conditions") % {"key": key},
                    path=_join(path, key),
                )
            checked = [
                _validate_node(item, _join(path, f"{key}[{index}]"), depth + 1, lookup, counter)
                for index, item in enumerate(items)
            ]
            if key == "any" and not checked:
                return {"any": []}
            return _combine(key, checked)
    if "not" in keys:
        if keys != {"not"}:
            raise ConditionError(
                _("'not' cannot be combined with %(others)s")
                % {"others": ", ".join(sorted(keys - {"not"}))},
                path=here,
            )
        return {"not": _validate_node(node["not"], _join(path, "not"), depth + 1, lookup, counter)}
    if "field" not in keys:
        raise ConditionError(
            _("unknown keys %(keys)s; expected all, any, not or field/op/value")
            % {"keys": ", ".join(sorted(str(k) for k in keys))},
            path=here,
        )
    extra = keys - {"field", "op", "value"}
    if extra:
        raise ConditionError(
            _("unknown keys %(keys)s in a comparison") % {"keys": ", ".join(sorted(extra))},
            path=here,
        )
    name = node["field"]
    if not isinstance(name, str):
        raise ConditionError(_("the field must be a name"), path=_join(path, "field"))
    op = node.get("op", "=")
    if not isinstance(op, str):
        raise ConditionError(_("the operator must be text"), path=_join(path, "op"))
    try:
        f = lookup.resolve(name)
        if "value" not in node and "op" not in node and f.type is FieldType.BOOLEAN:
            return {"field": f.name, "op": "=", "value": True}
        return _check_leaf(f, op, node.get("value"), has_value="value" in node)
    except _LeafError as error:
        raise ConditionError(error.message, path=_join(path, error.part)) from None


def is_everyone(tree: Mapping[str, Any]) -> bool:
    """Whether the tree is the empty condition that matches every customer."""
    return not tree or tree == {"all": []}


# ---------------------------------------------------------------------------------------
# Back to text


def _render_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def to_expression(tree: Mapping[str, Any]) -> str:
    """The text of a (valid) tree, with as few parentheses as the precedence allows."""
    return _render(tree, parent="or")


def _render(node: Mapping[str, Any], parent: str) -> str:
    if not node or node == {"all": []}:
        return "true"
    if "any" in node:
        items = node["any"]
        if not items:
            return "false"
        text = " or ".join(_render(item, "or") for item in items)
        return text if parent == "or" else f"({text})"
    if "all" in node:
        text = " and ".join(_render(item, "and") for item in node["all"])
        return text if parent in ("or", "and") else f"({text})"
    if "not" in node:
        inner = node["not"]
        text = _render(inner, "not")
        if "field" in inner and not _is_bare(inner):
            text = f"({text})"
        return f"not {text}"
    if _is_bare(node):
        return str(node["field"])
    op = node["op"]
    if op in _EMPTY_OPS:
        return f"{node['field']} {op}"
    value = node["value"]
    if isinstance(value, list):
        rendered = f"({', '.join(_render_scalar(item) for item in value)})"
    else:
        rendered = _render_scalar(value)
    return f"{node['field']} {op} {rendered}"


def _is_bare(node: Mapping[str, Any]) -> bool:
    f = FIELDS.get(str(node.get("field")))
    return (
        f is not None
        and f.type is FieldType.BOOLEAN
        and node.get("op") == "="
        and node.get("value") is True
    )


# ---------------------------------------------------------------------------------------
# Compiling to the ORM


@dataclass
class CompiledCondition:
    """Annotations to ``alias()`` on a Customer queryset and the ``Q`` that filters it."""

    aliases: dict[str, Any] = field(default_factory=dict)
    q: Q = field(default_factory=Q)

    def apply(self, customers: QuerySet[Customer]) -> QuerySet[Customer]:
        if self.aliases:
            customers = customers.alias(**self.aliases)
        return customers.filter(self.q)


_NOTHING = Q(pk__in=[])
_EVERYONE = Q(pk__isnull=False)


class _Compiler:
    def __init__(self, day: date) -> None:
        self.day = day
        self.aliases: dict[str, Any] = {}
        self.metric_aliases: dict[str, str] = {}

    # -- the customers' contract values, as correlated subqueries -----------------------

    def active(self) -> QuerySet[Subscription]:
        # KPI.md's "in service on d": start <= d < end, or open-ended.
        return Subscription.objects.filter(active_on(self.day), customer=OuterRef("pk")).order_by()

    def total(self, expression: Any, output: Any) -> Any:
        totals = (
            self.active()
            .values("customer_id")
            .annotate(total=Sum(expression, output_field=output))
            .values("total")[:1]
        )
        return Coalesce(Subquery(totals, output_field=output), Value(0), output_field=output)

    def alias(self, name: str) -> str:
        """The alias holding field ``name`` (added on first use)."""
        key = f"kz_{name}"
        if key in self.aliases:
            return key
        money = DecimalField(max_digits=20, decimal_places=2)
        if name == "mrr":
            self.aliases[key] = self.total(F("mrr"), money)
        elif name == "arr":
            self.aliases[key] = self.total(F("mrr") * Value(12), money)
        elif name == "seats":
            self.aliases[key] = self.total(F("quantity"), money)
        elif name == "days_to_renewal":
            ends = (
                self.active()
                .filter(end_date__isnull=False)
                .values("customer_id")
                .annotate(first=Min("end_date"))
                .values("first")[:1]
            )
            self.aliases[key] = Subquery(ends, output_field=DateField())
        elif name == "revenue_to_date":
            self.aliases[key] = self.revenue_to_date()
        elif name in ("health", "health_band"):
            # The latest stored score on or before the day; none (or "not scored") is missing.
            latest = HealthScore.objects.filter(customer=OuterRef("pk"), day__lte=self.day)
            latest = latest.order_by("-day")
            if name == "health":
                self.aliases[key] = Subquery(latest.values("score")[:1], output_field=FloatField())
            else:
                self.aliases[key] = Coalesce(
                    Subquery(latest.values("band")[:1]), Value(""), output_field=CharField()
                )
        elif name == "onboarding_completed":
            until = timezone.make_aware(datetime.combine(self.day + timedelta(days=1), time(0, 0)))
            self.aliases[key] = Exists(
                TimelineEntry.objects.filter(
                    customer=OuterRef("pk"),
                    kind=TimelineKind.ONBOARDING_COMPLETED,
                    occurred_at__lt=until,
                )
            )
        else:  # pragma: no cover - every field is handled above or by its column
            raise ValueError(name)
        return key

    def revenue_to_date(self) -> Any:
        """Σ mrr × months served from start until the end date or today, whichever is first.

        Months are whole calendar months plus the day difference / 30, so the figure is
        computed the same way on SQLite and PostgreSQL (an estimate, not billing).
        """
        until = Least(
            Coalesce(F("end_date"), Value(self.day)), Value(self.day), output_field=DateField()
        )
        whole = (ExtractYear(until) - ExtractYear("start_date")) * Value(12) + (
            ExtractMonth(until) - ExtractMonth("start_date")
        )
        months = Cast(whole, FloatField()) + Cast(
            ExtractDay(until) - ExtractDay("start_date"), FloatField()
        ) / Value(30.0)
        served = (
            Subscription.objects.filter(customer=OuterRef("pk"), start_date__lte=self.day)
            .order_by()
            .values("customer_id")
            .annotate(total=Sum(Cast("mrr", FloatField()) * months, output_field=FloatField()))
            .values("total")[:1]
        )
        return Coalesce(
            Subquery(served, output_field=FloatField()), Value(0.0), output_field=FloatField()
        )

    def metric(self, key: str) -> str:
        from kizuna.analytics.models import CustomerMetric

        if key not in self.metric_aliases:
            name = f"kz_metric_{len(self.metric_aliases)}"
            self.metric_aliases[key] = name
            self.aliases[name] = Subquery(
                CustomerMetric.objects.filter(customer=OuterRef("pk"), metric__key=key).values(
                    "value"
                )[:1],
                output_field=FloatField(),
            )
        return self.metric_aliases[key]

    # -- nodes --------------------------------------------------------------------------

    def node(self, node: Mapping[str, Any]) -> Q:
        if not node:
            return _EVERYONE  # a real condition: Q() would vanish inside "or"
        if "all" in node:
            result = Q()
            for item in node["all"]:
                result &= self.node(item)
            return result
        if "any" in node:
            items = node["any"]
            if not items:
                return _NOTHING
            result = self.node(items[0])
            for item in items[1:]:
                result |= self.node(item)
            return result
        if "not" in node:
            return ~self.node(node["not"])
        return self.leaf(node)

    def leaf(self, node: Mapping[str, Any]) -> Q:
        name: str = node["field"]
        op: str = node["op"]
        value = node.get("value")
        if name.startswith(_METRIC_PREFIX):
            return _compare(self.metric(name[len(_METRIC_PREFIX) :]), op, value, float)
        f = FIELDS[name]
        if name in _COLUMNS:
            column = _COLUMNS[name]
            if f.type is FieldType.NUMBER:
                return _compare(column, op, value, _same)
            return _compare_text(column, op, value)
        if name in ("arr", "mrr", "seats"):
            return _compare(self.alias(name), op, value, _decimal)
        if name in ("revenue_to_date", "health"):
            return _compare(self.alias(name), op, value, float)
        if name == "health_band":
            return _compare_text(self.alias(name), op, value)
        if name == "days_since_start":
            # days = today − first start ⇔ first start = today − days (order reversed).
            return _compare_days("first_start_date", op, value, self.day, reverse=True)
        if name == "days_to_renewal":
            return _compare_days(self.alias(name), op, value, self.day, reverse=False)
        if name == "onboarding_completed":
            wanted = bool(value) if op == "=" else not bool(value)
            return Q(**{self.alias(name): wanted})
        if name in ("plan", "product"):
            return self.codes(name, op, value)
        raise ConditionError(  # pragma: no cover - validate() rejects these
            _("the field '%(name)s' is not available yet") % {"name": name}
        )

    def codes(self, name: str, op: str, value: Any) -> Q:
        column = "plan__code" if name == "plan" else "product__code"
        present = Q(Exists(self.active().filter(**{f"{column}__isnull": False})))
        if op == "=":
            return Q(Exists(self.active().filter(**{column: value})))
        if op == "in":
            return Q(Exists(self.active().filter(**{f"{column}__in": value})))
        if op == "contains":
            return Q(Exists(self.active().filter(**{f"{column}__icontains": value})))
        if op == "!=":
            return present & ~Q(Exists(self.active().filter(**{column: value})))
        if op == "not in":
            return present & ~Q(Exists(self.active().filter(**{f"{column}__in": value})))
        if op == "is empty":
            return ~present
        return present  # is not empty


_COLUMNS: dict[str, str] = {
    "name": "name",
    "industry": "industry",
    "region": "region",
    "employees": "employee_count",
    "segment": "segment",
    "stage": "lifecycle_stage",
    "touch_model": "touch_model",
}

_LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "in": "in"}
_REVERSED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _same(value: Any) -> Any:
    return value


def _decimal(value: int | float) -> Decimal:
    return Decimal(str(value))


def _compare(column: str, op: str, value: Any, convert: Callable[[Any], Any]) -> Q:
    """A null-safe comparison: a missing value is never matched (but is by ``not``)."""
    present = Q(**{f"{column}__isnull": False})
    if op == "is empty":
        return ~present
    if op == "is not empty":
        return present
    if op in ("in", "not in"):
        converted: Any = [convert(item) for item in value]
    else:
        converted = convert(value)
    if op == "!=":
        return present & ~Q(**{column: converted})
    if op == "not in":
        return present & ~Q(**{f"{column}__in": converted})
    return present & Q(**{f"{column}__{_LOOKUPS[op]}": converted})


def _compare_text(column: str, op: str, value: Any) -> Q:
    """Text comparison where empty text is the missing value."""
    present = ~Q(**{column: ""})
    if op == "is empty":
        return Q(**{column: ""})
    if op == "is not empty":
        return present
    if op == "=":
        return Q(**{column: value})
    if op == "in":
        return Q(**{f"{column}__in": value})
    if op == "contains":
        return Q(**{f"{column}__icontains": value})
    if op == "!=":
        return present & ~Q(**{column: value})
    return present & ~Q(**{f"{column}__in": value})  # not in


def _compare_days(column: str, op: str, value: Any, day: date, *, reverse: bool) -> Q:
    """Compare a day count with ``value`` by comparing the date ``column`` with day ± value."""

    def to_date(days: int) -> date:
        return day - timedelta(days=days) if reverse else day + timedelta(days=days)

    if op in _REVERSED and reverse:
        op = _REVERSED[op]
    return _compare(column, op, value, to_date)


def compile_condition(tree: Mapping[str, Any], *, as_of: date | None = None) -> CompiledCondition:
    """The aliases and ``Q`` for a *valid* tree, to combine with other Customer filters.

    ``as_of`` is "today" for contract values and day counts (default: the local date).
    """
    compiler = _Compiler(as_of or timezone.localdate())
    q = Q() if is_everyone(tree) else compiler.node(tree)
    return CompiledCondition(aliases=compiler.aliases, q=q)


@dataclass
class CompiledConditions:
    """Several trees compiled together: shared aliases and one non-empty ``Q`` per tree.

    Each ``Q`` can go into ``When(...)`` (an everyone-tree becomes ``pk IS NOT NULL``), so
    one query can tell, per customer, which of many rules it satisfies.
    """

    aliases: dict[str, Any]
    conditions: list[Q]

    def alias(self, customers: QuerySet[Customer]) -> QuerySet[Customer]:
        return customers.alias(**self.aliases) if self.aliases else customers


def compile_conditions(
    trees: Iterable[Mapping[str, Any]], *, as_of: date | None = None
) -> CompiledConditions:
    """Compile *valid* trees for use in one query (e.g. ``Case(When(q1, ...), When(q2, ...))``)."""
    compiler = _Compiler(as_of or timezone.localdate())
    conditions = [compiler.node(tree) for tree in trees]
    return CompiledConditions(aliases=compiler.aliases, conditions=conditions)


def matching(
    tree: Mapping[str, Any],
    customers: QuerySet[Customer] | None = None,
    *,
    as_of: date | None = None,
) -> QuerySet[Customer]:
    """The customers (of ``customers``, default all) that satisfy ``tree``, as one query.

    The tree is validated first without touching the database (an unknown metric key
    matches nobody here; ``parse``/``validate`` reject it). Contract values are those of the
    subscriptions active on ``as_of`` (default today): ``arr`` = 12 × Σ mrr, amounts summed
    as stored — currencies are not converted. ``revenue_to_date`` is the LTV-to-date
    estimate (Σ mrr × months served up to ``as_of``).
    """
    checked = _validate_node(tree, "", 0, _FieldLookup(None, any_metric=True), [0])
    base = customers if customers is not None else Customer.objects.all()
    return compile_condition(checked, as_of=as_of).apply(base)
