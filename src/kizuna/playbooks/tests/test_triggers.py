"""Triggers: parameters checked with the field named, described in words, and each kind's
occurrences found on hand-made data; eligibility by segment, touch model and condition."""

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from django.utils import translation

from kizuna.core.models import TimelineKind
from kizuna.lifecycle.conditions import parse
from kizuna.lifecycle.history import record_changes
from kizuna.lifecycle.models import ChangeSource, Dimension
from kizuna.playbooks import triggers
from kizuna.playbooks.models import Playbook, TriggerKind
from kizuna.playbooks.tests.engine_helpers import (
    at,
    entry,
    make_customer,
    make_playbook,
    write_metrics,
)
from kizuna.playbooks.triggers import TriggerError, validate_trigger

DAY = date(2026, 12, 7)  # a Monday, the first of December 2026


def _draft(kind: str, params: dict[str, object], **fields: object) -> Playbook:
    return Playbook(key="draft", name="Draft", trigger_kind=kind, trigger_params=params, **fields)


# --- validation ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_trigger_parameters_are_normalised() -> None:
    assert validate_trigger(
        "timeline", {"kinds": "risk.raised, risk.raised", "payload": {"kind": "usage_drop"}}
    ) == {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}}
    assert validate_trigger("customer_date", {"date": "renewal_date", "offset_days": "-90"}) == {
        "date": "renewal_date",
        "offset_days": -90,
    }
    assert validate_trigger(
        "customer_date", {"date": "first_start_date", "offset_days": [60, 7, 30, 7]}
    ) == {"date": "first_start_date", "offset_days": [7, 30, 60]}
    assert validate_trigger("schedule", {"every": "quarter", "weekday": 0}) == {
        "every": "quarter",
        "weekday": 0,
        "nth": 1,
    }
    assert validate_trigger("schedule", {"every": "month", "day": "1"}) == {
        "every": "month",
        "day": 1,
    }
    assert validate_trigger(
        "metric", {"metric": "seat_utilisation_28d", "op": ">=", "value": "0.9"}
    ) == {"metric": "seat_utilisation_28d", "op": ">=", "value": 0.9}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("timeline", {}, "kinds"),
        ("timeline", {"kinds": ["Risk Raised"]}, "kinds"),
        ("timeline", {"kinds": ["risk.raised"], "payload": {"kind__contains": "x"}}, "payload"),
        ("timeline", {"kinds": ["risk.raised"], "payload": {"contains": "x"}}, "payload"),
        ("timeline", {"kinds": ["risk.raised"], "payload": {"kind": ["a"]}}, "payload.kind"),
        ("customer_date", {"date": "birthday", "offset_days": 1}, "date"),
        ("customer_date", {"date": "renewal_date", "offset_days": 9999}, "offset_days"),
        ("customer_date", {"date": "renewal_date"}, "offset_days"),
        ("schedule", {"every": "day"}, "every"),
        ("schedule", {"every": "week", "weekday": 7}, "weekday"),
        ("schedule", {"every": "month", "weekday": 0, "nth": 0}, "nth"),
        ("metric", {"metric": "no_such_metric", "op": ">=", "value": 1}, "metric"),
        ("metric", {"metric": "events_28d", "op": "=>", "value": 1}, "op"),
        ("metric", {"metric": "events_28d", "op": ">=", "value": "lots"}, "value"),
        ("sometimes", {}, "kind"),
    ],
)
def test_bad_trigger_parameters_name_the_field(
    kind: str, params: dict[str, object], field: str
) -> None:
    with pytest.raises(TriggerError) as caught:
        validate_trigger(kind, params)
    assert caught.value.field == field
    assert caught.value.message


def test_triggers_are_described_in_words() -> None:
    with translation.override("en"):
        assert (
            triggers.describe_trigger(
                _draft("timeline", {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}})
            )
            == "When the timeline records: Risk signal raised (kind = usage_drop)"
        )
        assert (
            triggers.describe_trigger(
                _draft("customer_date", {"date": "renewal_date", "offset_days": -90})
            )
            == "90 days before the renewal date"
        )
        assert (
            triggers.describe_trigger(
                _draft("customer_date", {"date": "first_start_date", "offset_days": [7, 30]})
            )
            == "7 days after / 30 days after the first start date"
        )
        assert (
            triggers.describe_trigger(
                _draft("schedule", {"every": "quarter", "weekday": 0, "nth": 1})
            )
            == "The first Monday of every quarter"
        )
        assert (
            triggers.describe_trigger(
                _draft("metric", {"metric": "seat_utilisation_28d", "op": ">=", "value": 0.9})
            )
            == "When seat_utilisation_28d crosses >= 0.9"
        )


# --- occurrences -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_timeline_occurrences_match_kinds_payload_ids_and_time() -> None:
    acme, beta = make_customer("Acme"), make_customer("Beta")
    before = entry(acme, "risk.raised", at(DAY), {"kind": "usage_drop", "severity": "high"})
    drop = entry(acme, "risk.raised", at(DAY, 11), {"kind": "usage_drop", "severity": "high"})
    entry(beta, "risk.raised", at(DAY, 11), {"kind": "no_login"})
    entry(beta, "risk.closed", at(DAY, 11), {"kind": "usage_drop"})
    late = entry(beta, "risk.raised", at(DAY + timedelta(days=2)), {"kind": "usage_drop"})
    playbook = _draft("timeline", {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}})

    everything = triggers.timeline_occurrences([playbook], 0)[0]
    assert [(item.customer_id, item.key) for item in everything] == [
        (acme.pk, f"timeline:{before.pk}"),
        (acme.pk, f"timeline:{drop.pk}"),
        (beta.pk, f"timeline:{late.pk}"),
    ]
    assert everything[0].day == DAY
    assert everything[0].summary == "Risk signal raised: risk.raised"
    by_cursor = triggers.timeline_occurrences([playbook], before.pk, drop.pk)[0]
    assert [item.key for item in by_cursor] == [f"timeline:{drop.pk}"]
    since = triggers.timeline_occurrences([playbook], 0, since=at(DAY, 10, 30))[0]
    assert [item.key for item in since] == [f"timeline:{drop.pk}", f"timeline:{late.pk}"]
    by_days = triggers.timeline_occurrences([playbook], start=DAY, end=DAY + timedelta(days=1))[0]
    assert [item.key for item in by_days] == [f"timeline:{before.pk}", f"timeline:{drop.pk}"]


@pytest.mark.django_db
def test_customer_date_occurrences_after_start_and_before_renewal() -> None:
    week_old = make_customer("Week old", started=DAY - timedelta(days=7))
    make_customer("Eight days old", started=DAY - timedelta(days=8))
    renewing = make_customer("Renewing", started=date(2026, 3, 7), ends=DAY + timedelta(days=90))
    make_customer("Renewing later", started=date(2026, 3, 7), ends=DAY + timedelta(days=91))
    # A subscription that has not started yet is not renewing.
    make_customer("Future", started=DAY + timedelta(days=1), ends=DAY + timedelta(days=90))

    after_start = _draft("customer_date", {"date": "first_start_date", "offset_days": 7})
    found = triggers.date_occurrences(after_start, DAY)
    assert [(item.customer_id, item.key, item.day) for item in found] == [
        (week_old.pk, f"date:{DAY}", DAY)
    ]
    before_renewal = _draft("customer_date", {"date": "renewal_date", "offset_days": -90})
    assert [item.customer_id for item in triggers.date_occurrences(before_renewal, DAY)] == [
        renewing.pk
    ]
    cadence = _draft("customer_date", {"date": "first_start_date", "offset_days": [7, 8]})
    assert len(triggers.date_occurrences(cadence, DAY)) == 2


@pytest.mark.django_db
def test_schedule_occurrences_fall_on_the_scheduled_days_for_every_customer() -> None:
    acme, beta = make_customer("Acme"), make_customer("Beta")
    first_monday = _draft("schedule", {"every": "month", "weekday": 0, "nth": 1})
    found = triggers.schedule_occurrences(first_monday, DAY)
    assert [(item.customer_id, item.key) for item in found] == [
        (acme.pk, f"schedule:{DAY}"),
        (beta.pk, f"schedule:{DAY}"),
    ]
    assert triggers.schedule_occurrences(first_monday, DAY + timedelta(days=7)) == []

    quarterly = {"every": "quarter", "weekday": 0, "nth": 1}
    assert not triggers.schedule_matches(quarterly, DAY)  # December opens no quarter
    assert triggers.schedule_matches(quarterly, date(2027, 1, 4))
    last_friday = {"every": "month", "weekday": 4, "nth": -1}
    assert triggers.schedule_matches(last_friday, date(2026, 12, 25))
    assert not triggers.schedule_matches(last_friday, date(2026, 12, 18))
    assert triggers.schedule_matches({"every": "week", "weekday": 2}, date(2026, 12, 2))
    assert triggers.schedule_matches({"every": "month", "day": 15}, date(2026, 12, 15))


@pytest.mark.django_db
def test_a_metric_trigger_fires_on_the_day_the_value_crosses_not_while_it_stays_over() -> None:
    crosses, stays, falls, new, gap = (make_customer(name) for name in "ABCDE")
    metric = "seat_utilisation_28d"
    write_metrics(
        DAY - timedelta(days=2),
        [(crosses.pk, metric, 0.80), (stays.pk, metric, 0.95), (gap.pk, metric, 0.5)],
    )
    write_metrics(
        DAY - timedelta(days=1),
        [(crosses.pk, metric, 0.85), (stays.pk, metric, 0.95), (falls.pk, metric, 0.95)],
    )
    write_metrics(
        DAY,
        [
            (crosses.pk, metric, 0.92),
            (stays.pk, metric, 0.96),
            (falls.pk, metric, 0.70),
            (new.pk, metric, 0.99),  # no earlier value: not known to have crossed
            (gap.pk, metric, 0.91),  # its last value two days ago was below
            (crosses.pk, "events_28d", 10.0),
        ],
    )
    playbook = _draft("metric", {"metric": metric, "op": ">=", "value": 0.9})

    found = triggers.metric_occurrences(playbook, DAY)
    assert [(item.customer_id, item.key) for item in found] == [
        (crosses.pk, f"metric:{DAY}"),
        (gap.pk, f"metric:{DAY}"),
    ]
    assert found[0].summary == "seat_utilisation_28d: 0.85 → 0.92 (>= 0.9)"
    # Falling below a threshold is a crossing too, for "<".
    below = _draft("metric", {"metric": metric, "op": "<", "value": 0.9})
    assert [item.customer_id for item in triggers.metric_occurrences(below, DAY)] == [falls.pk]
    # A day without history has no crossings.
    assert triggers.metric_occurrences(playbook, DAY + timedelta(days=1)) == []


# --- eligibility -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_eligibility_applies_segments_and_touch_models_as_of_the_day_and_the_condition() -> None:
    big = make_customer("Big", started=date(2026, 1, 1), seats=50, segment="enterprise")
    small = make_customer("Small", started=date(2026, 1, 1), seats=5, segment="enterprise")
    smb = make_customer("Smb", started=date(2026, 1, 1), seats=50, segment="smb")
    # Big became enterprise only on DAY; before that it was smb.
    record_changes(
        dimension=Dimension.SEGMENT,
        values={big.pk: "smb"},
        on=date(2026, 1, 1),
        source=ChangeSource.MANUAL,
    )
    record_changes(
        dimension=Dimension.SEGMENT,
        values={big.pk: "enterprise"},
        on=DAY,
        source=ChangeSource.MANUAL,
    )
    ids = [big.pk, small.pk, smb.pk]
    playbook = _draft("schedule", {}, segments=["enterprise"])
    assert triggers.eligible(playbook, ids, DAY) == {big.pk, small.pk}
    assert triggers.eligible(playbook, ids, DAY - timedelta(days=1)) == {small.pk}

    playbook.condition = parse("seats >= 10")
    assert triggers.eligible(playbook, ids, DAY) == {big.pk}

    by_touch = _draft("schedule", {}, touch_models=["tech"])
    assert triggers.eligible(by_touch, ids, DAY) == set()  # all are high touch (the default)
    assert triggers.eligible(_draft("schedule", {}), [], DAY) == set()


@pytest.mark.django_db
def test_a_playbook_of_a_timeline_kind_is_found_only_by_its_own_finder() -> None:
    acme = make_customer("Acme", started=DAY - timedelta(days=7))
    entry(acme, TimelineKind.CUSTOMER_CREATED, at(DAY))
    dated = make_playbook(
        "dated", TriggerKind.CUSTOMER_DATE, {"date": "first_start_date", "offset_days": 7}
    )
    timeline = make_playbook("created", TriggerKind.TIMELINE, {"kinds": ["customer.created"]})
    assert triggers.timeline_occurrences([dated, timeline], 0) == [
        [],
        triggers.timeline_occurrences([timeline], 0)[0],
    ]
    assert triggers.occurrences_on(timeline, DAY) == []
    assert [item.customer_id for item in triggers.occurrences_on(dated, DAY)] == [acme.pk]


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Texts the engine builds (trigger summaries, messages) are compared in English."""
    with translation.override("en"):
        yield
