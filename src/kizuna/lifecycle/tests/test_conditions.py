"""The condition language: parsing with positioned errors, tree validation, text round trips
and set-based matching over hand-made customers whose answers are computed by hand."""

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.analytics.metric_defaults import ensure_default_metrics
from kizuna.analytics.models import CustomerMetric, MetricDefinition
from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import Customer, Plan, Product, Subscription
from kizuna.lifecycle.conditions import (
    FIELDS,
    MAX_DEPTH,
    MAX_EXPRESSION_LENGTH,
    ConditionError,
    describe_fields,
    matching,
    parse,
    to_expression,
    validate,
)

AS_OF = dt.date(2026, 6, 15)
METRICS = ["seat_utilisation_28d", "active_days_28d"]


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def _error(expression: str) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        parse(expression, metric_keys=METRICS)
    return caught.value


# ---------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("expression", "tree"),
    [
        (
            "arr >= 10000000 or employees >= 1000",
            {
                "any": [
                    {"field": "arr", "op": ">=", "value": 10000000},
                    {"field": "employees", "op": ">=", "value": 1000},
                ]
            },
        ),
        (
            'industry in ("製造業", "小売")',
            {"field": "industry", "op": "in", "value": ["製造業", "小売"]},
        ),
        (
            'not (touch_model = "tech") and metric.seat_utilisation_28d >= 0.8',
            {
                "all": [
                    {"not": {"field": "touch_model", "op": "=", "value": "tech"}},
                    {"field": "metric.seat_utilisation_28d", "op": ">=", "value": 0.8},
                ]
            },
        ),
        (
            "onboarding_completed or days_since_start >= 120",
            {
                "any": [
                    {"field": "onboarding_completed", "op": "=", "value": True},
                    {"field": "days_since_start", "op": ">=", "value": 120},
                ]
            },
        ),
        ("true", {}),
        ("TRUE", {}),
        ("false", {"any": []}),
        ("arr >= 10_000_000", {"field": "arr", "op": ">=", "value": 10000000}),
        ("arr >= 1e7", {"field": "arr", "op": ">=", "value": 10000000}),
        ("arr >= 2.5E6", {"field": "arr", "op": ">=", "value": 2500000}),
        ("mrr > -1", {"field": "mrr", "op": ">", "value": -1}),
        ("employees == 5", {"field": "employees", "op": "=", "value": 5}),
        ("employees ≥ 5", {"field": "employees", "op": ">=", "value": 5}),
        ("region = '関東'", {"field": "region", "op": "=", "value": "関東"}),
        ('name = "say \\"hi\\""', {"field": "name", "op": "=", "value": 'say "hi"'}),
        ('name contains "株式"', {"field": "name", "op": "contains", "value": "株式"}),
        ("employees is empty", {"field": "employees", "op": "is empty"}),
        ("industry is not empty", {"field": "industry", "op": "is not empty"}),
        ('plan not in ("a", "b",)', {"field": "plan", "op": "not in", "value": ["a", "b"]}),
        (
            "onboarding_completed = false",
            {"field": "onboarding_completed", "op": "=", "value": False},
        ),
        (
            "not not onboarding_completed",
            {"not": {"not": {"field": "onboarding_completed", "op": "=", "value": True}}},
        ),
        # Same-operator groups are flattened; "true and x" is x; "true or x" is true.
        (
            "employees > 1 and (employees < 9 and employees != 5)",
            {
                "all": [
                    {"field": "employees", "op": ">", "value": 1},
                    {"field": "employees", "op": "<", "value": 9},
                    {"field": "employees", "op": "!=", "value": 5},
                ]
            },
        ),
        ("true and employees > 1", {"field": "employees", "op": ">", "value": 1}),
        ("true or employees > 1", {}),
        ("false and employees > 1", {"any": []}),
        ("　employees　>　1　", {"field": "employees", "op": ">", "value": 1}),  # full-width spaces
    ],
)
def test_expressions_parse_to_their_condition_tree(expression: str, tree: dict[str, Any]) -> None:
    assert parse(expression, metric_keys=METRICS) == tree


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    a = {"field": "employees", "op": "=", "value": 1}
    b = {"field": "employees", "op": "=", "value": 2}
    c = {"field": "employees", "op": "=", "value": 3}
    assert parse("employees = 1 or employees = 2 and employees = 3") == {
        "any": [a, {"all": [b, c]}]
    }
    assert parse("(employees = 1 or employees = 2) and employees = 3") == {
        "all": [{"any": [a, b]}, c]
    }
    assert parse("not employees = 1 and employees = 2") == {"all": [{"not": a}, b]}
    assert parse("employees = 1 and employees = 2 or employees = 3") == {
        "any": [{"all": [a, b]}, c]
    }


@pytest.mark.parametrize(
    ("expression", "position", "message"),
    [
        (
            "arr >= 10000000 or emploees >= 1000",
            19,
            "position 20: unknown field 'emploees' (did you mean 'employees'?)",
        ),
        ('industry > "x"', 9, "'industry' is text; > compares numbers"),
        ('industry in "x"', 12, 'in needs a list in parentheses, e.g. industry in ("a", "b")'),
        ("employees in ()", 13, "in needs at least one value"),
        ("employees = (1, 2)", 13, "= compares with one value; to test a list use in"),
        ('employees >= "many"', 13, "'employees' is a number; >= needs a number, not text"),
        ("industry = 5", 11, "'industry' is text; = needs text, not a number (put text in quotes"),
        ("industry = 製造業", 11, 'unquoted text 製造業; put text in quotes: "製造業"'),
        ("industry = retail", 11, "found 'retail'; put text in quotes: \"retail\""),
        ('stage = "adoptoin"', 8, "'adoptoin' is not a stage; use one of onboarding, adoption"),
        ('stage = "adoptoin"', 8, "(did you mean 'adoption'?)"),
        ('touch_model in ("high", "tehc")', 24, "'tehc' is not a touch_model"),
        ("onboarding_completed = 1", 23, "'onboarding_completed' is yes/no"),
        ("days_since_start > 1.5", 19, "counts whole days; 1.5 is not a whole number"),
        ("metric.seat_utilization_28d > 0.5", 0, "unknown metric 'seat_utilization_28d'"),
        ("metric.seat_utilization_28d > 0.5", 0, "(did you mean 'seat_utilisation_28d'?)"),
        ("metric. > 0.5", 0, "a metric needs its key"),
        ('health_band = "risky"', 14, "'risky' is not a health_band"),
        ("(arr > 1", 8, "expected ')' to close the '(' at position 1, found the end of the rule"),
        ("arr > 1)", 7, "')' without a matching '('"),
        ("arr > 1 employees > 2", 8, "expected and, or or the end of the rule, found 'employees'"),
        ("arr >", 5, "expected a value"),
        ("arr 5", 4, "expected an operator after 'arr'"),
        ("arr ! 5", 4, "'!' must be followed by '='"),
        ("arr > 1 and", 11, "the rule ends too early; a condition is missing"),
        ("arr > 1 or or arr > 2", 11, "expected a condition, found 'or'"),
        ('"x" = industry', 0, "expected a field name before '\"x\"'"),
        ('industry = "open', 11, 'the text that starts here is never closed; add "'),
        ("arr > 1__0", 6, "'1__0' is not a number"),
        ("arr > 12abc", 6, "'12a' is not a number"),
        ("employees is 5", 13, "expected 'is empty' or 'is not empty'"),
        ("employees is empty 5", 19, "expected and, or or the end of the rule"),
        ('name contains ""', 14, "contains needs some text to look for"),
        ("touch_model contains 'h'", 12, "'touch_model' (choice) cannot be used with contains"),
        ("()", 1, "empty parentheses"),
        ("arr > 1 ; drop table", 8, "unexpected character ';'"),
        ('name = "a\x00b"', 7, "text cannot contain NUL characters"),
        ("arr > 1\x00", 7, "unexpected character"),
    ],
)
def test_invalid_expressions_are_rejected_with_what_is_wrong_where(
    expression: str, position: int, message: str
) -> None:
    error = _error(expression)
    assert message in str(error)
    assert error.position == position
    assert str(error).startswith(f"position {position + 1}: ")


def test_an_empty_rule_says_so_without_a_position() -> None:
    error = _error("   ")
    assert error.position is None
    assert "the rule is empty" in str(error)


def test_limits_on_length_depth_and_size() -> None:
    assert "too long" in str(_error("x" * (MAX_EXPRESSION_LENGTH + 1)))
    deep = "(" * (MAX_DEPTH + 1) + "arr > 1" + ")" * (MAX_DEPTH + 1)
    assert "nests too deeply" in str(_error(deep))
    parse("(" * (MAX_DEPTH - 1) + "arr > 1" + ")" * (MAX_DEPTH - 1))
    long = " or ".join(f"arr={n}" for n in range(310))
    assert "more than 300 conditions" in str(_error(long))


def test_messages_follow_the_language() -> None:
    with translation.override("ja"), pytest.raises(ConditionError) as caught:
        parse("emploees > 1")
    assert caught.value.position == 0
    assert "emploees" in str(caught.value)


@pytest.mark.django_db
def test_metric_keys_are_checked_against_the_metric_definitions() -> None:
    ensure_default_metrics()
    MetricDefinition.objects.create(key="reports_28d", name="Reports", kind="event_count")
    assert parse("metric.reports_28d > 3") == {
        "field": "metric.reports_28d",
        "op": ">",
        "value": 3,
    }
    with pytest.raises(ConditionError, match="unknown metric 'exports_28d'"):
        parse("metric.exports_28d > 3")


# ---------------------------------------------------------------------------------------
# Trees from the API


def test_validate_normalises_a_tree() -> None:
    tree = {
        "all": [
            {"field": "arr", "op": ">=", "value": 1e7},
            {"all": [{"field": "onboarding_completed"}]},
            {"any": [{"field": "stage", "op": "in", "value": ["adoption"]}]},
        ]
    }
    assert validate(tree, metric_keys=METRICS) == {
        "all": [
            {"field": "arr", "op": ">=", "value": 10000000},
            {"field": "onboarding_completed", "op": "=", "value": True},
            {"field": "stage", "op": "in", "value": ["adoption"]},
        ]
    }
    assert validate({}) == {}
    assert validate({"all": []}) == {}
    assert validate({"any": []}) == {"any": []}


@pytest.mark.parametrize(
    ("tree", "path", "message"),
    [
        (
            {"all": [{}, {"field": "emploees", "op": ">", "value": 1}]},
            "all[1].field",
            "did you mean 'employees'",
        ),
        (
            {"any": [{"not": {"field": "arr", "op": "~", "value": 1}}]},
            "any[0].not.op",
            "unknown operator '~'",
        ),
        ({"field": "industry", "op": "in", "value": "x"}, "value", "in needs a list"),
        ({"field": "industry", "op": "in", "value": ["x", 3]}, "value[1]", "'industry' is text"),
        ({"field": "employees", "op": ">", "value": True}, "value", "needs a number, not yes/no"),
        ({"field": "employees", "op": ">"}, "value", "> needs a value"),
        ({"field": "employees", "op": "is empty", "value": 1}, "value", "is empty takes no value"),
        ({"field": 3, "op": ">", "value": 1}, "field", "the field must be a name"),
        ({"all": {"field": "arr"}}, "all", "'all' must be a list of conditions"),
        ({"all": [], "any": []}, "rule", "'all' cannot be combined with any"),
        ({"not": {}, "field": "arr"}, "rule", "'not' cannot be combined with field"),
        ({"fields": "arr"}, "rule", "unknown keys fields"),
        ({"field": "arr", "op": ">", "value": 1, "unit": "yen"}, "rule", "unknown keys unit"),
        (["arr"], "rule", "expected an object"),
        ({"all": ["arr > 1"]}, "all[0]", "expected an object"),
        ({"field": "name", "op": "=", "value": "\x00"}, "value", "cannot contain NUL"),
    ],
)
def test_invalid_trees_are_rejected_naming_the_path(tree: Any, path: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        validate(tree, metric_keys=METRICS)
    assert caught.value.path == path
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}: ")


def test_deep_trees_are_rejected() -> None:
    tree: dict[str, Any] = {"field": "arr", "op": ">", "value": 1}
    for _ in range(MAX_DEPTH + 1):
        tree = {"not": tree}
    with pytest.raises(ConditionError, match="nests too deeply"):
        validate(tree)


# ---------------------------------------------------------------------------------------
# Back to text


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("arr>=1e7 OR employees>=1000", "arr >= 10000000 or employees >= 1000"),
        (
            "(employees = 1 or employees = 2) and not employees = 3",
            "(employees = 1 or employees = 2) and not (employees = 3)",
        ),
        ("not (employees = 1 and employees = 2)", "not (employees = 1 and employees = 2)"),
        ("not onboarding_completed", "not onboarding_completed"),
        ("industry in ('製造業', '小売')", 'industry in ("製造業", "小売")'),
        ('name = "a\\\\b\\"c"', 'name = "a\\\\b\\"c"'),
        ("employees is not empty", "employees is not empty"),
        ("metric.seat_utilisation_28d >= 0.8", "metric.seat_utilisation_28d >= 0.8"),
        ("true", "true"),
        ("false", "false"),
    ],
)
def test_trees_render_back_to_text_that_parses_to_the_same_tree(
    expression: str, text: str | None
) -> None:
    if text is None:
        return
    tree = parse(expression, metric_keys=METRICS)
    assert to_expression(tree) == text
    assert parse(to_expression(tree), metric_keys=METRICS) == tree


_chars = st.characters(exclude_characters="\x00")
_leaves = st.one_of(
    st.builds(
        lambda op, n: {"field": "employees", "op": op, "value": n},
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        st.integers(-(10**9), 10**9),
    ),
    st.builds(
        lambda op, n: {"field": "arr", "op": op, "value": n},
        st.sampled_from([">=", "<"]),
        st.floats(min_value=0.001, max_value=1e12, allow_nan=False).filter(
            lambda x: not x.is_integer()
        ),
    ),
    st.builds(
        lambda op, values: {"field": "industry", "op": op, "value": values},
        st.sampled_from(["in", "not in"]),
        st.lists(st.text(_chars, max_size=8), min_size=1, max_size=3),
    ),
    st.builds(
        lambda text: {"field": "name", "op": "contains", "value": text},
        st.text(_chars, min_size=1, max_size=10),
    ),
    st.just({"field": "onboarding_completed", "op": "=", "value": True}),
    st.just({"field": "employees", "op": "is empty"}),
)
_trees = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.builds(lambda items: {"all": items}, st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda items: {"any": items}, st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda item: {"not": item}, children),
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(_trees)
def test_any_tree_survives_a_round_trip_through_text(tree: dict[str, Any]) -> None:
    normalised = validate(tree)
    assert parse(to_expression(normalised)) == normalised


def test_the_field_catalog_lists_every_usable_field_with_a_label() -> None:
    names = [field.name for field in describe_fields()]
    assert {"health", "health_band"} <= set(names)
    assert {"arr", "employees", "plan", "days_to_renewal", "onboarding_completed"} <= set(names)
    for field in describe_fields():
        assert str(field.label)
        assert str(field.help)
        if field.example:
            parse(field.example, metric_keys=METRICS)
    assert not FIELDS["health"].reserved


# ---------------------------------------------------------------------------------------
# Matching


def _names(expression: str, **kwargs: Any) -> set[str]:
    tree = parse(expression)
    return set(
        matching(tree, as_of=kwargs.pop("as_of", AS_OF), **kwargs).values_list("name", flat=True)
    )


@pytest.fixture
def company(db: None) -> dict[str, Customer]:
    """Six customers on 2026-06-15 (AS_OF), their contract values worked out by hand.

    name     employees industry region stage      touch  active subs (product/plan, mrr, seats)
    Big      2000      製造業    関東    adoption   high   core/enterprise 1,000,000 ×100 seats
    Mid      300       小売      関西    onboarding low    core/business 500,000 ×20 + addon 50,000 ×1
    Small    —         ""        ""     adoption   tech   addon/— 10,000 ×3 (ends 2026-07-01)
    Churned  50        製造業    関東    churned    tech   none (core 20,000 ended 2026-03-01)
    Future   10        IT        関東    onboarding high   none yet (core starts 2026-07-01)
    Bare     —         ""        ""     onboarding high   none ever
    """
    ensure_default_metrics()
    core = Product.objects.create(code="core", name="Core")
    addon = Product.objects.create(code="addon", name="Add-on")
    enterprise = Plan.objects.create(
        product=core, code="enterprise", name="Enterprise", tier_rank=3
    )
    business = Plan.objects.create(product=core, code="business", name="Business", tier_rank=2)

    def customer(name: str, **fields: Any) -> Customer:
        return Customer.objects.create(name=name, external_id=name, **fields)

    big = customer("Big", employee_count=2000, industry="製造業", region="関東",
                   lifecycle_stage="adoption", touch_model="high",
                   first_start_date=dt.date(2025, 1, 1))  # fmt: skip
    mid = customer("Mid", employee_count=300, industry="小売", region="関西",
                   lifecycle_stage="onboarding", touch_model="low",
                   first_start_date=dt.date(2025, 1, 1))  # fmt: skip
    small = customer("Small", lifecycle_stage="adoption", touch_model="tech",
                     first_start_date=dt.date(2026, 6, 1))  # fmt: skip
    churned = customer("Churned", employee_count=50, industry="製造業", region="関東",
                       lifecycle_stage="churned", touch_model="tech",
                       first_start_date=dt.date(2025, 3, 1))  # fmt: skip
    future = customer("Future", employee_count=10, industry="IT", region="関東",
                      first_start_date=dt.date(2026, 7, 1))  # fmt: skip
    bare = customer("Bare")

    def subscribe(who: Customer, product: Product, plan: Plan | None, mrr: int, seats: int,
                  start: dt.date, end: dt.date | None = None) -> None:  # fmt: skip
        Subscription.objects.create(
            customer=who, product=product, plan=plan, mrr=Decimal(mrr), quantity=Decimal(seats),
            start_date=start, end_date=end,
        )  # fmt: skip

    subscribe(big, core, enterprise, 1_000_000, 100, dt.date(2025, 1, 1))
    subscribe(mid, core, business, 900_000, 30, dt.date(2025, 1, 1), dt.date(2026, 1, 1))
    subscribe(mid, core, business, 500_000, 20, dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    subscribe(mid, addon, None, 50_000, 1, dt.date(2026, 3, 1), dt.date(2026, 9, 1))
    subscribe(small, addon, None, 10_000, 3, dt.date(2026, 6, 1), dt.date(2026, 7, 1))
    subscribe(churned, core, business, 20_000, 5, dt.date(2025, 3, 1), dt.date(2026, 3, 1))
    subscribe(future, core, business, 30_000, 5, dt.date(2026, 7, 1))

    seats = MetricDefinition.objects.get(key="seat_utilisation_28d")
    days = MetricDefinition.objects.get(key="active_days_28d")
    for who, metric, value in [(big, seats, 0.9), (mid, seats, 0.5), (big, days, 20.0),
                               (mid, days, None)]:  # fmt: skip
        CustomerMetric.objects.create(customer=who, metric=metric, value=value, as_of=AS_OF)

    for who, day in [(big, dt.date(2026, 3, 1)), (small, dt.date(2026, 6, 20))]:
        TimelineEntry.objects.create(
            customer=who,
            kind=TimelineKind.ONBOARDING_COMPLETED,
            title="Onboarding completed",
            occurred_at=dt.datetime(day.year, day.month, day.day, 10, tzinfo=dt.UTC),
        )
    return {c.name: c for c in (big, mid, small, churned, future, bare)}


ALL = {"Big", "Mid", "Small", "Churned", "Future", "Bare"}


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("employees = 300", {"Mid"}),
        ("employees != 300", {"Big", "Churned", "Future"}),  # unknown sizes never match
        ("employees < 300", {"Churned", "Future"}),
        ("employees <= 300", {"Mid", "Churned", "Future"}),
        ("employees > 300", {"Big"}),
        ("employees >= 300", {"Big", "Mid"}),
        ("employees in (10, 2000)", {"Future", "Big"}),
        ("employees not in (10, 2000)", {"Mid", "Churned"}),
        ("employees is empty", {"Small", "Bare"}),
        ("employees is not empty", {"Big", "Mid", "Churned", "Future"}),
        ("not (employees >= 300)", {"Small", "Churned", "Future", "Bare"}),  # unknown included
        ("not (employees != 300)", {"Mid", "Small", "Bare"}),
        ("employees > 299.5", {"Big", "Mid"}),
    ],
)
def test_every_operator_on_a_number_with_missing_values_never_matching(
    company: dict[str, Customer], expression: str, names: set[str]
) -> None:
    assert _names(expression) == names


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ('industry = "製造業"', {"Big", "Churned"}),
        ('industry != "製造業"', {"Mid", "Future"}),  # empty industry is missing
        ('industry in ("製造業", "小売")', {"Big", "Mid", "Churned"}),
        ('industry not in ("製造業", "小売")', {"Future"}),
        ("industry is empty", {"Small", "Bare"}),
        ("industry is not empty", {"Big", "Mid", "Churned", "Future"}),
        ('name contains "i"', {"Big", "Mid"}),
        ('name contains "URE"', {"Future"}),  # case-insensitive
        ('region = "関東" and not (industry = "IT")', {"Big", "Churned"}),
        ('stage = "adoption"', {"Big", "Small"}),
        ('stage in ("churned", "onboarding")', {"Mid", "Churned", "Future", "Bare"}),
        ('touch_model != "high"', {"Mid", "Small", "Churned"}),
        ('not (touch_model = "tech")', {"Big", "Mid", "Future", "Bare"}),
        ("segment is empty", ALL),
    ],
)
def test_text_and_choice_fields(
    company: dict[str, Customer], expression: str, names: set[str]
) -> None:
    assert _names(expression) == names


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        # ARR = 12 × MRR of subscriptions active on AS_OF: Big 12,000,000; Mid (500,000 +
        # 50,000) × 12 = 6,600,000; Small 120,000; the others 0.
        ("arr >= 10000000", {"Big"}),
        ("arr = 6600000", {"Mid"}),
        ("arr > 0 and arr < 1e6", {"Small"}),
        ("arr = 0", {"Churned", "Future", "Bare"}),
        ("mrr = 550000", {"Mid"}),
        ("mrr in (10000, 1000000)", {"Small", "Big"}),
        ("seats > 21", {"Big"}),
        ("seats = 21", {"Mid"}),
        ("seats = 3", {"Small"}),
        ('plan = "enterprise"', {"Big"}),
        ('plan = "business"', {"Mid"}),  # Churned's and Future's business plans are not active
        ('plan != "enterprise"', {"Mid"}),  # Small's active subscription has no plan
        ('plan in ("enterprise", "business")', {"Big", "Mid"}),
        ('plan not in ("business")', {"Big"}),
        ("plan is empty", {"Small", "Churned", "Future", "Bare"}),
        ('plan contains "PRISE"', {"Big"}),
        ('product = "addon"', {"Mid", "Small"}),
        ('product = "core"', {"Big", "Mid"}),
        ('product != "core"', {"Small"}),
        ("product is not empty", {"Big", "Mid", "Small"}),
        ("product is empty", {"Churned", "Future", "Bare"}),
    ],
)
def test_contract_values_come_from_the_subscriptions_active_on_the_day(
    company: dict[str, Customer], expression: str, names: set[str]
) -> None:
    assert _names(expression) == names


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        # Days since the first start: Big and Mid 530, Small 14, Churned 471, Future -16.
        ("days_since_start >= 471", {"Big", "Mid", "Churned"}),
        ("days_since_start > 471", {"Big", "Mid"}),
        ("days_since_start = 14", {"Small"}),
        ("days_since_start < 0", {"Future"}),
        ("days_since_start <= 14", {"Small", "Future"}),
        ("days_since_start in (14, 471)", {"Small", "Churned"}),
        ("days_since_start != 530", {"Small", "Churned", "Future"}),
        ("days_since_start is empty", {"Bare"}),
        # Days to the earliest end of an active subscription: Mid 78 (addon ends 2026-09-01),
        # Small 16; Big has no end date, the others no active subscription.
        ("days_to_renewal <= 16", {"Small"}),
        ("days_to_renewal < 16", set()),
        ("days_to_renewal > 16", {"Mid"}),
        ("days_to_renewal = 78", {"Mid"}),
        ("days_to_renewal is empty", {"Big", "Churned", "Future", "Bare"}),
        ("not (days_to_renewal <= 90)", {"Big", "Churned", "Future", "Bare"}),
    ],
)
def test_day_counts_from_the_day_of_evaluation(
    company: dict[str, Customer], expression: str, names: set[str]
) -> None:
    assert _names(expression) == names


def test_revenue_to_date_is_mrr_times_months_served(company: dict[str, Customer]) -> None:
    # Big: 17 months + 14/30 × 1,000,000 = 17,466,666.67
    # Mid: 12 × 900,000 + (5 + 14/30) × 500,000 + (3 + 14/30) × 50,000 = 13,706,666.67
    # Small: 14/30 × 10,000 = 4,666.67; Churned: 12 × 20,000 = 240,000; Future, Bare: 0
    assert _names("revenue_to_date >= 17466666") == {"Big"}
    assert _names("revenue_to_date >= 17466667") == set()
    assert _names("revenue_to_date >= 13706666 and revenue_to_date < 13706667") == {"Mid"}
    assert _names("revenue_to_date > 4666 and revenue_to_date < 4667") == {"Small"}
    assert _names("revenue_to_date = 240000") == {"Churned"}
    assert _names("revenue_to_date = 0") == {"Future", "Bare"}
    # A year later Churned has still served 12 months; Future has served 11 months + 14/30.
    later = dt.date(2027, 6, 15)
    assert _names("revenue_to_date = 240000", as_of=later) == {"Churned"}
    assert _names("revenue_to_date > 343999.99 and revenue_to_date < 344000.01", as_of=later) == {
        "Future"
    }


def test_onboarding_completed_counts_entries_up_to_the_day(company: dict[str, Customer]) -> None:
    assert _names("onboarding_completed") == {"Big"}
    assert _names("onboarding_completed = false") == ALL - {"Big"}
    assert _names("onboarding_completed != true") == ALL - {"Big"}
    assert _names("not onboarding_completed") == ALL - {"Big"}
    assert _names("onboarding_completed", as_of=dt.date(2026, 6, 20)) == {"Big", "Small"}
    assert _names("onboarding_completed or days_since_start >= 120") == {"Big", "Mid", "Churned"}


def test_metrics_use_the_latest_value_and_missing_values_never_match(
    company: dict[str, Customer],
) -> None:
    assert _names("metric.seat_utilisation_28d >= 0.8") == {"Big"}
    assert _names("metric.seat_utilisation_28d < 0.8") == {"Mid"}
    assert _names("not (metric.seat_utilisation_28d >= 0.8)") == ALL - {"Big"}
    assert _names("metric.active_days_28d is empty") == ALL - {"Big"}  # Mid's value is null
    assert _names('not (touch_model = "tech") and metric.seat_utilisation_28d >= 0.8') == {"Big"}


def test_true_false_and_nested_logic(company: dict[str, Customer]) -> None:
    assert _names("true") == ALL
    assert _names("false") == set()
    assert _names("not (true)") == set()
    assert _names("not (false)") == ALL
    # "true" inside "or" must not vanish (an empty Q would).
    assert (
        set(matching({"any": [{"not": {}}, {}]}, as_of=AS_OF).values_list("name", flat=True)) == ALL
    )
    assert _names('arr >= 10000000 or employees >= 1000 and industry = "小売"') == {"Big"}
    assert _names('(arr >= 10000000 or employees >= 300) and industry = "小売"') == {"Mid"}
    assert _names("arr >= 10000000 or employees >= 1000") == {"Big"}
    assert _names('employees >= 10 and not (stage in ("churned") or touch_model = "low")') == {
        "Big",
        "Future",
    }


def test_matching_narrows_a_given_queryset(company: dict[str, Customer]) -> None:
    some = Customer.objects.filter(name__in=["Big", "Small", "Bare"])
    assert _names("arr > 0", customers=some) == {"Big", "Small"}


def test_matching_is_one_query_whatever_the_fields(
    company: dict[str, Customer], django_assert_num_queries: Any
) -> None:
    tree = parse(
        'arr >= 1 or mrr >= 1 or seats >= 1 or plan = "x" or product in ("core") '
        "or days_since_start > 1 or days_to_renewal < 10 or revenue_to_date > 1 "
        "or onboarding_completed or metric.seat_utilisation_28d > 0.1 "
        'or metric.active_days_28d > 1 or employees > 1 or industry contains "a" '
        'or stage = "adoption" or not (touch_model = "high")'
    )
    with django_assert_num_queries(1):
        names = set(matching(tree, as_of=AS_OF).values_list("name", flat=True))
    assert names == ALL - {"Bare"}  # Future: employees > 1; Bare: nothing at all


def test_matching_rejects_a_broken_tree(db: None) -> None:
    with pytest.raises(ConditionError, match="field"):
        matching({"field": "nope", "op": "=", "value": 1})
