"""Onboarding end to end in a real browser: a CSM designs and publishes a program, runs a plan,
shares the customer's page, and the customer ticks off their milestone without signing in."""

import re
from typing import Any

import pytest
from django.urls import reverse

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer
from kizuna.onboarding.models import (
    CompletedVia,
    MilestoneStatus,
    OnboardingPlan,
    PlanLink,
    PlanStatus,
)

pytestmark = pytest.mark.e2e

PASSWORD = "onboarding-csm-password-2026"


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


def _add_milestone(page: Any, *, key: str, name: str, owner: str, due: str) -> None:
    page.locator("a.add-milestone").first.click()
    form = page.locator("#milestone-form")
    form.locator("input[name=key]").fill(key)
    form.locator("input[name=name]").fill(name)
    form.locator("select[name=owner_side]").select_option(owner)
    form.locator("input[name=due_offset_days]").fill(due)
    form.locator("[type=submit]").click()
    page.locator("#resources").wait_for()  # the new milestone's page, where resources are added


def test_a_csm_runs_an_onboarding_and_the_customer_ticks_their_milestone(
    page: Any, browser: Any, live_server: Any
) -> None:
    csm = User.objects.create_user(
        username="onboarding-csm",
        password=PASSWORD,
        role=Role.ONBOARDING_CSM,
        first_name="Naoto",
        last_name="Okamoto",
    )
    customer = Customer.objects.create(name="Acme Retail", onboarding_owner=csm)
    failed: list[str] = []
    _watch(page, failed)

    page.goto(reverse("core:login"))
    page.fill("input[name=username]", "onboarding-csm")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))

    # Settings → Onboarding programs: a program whose draft v1 gets a phase and two milestones.
    page.goto(reverse("onboarding:programs"))
    create = page.locator("#program-create")
    create.locator("input[name=key]").fill("high-touch")
    create.locator("input[name=name]").fill("High touch onboarding")
    create.locator("input[name=target_days]").fill("30")
    create.locator("form [type=submit]").click()
    page.locator("#phase-add").wait_for()
    page.locator("#phase-add input[name=name]").fill("Setup")
    page.locator("#phase-add [type=submit]").click()
    page.locator(".phase h3", has_text="Setup").wait_for()

    _add_milestone(page, key="kickoff", name="Kickoff meeting", owner="csm", due="3")
    page.locator("p.breadcrumb a", has_text="v1").click()
    _add_milestone(page, key="invite", name="Invite your users", owner="customer", due="7")
    resource = page.locator("#resource-form")
    resource.locator("select[name=kind]").select_option("manual")
    resource.locator("input[name=title]").fill("How to invite users")
    resource.locator("input[name=url]").fill("https://help.example.com/invite")
    resource.locator("[type=submit]").click()
    page.locator("#resources li", has_text="How to invite users").wait_for()
    page.locator("p.breadcrumb a", has_text="v1").click()

    page.locator("#publish-button").click()
    page.locator("#version-status.version-published").wait_for()

    # Customer 360: the onboarding panel creates the plan from the published program.
    page.goto(reverse("customers:detail", args=[customer.pk]))
    plan_form = page.locator("#plan-create")
    plan_form.locator("select[name=program]").select_option(label="High touch onboarding v1")
    plan_form.locator("[type=submit]").click()
    page.wait_for_url(re.compile(r"/onboarding/plans/\d+/$"))
    plan = OnboardingPlan.objects.get(customer=customer)
    assert "0%" in page.locator("#plan-progress").inner_text()

    # The CSM completes the kickoff: progress moves to half.
    page.locator('li[data-next-action="kickoff"] [data-action="done"]').click()
    page.locator('tr[data-milestone="kickoff"][data-status="done"]').wait_for()
    assert "50%" in page.locator("#plan-progress").inner_text()

    # Share the plan page with the customer's contact, in English.
    links = page.locator("#plan-links")
    links.locator("#create-plan-link").wait_for()  # the panel loads itself
    links.locator("input[name=contact_name]").fill("Yui Tanaka")
    links.locator("select[name=language]").select_option("en")
    links.locator("#create-plan-link [type=submit]").click()
    page.locator("#plan-link-url").wait_for()
    url = page.locator("#plan-link-url").inner_text().strip()
    assert url.startswith(f"{live_server.url}/onboarding/p/")
    assert PlanLink.objects.get(plan=plan).contact_name == "Yui Tanaka"

    # The customer opens the link in a fresh browser: no session, no sign-in.
    customer_context = browser.new_context(locale="ja-JP")
    customer_context.set_default_timeout(15_000)
    try:
        visitor = customer_context.new_page()
        _watch(visitor, failed)
        visitor.goto(url)
        assert visitor.locator("html").get_attribute("lang") == "en"
        assert visitor.locator("#customer-name").inner_text() == "Acme Retail"
        assert visitor.locator("#progress-percent").inner_text() == "50%"
        step = visitor.locator("article.step", has_text="Invite your users")
        assert step.locator("a", has_text="How to invite users").is_visible()
        assert visitor.locator("article.step", has_text="Kickoff meeting").count() == 0
        step.locator("button[data-tick]").click()
        visitor.locator("#ticked").wait_for()
        assert visitor.locator("#progress-percent").inner_text() == "100%"
        visitor.locator("#completed-banner").wait_for()
        assert visitor.locator("nav.mainnav").count() == 0  # no staff navigation
    finally:
        customer_context.close()

    invite = plan.milestones.get(milestone__key="invite")
    assert invite.status == MilestoneStatus.DONE
    assert invite.completed_via == CompletedVia.CUSTOMER

    # Back on the staff page: the plan is completed.
    page.reload()
    page.locator(f"#plan-status.plan-{PlanStatus.COMPLETED}").wait_for()
    assert page.locator('tr[data-milestone="invite"]').get_attribute("data-status") == "done"
    assert not failed, f"failed requests or script errors: {sorted(set(failed))}"
