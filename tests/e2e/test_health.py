"""Health end to end in a real browser: an adoption CSM sees an at-risk customer on the list,
opens it, and sees why — the score breakdown with its missing measure, the open usage-drop
signal with its reason, the history chart — then closes the signal after acting on it."""

import re
from typing import Any

import pytest
from django.urls import reverse

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.health.models import Resolution, RiskSignal
from kizuna.health.tests.ui_helpers import portfolio

pytestmark = pytest.mark.e2e

PASSWORD = "adoption-csm-password-2026"


def _watch(page: Any, failed: list[str]) -> None:
    """Collect failed requests and script errors (Chromium asks for /favicon.ico on its own)."""
    page.on(
        "response",
        lambda response: (
            failed.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda error: failed.append(f"script error: {error}"))


def test_a_csm_opens_an_at_risk_customer_and_sees_why(page: Any, live_server: Any) -> None:
    data = portfolio()
    csm = User.objects.create_user(
        username="adoption-csm", password=PASSWORD, role=Role.ADOPTION_CSM, first_name="Aiko"
    )
    data.acme.adoption_owner = csm
    data.acme.save(update_fields=["adoption_owner"])
    failed: list[str] = []
    _watch(page, failed)

    page.goto(reverse("core:login"))
    page.fill("input[name=username]", "adoption-csm")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))

    # The customer list: Acme's health cell is at risk, with its score and a sparkline.
    page.goto(reverse("customers:list"))
    acme_row = page.locator("tr", has=page.locator("a", has_text="Acme"))
    cell = acme_row.locator('.health-cell[data-band="at_risk"]')
    cell.wait_for()
    assert cell.locator(".num").inner_text() == "24"
    assert cell.locator("svg.sparkline").count() == 1
    acme_row.locator("a", has_text="Acme").first.click()
    page.wait_for_url(re.compile(rf"/customers/{data.acme.pk}/$"))

    # Customer 360 → Health (loaded by htmx): the score, why, the signal and the history.
    panel = page.locator("#health-panel")
    panel.wait_for()
    assert panel.locator("[data-score]").inner_text() == "24"
    assert panel.locator('#health-score [data-band="at_risk"]').count() == 1
    breakdown = panel.locator("#health-breakdown")
    assert breakdown.locator('tr[data-measure="usage_trend"] td').nth(2).inner_text() == "21"
    assert breakdown.locator('tr[data-measure="sentiment"].missing [data-missing]').count() == 1
    assert panel.locator("#missing-note").is_visible()
    assert panel.locator('#health-explanation [data-explanation="usage_trend"]').count() == 1
    assert panel.locator("[data-score-change]").inner_text() == "-44.3"
    signal = panel.locator('#open-signals li[data-signal="usage_drop"]')
    reason = signal.locator("[data-reason]").inner_text()
    assert "35%" in reason
    assert "1,200" in reason
    assert "780" in reason
    history = panel.locator("svg.health-history")
    assert history.is_visible()
    assert history.locator("circle, polyline").count() >= 1
    assert history.locator('rect[data-band="at_risk"]').count() == 1

    # After calling the customer, the CSM closes the signal; the panel answers in place.
    signal.locator("select[name=resolution]").select_option(Resolution.RESOLVED.value)
    signal.locator("input[name=note]").fill("Met the new admin; usage plan agreed")
    signal.locator("button[type=submit]").click()
    page.locator("#health-panel #no-open-signals").wait_for()
    closed = RiskSignal.objects.get(pk=data.signal.pk)
    assert (closed.resolution, closed.resolution_note) == (
        Resolution.RESOLVED,
        "Met the new admin; usage plan agreed",
    )
    assert failed == []
