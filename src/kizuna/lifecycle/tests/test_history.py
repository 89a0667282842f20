"""State history: recording changes (set-based), same-day replacement, closing rows, as-of
filters and annotations, customers without history, syncing edits made elsewhere."""

from collections.abc import Callable
from datetime import date

import pytest
from django.db.models import Q

from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.lifecycle.history import (
    as_of_filter,
    history_for,
    record_changes,
    sync_current_state,
    value_as_of,
)
from kizuna.lifecycle.models import ChangeSource, Dimension, StateHistory

pytestmark = pytest.mark.django_db

D1 = date(2025, 4, 1)
D2 = date(2025, 5, 1)
D3 = date(2025, 6, 1)


def rows(
    customer: Customer, dimension: str
) -> list[tuple[str, date | None, date | None, str, str]]:
    return [
        (row.value, row.valid_from, row.valid_to, row.source, row.reason)
        for row in StateHistory.objects.filter(customer=customer, dimension=dimension).order_by(
            "id"
        )
    ]


def ids(queryset: Q) -> set[int]:
    return set(Customer.objects.filter(queryset).values_list("pk", flat=True))


def test_a_change_closes_the_open_row_and_opens_a_new_one_with_the_timeline() -> None:
    acme = Customer.objects.create(name="Acme", touch_model=TouchModel.HIGH)
    changed = record_changes(
        dimension=Dimension.TOUCH_MODEL,
        values={acme.pk: "low"},
        on=D1,
        source=ChangeSource.RULE,
        reason="policy",
    )
    assert changed == [acme.pk]
    record_changes(
        dimension=Dimension.TOUCH_MODEL, values={acme.pk: "tech"}, on=D2, source=ChangeSource.RULE
    )
    assert rows(acme, Dimension.TOUCH_MODEL) == [
        ("high", None, D1, ChangeSource.EDIT, ""),
        ("low", D1, D2, ChangeSource.RULE, "policy"),
        ("tech", D2, None, ChangeSource.RULE, ""),
    ]
    acme.refresh_from_db()
    assert acme.touch_model == "tech"
    entries = TimelineEntry.objects.filter(customer=acme, kind=TimelineKind.TOUCH_MODEL_CHANGED)
    assert sorted((e.payload["from"], e.payload["to"]) for e in entries) == [
        ("high", "low"),
        ("low", "tech"),
    ]


def test_a_second_change_on_the_same_day_replaces_the_value_of_that_day() -> None:
    acme = Customer.objects.create(name="Acme")
    record_changes(
        dimension=Dimension.SEGMENT, values={acme.pk: "small"}, on=D1, source=ChangeSource.RULE
    )
    record_changes(
        dimension=Dimension.SEGMENT,
        values={acme.pk: "enterprise"},
        on=D1,
        source=ChangeSource.MANUAL,
        reason="fixed by hand",
    )
    assert rows(acme, Dimension.SEGMENT) == [
        ("", None, D1, ChangeSource.EDIT, ""),
        ("enterprise", D1, None, ChangeSource.MANUAL, "fixed by hand"),
    ]
    acme.refresh_from_db()
    assert acme.segment == "enterprise"


def test_unchanged_values_record_nothing_and_many_customers_change_in_one_call() -> None:
    a = Customer.objects.create(name="A", lifecycle_stage=LifecycleStage.ONBOARDING)
    b = Customer.objects.create(name="B", lifecycle_stage=LifecycleStage.ADOPTION)
    c = Customer.objects.create(name="C", lifecycle_stage=LifecycleStage.ADOPTION)
    changed = record_changes(
        dimension=Dimension.STAGE,
        values={a.pk: "adoption", b.pk: "adoption", c.pk: "expansion"},
        on=D1,
        source=ChangeSource.RULE,
    )
    assert changed == [a.pk, c.pk]
    assert rows(b, Dimension.STAGE) == [("adoption", None, None, ChangeSource.EDIT, "")]
    assert (
        record_changes(
            dimension=Dimension.STAGE, values={a.pk: "adoption"}, on=D2, source=ChangeSource.RULE
        )
        == []
    )
    assert not TimelineEntry.objects.filter(customer=b).exists()


def test_as_of_filter_and_value_as_of_answer_for_a_day_before_and_after_a_change() -> None:
    acme = Customer.objects.create(name="Acme", lifecycle_stage=LifecycleStage.ONBOARDING)
    other = Customer.objects.create(name="Other", lifecycle_stage=LifecycleStage.ADOPTION)
    record_changes(
        dimension=Dimension.STAGE, values={acme.pk: "adoption"}, on=D2, source=ChangeSource.RULE
    )
    record_changes(
        dimension=Dimension.STAGE, values={acme.pk: "expansion"}, on=D3, source=ChangeSource.RULE
    )
    day_before = date(2025, 4, 30)
    assert ids(as_of_filter(Dimension.STAGE, ["onboarding"], day_before)) == {acme.pk}
    assert ids(as_of_filter(Dimension.STAGE, ["adoption"], day_before)) == {other.pk}
    assert ids(as_of_filter(Dimension.STAGE, ["adoption"], D2)) == {acme.pk, other.pk}
    assert ids(as_of_filter(Dimension.STAGE, ["adoption"], D3)) == {other.pk}  # valid_to excluded
    assert ids(as_of_filter(Dimension.STAGE, ["onboarding", "expansion"], D3)) == {acme.pk}
    assert ids(as_of_filter(Dimension.STAGE, ["onboarding"], date(2000, 1, 1))) == {acme.pk}

    def stage_on(day: date) -> dict[str, str]:
        annotated = Customer.objects.annotate(stage_then=value_as_of(Dimension.STAGE, day))
        return dict(annotated.values_list("name", "stage_then"))

    assert stage_on(day_before) == {"Acme": "onboarding", "Other": "adoption"}
    assert stage_on(date(2025, 5, 31)) == {"Acme": "adoption", "Other": "adoption"}
    assert stage_on(D3) == {"Acme": "expansion", "Other": "adoption"}


def test_customers_without_history_are_judged_by_their_current_field(
    make_user: Callable[..., User],
) -> None:
    csm = make_user(Role.ONBOARDING_CSM)
    # bulk_create sends no post_save: these customers have no history at all.
    plain, owned = Customer.objects.bulk_create(
        [
            Customer(name="Plain", lifecycle_stage=LifecycleStage.ADOPTION, segment="small"),
            Customer(name="Owned", lifecycle_stage=LifecycleStage.ADOPTION, onboarding_owner=csm),
        ]
    )
    assert not StateHistory.objects.exists()
    assert ids(as_of_filter(Dimension.STAGE, ["adoption"], D1)) == {plain.pk, owned.pk}
    assert ids(as_of_filter(Dimension.SEGMENT, ["small"], D1)) == {plain.pk}
    assert ids(as_of_filter(Dimension.ONBOARDING_OWNER, [str(csm.pk)], D1)) == {owned.pk}
    annotated = Customer.objects.annotate(owner_then=value_as_of(Dimension.ONBOARDING_OWNER, D1))
    assert dict(annotated.values_list("name", "owner_then")) == {
        "Plain": None,
        "Owned": str(csm.pk),
    }


def test_sync_records_edits_made_outside_and_seeds_customers_without_history() -> None:
    acme = Customer.objects.create(name="Acme", touch_model=TouchModel.HIGH)
    (fresh,) = Customer.objects.bulk_create([Customer(name="Fresh", touch_model=TouchModel.TECH)])
    Customer.objects.filter(pk=acme.pk).update(touch_model=TouchModel.LOW)
    counts = sync_current_state(on=D1)
    assert counts == {Dimension.TOUCH_MODEL: 1}
    assert rows(acme, Dimension.TOUCH_MODEL) == [
        ("high", None, D1, ChangeSource.EDIT, ""),
        ("low", D1, None, ChangeSource.EDIT, ""),
    ]
    assert rows(fresh, Dimension.TOUCH_MODEL) == [("tech", None, None, ChangeSource.EDIT, "")]
    assert sync_current_state(on=D2) == {}


def test_history_for_lists_every_dimension_of_the_customer() -> None:
    acme = Customer.objects.create(name="Acme")
    Customer.objects.create(name="Other")
    record_changes(
        dimension=Dimension.SEGMENT, values={acme.pk: "small"}, on=D1, source=ChangeSource.RULE
    )
    record_changes(
        dimension=Dimension.STAGE, values={acme.pk: "adoption"}, on=D2, source=ChangeSource.RULE
    )
    got = [(row.dimension, row.value, row.valid_from) for row in history_for(acme.pk)]
    dated = [row for row in got if row[2] is not None]
    assert dated == [("stage", "adoption", D2), ("segment", "small", D1)]  # newest first
    assert sorted(row[0] for row in got if row[2] is None) == sorted(Dimension.values)


# --- Found while testing: reported to the lead with the fix (the markers go when fixed) --------


def test_a_same_day_replacement_truncates_the_reason_like_a_new_row() -> None:
    acme = Customer.objects.create(name="Acme")
    for value, reason in (("small", "first"), ("enterprise", "x" * 600)):
        record_changes(
            dimension=Dimension.SEGMENT,
            values={acme.pk: value},
            on=D1,
            source=ChangeSource.RULE,
            reason=reason,
        )
    row = StateHistory.objects.get(customer=acme, dimension=Dimension.SEGMENT, valid_to=None)
    assert len(row.reason) <= 500


def test_an_edit_synced_on_the_day_of_a_rule_change_does_not_keep_the_rules_reason(
    make_user: Callable[..., User],
) -> None:
    manager = make_user(Role.CS_MANAGER)
    acme = Customer.objects.create(name="Acme", touch_model=TouchModel.HIGH)
    record_changes(
        dimension=Dimension.TOUCH_MODEL,
        values={acme.pk: "low"},
        on=D1,
        source=ChangeSource.RULE,
        reason="policy",
        actor=manager,
    )
    Customer.objects.filter(pk=acme.pk).update(touch_model=TouchModel.TECH)
    sync_current_state(on=D1)
    row = StateHistory.objects.get(customer=acme, dimension=Dimension.TOUCH_MODEL, valid_to=None)
    assert (row.value, row.source, row.reason, row.actor) == ("tech", ChangeSource.EDIT, "", None)


def test_a_change_dated_before_the_open_row_never_makes_an_inverted_interval() -> None:
    acme = Customer.objects.create(name="Acme")
    record_changes(
        dimension=Dimension.SEGMENT, values={acme.pk: "small"}, on=D2, source=ChangeSource.RULE
    )
    record_changes(  # e.g. `kizuna lifecycle run --as-of` an earlier day
        dimension=Dimension.SEGMENT, values={acme.pk: "enterprise"}, on=D1, source=ChangeSource.RULE
    )
    for value, valid_from, valid_to, _source, _reason in rows(acme, Dimension.SEGMENT):
        assert valid_from is None or valid_to is None or valid_from < valid_to, value


def test_a_rule_restoring_the_recorded_value_also_fixes_a_field_edited_outside() -> None:
    acme = Customer.objects.create(name="Acme", touch_model=TouchModel.HIGH)
    Customer.objects.filter(pk=acme.pk).update(touch_model=TouchModel.LOW)  # not synced yet
    record_changes(
        dimension=Dimension.TOUCH_MODEL, values={acme.pk: "high"}, on=D1, source=ChangeSource.RULE
    )
    acme.refresh_from_db()
    assert acme.touch_model == "high"


def test_history_for_puts_rows_since_the_beginning_last_on_every_database() -> None:
    acme = Customer.objects.create(name="Acme")
    record_changes(
        dimension=Dimension.STAGE, values={acme.pk: "adoption"}, on=D2, source=ChangeSource.RULE
    )
    assert next(iter(history_for(acme.pk))).valid_from == D2
