"""Saving a segment gives its new members the touch model of the policy at once."""

from datetime import date

import pytest

from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.lifecycle.models import StateHistory, TouchPolicy
from kizuna.lifecycle.segments import save_segment

pytestmark = pytest.mark.django_db


def test_new_members_of_a_segment_get_the_policy_touch_model_the_same_day() -> None:
    big = Customer.objects.create(
        name="Big",
        employee_count=2000,
        lifecycle_stage=LifecycleStage.ADOPTION,
        touch_model=TouchModel.TECH,
    )
    small = Customer.objects.create(
        name="Small",
        employee_count=20,
        lifecycle_stage=LifecycleStage.ADOPTION,
        touch_model=TouchModel.TECH,
    )
    TouchPolicy.objects.create(
        segment_key="", stage=LifecycleStage.ADOPTION, touch_model=TouchModel.TECH
    )
    TouchPolicy.objects.create(
        segment_key="enterprise", stage=LifecycleStage.ADOPTION, touch_model=TouchModel.HIGH
    )

    save_segment(
        name="Enterprise",
        key="enterprise",
        expression="employees >= 1000",
        as_of=date(2026, 5, 1),
    )

    big.refresh_from_db()
    small.refresh_from_db()
    assert (big.segment, big.touch_model) == ("enterprise", TouchModel.HIGH)
    assert (small.segment, small.touch_model) == ("", TouchModel.TECH)
    change = StateHistory.objects.get(customer=big, dimension="touch_model", valid_to=None)
    assert (change.value, change.valid_from) == (TouchModel.HIGH, date(2026, 5, 1))
