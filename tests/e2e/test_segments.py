"""Segments in a real browser: a CS manager writes a rule, watches the live preview (count and
a typo's error), saves it and sees the members counted on the list."""

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, Product, Subscription
from kizuna.lifecycle.models import Segment

pytestmark = pytest.mark.e2e

PASSWORD = "segments-editor-password-2026"


def _company() -> None:
    """Alpha: 2000 employees · Beta: ARR ¥12M · Gamma: 50 employees, ARR ¥1.2M · Delta: nothing."""
    product = Product.objects.create(code="core", name="Core")
    Customer.objects.create(name="Alpha", external_id="A", employee_count=2000)
    beta = Customer.objects.create(name="Beta", external_id="B", employee_count=300)
    gamma = Customer.objects.create(name="Gamma", external_id="G", employee_count=50)
    Customer.objects.create(name="Delta", external_id="D")
    for customer, mrr in [(beta, 1_000_000), (gamma, 100_000)]:
        Subscription.objects.create(
            customer=customer, product=product, mrr=Decimal(mrr), start_date=dt.date(2024, 4, 1)
        )


def test_a_cs_manager_writes_a_segment_rule_with_the_live_preview(page: Any) -> None:
    User.objects.create_user(username="cs-manager", password=PASSWORD, role=Role.CS_MANAGER)
    _company()
    failed: list[str] = []
    page.on(
        "response",
        lambda response: (
            failed.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda error: failed.append(f"script error: {error}"))

    page.goto(reverse("core:login"))
    page.fill("input[name=username]", "cs-manager")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))

    # Settings → Segments, then "Add a segment".
    page.goto(reverse("core:settings"))
    page.locator(f"nav.tabs a[href='{reverse('lifecycle:segments')}']").click()
    page.wait_for_url(re.compile(re.escape(reverse("lifecycle:segments")) + "$"))
    page.locator("#add-segment").click()
    page.wait_for_url(re.compile(re.escape(reverse("lifecycle:segment-create")) + "$"))

    page.fill("input[name=name]", "Enterprise")
    rule = page.locator("textarea[name=expression]")

    # A typo: the preview names the unknown field and where it is.
    rule.press_sequentially("arr >= 10000000 or emploees >= 1000", delay=15)
    error = page.locator("#preview-error")
    error.wait_for()
    assert "emploees" in error.inner_text()
    assert "20" in error.inner_text()  # position 20
    assert "employees" in error.inner_text()  # the suggestion
    assert page.locator("#segment-preview mark").inner_text() == "e"

    # Fixed: Alpha (employees) and Beta (ARR) match, 2 of the 4 customers.
    rule.fill("")
    rule.press_sequentially("arr >= 10000000 or employees >= 1000", delay=15)
    count = page.locator("#preview-count")
    count.wait_for()
    assert count.locator("strong").inner_text() == "2"
    assert "4" in count.inner_text()
    sample = page.locator("#preview-sample")
    assert sample.locator("a", has_text="Alpha").count() == 1
    assert sample.locator("a", has_text="Beta").count() == 1
    assert sample.locator("a", has_text="Gamma").count() == 0
    assert "2" in page.locator("#preview-moving-in").inner_text()

    # Narrowing the rule updates the count while typing.
    rule.press_sequentially(" and arr > 0", delay=15)
    expect(page.locator("#preview-count strong")).to_have_text("1")

    # Saved: the list shows the rule and its members; the others have no segment.
    rule.fill("arr >= 10000000 or employees >= 1000")
    page.locator("#save-segment").click()
    page.wait_for_url(re.compile(re.escape(reverse("lifecycle:segments")) + "$"))
    row = page.locator("#segment-enterprise")
    assert row.locator("td.members").inner_text() == "2"
    assert "arr >= 10000000 or employees >= 1000" in row.inner_text()
    assert page.locator("#segment-none td.members").inner_text() == "2"
    assert Segment.objects.get().key == "enterprise"
    assert dict(Customer.objects.values_list("name", "segment")) == {
        "Alpha": "enterprise",
        "Beta": "enterprise",
        "Gamma": "",
        "Delta": "",
    }
    assert failed == []
