"""A new administrator's first steps in a real browser: sign in, import, annotate, switch language."""

import gettext
import re
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, ImportJob, ImportStatus, Subscription

pytestmark = pytest.mark.e2e

PASSWORD = "first-steps-password-2026"
MO_FILE = (
    Path(__file__).resolve().parents[2] / "src" / "kizuna" / "locale" / "ja" / "LC_MESSAGES"
    / "django.mo"
)  # fmt: skip
SUBSCRIPTIONS_CSV = """\
account_id,product,start_date,end_date,mrr,quantity,units,bill_period_months,discount
ACME-001,Mirai Analytics,2025-01-01,2025-02-01,30000,10,seats,1,0
ACME-001,Mirai Analytics,2025-02-01,,36000,12,seats,1,0
GLOBEX-002,Mirai Analytics,2025-03-01,2026-03-01,108000,40,seats,12,0.1
GLOBEX-002,Mirai Analytics,2026-03-01,,120000,40,seats,12,0
"""


def _japanese_nav_label() -> str | None:
    """The Japanese for "Customers" once the catalog translates it, else None."""
    if not MO_FILE.exists():
        return None
    with MO_FILE.open("rb") as catalog:
        translated = gettext.GNUTranslations(catalog).gettext("Customers")
    return translated if translated != "Customers" else None


def _nav(page: Any) -> str:
    return str(page.locator("nav.mainnav").inner_text())


def test_an_administrator_signs_in_imports_subscriptions_and_notes_a_meeting(
    page: Any, tmp_path: Path
) -> None:
    User.objects.create_user(username="first-admin", password=PASSWORD, role=Role.ADMIN)
    failed: list[str] = []  # every page, stylesheet and script must load

    def on_response(response: Any) -> None:
        # Chromium asks for /favicon.ico on its own when a page names no icon.
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            failed.append(f"{response.status} {response.url}")

    page.on("response", on_response)
    csv_file = tmp_path / "subscriptions.csv"
    csv_file.write_text(SUBSCRIPTIONS_CSV, encoding="utf-8")

    # Sign in through the form.
    page.goto(reverse("core:login"))
    page.fill("input[name=username]", "first-admin")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))
    assert page.locator("nav.mainnav").count() == 1

    # Upload, preview, confirm, report.
    page.goto(reverse("customers:import-upload"))
    page.select_option("select[name=kind]", "subscriptions")
    page.set_input_files("input[type=file]", str(csv_file))
    page.locator("form:has(input[type=file]) [type=submit]").click()
    page.wait_for_url(re.compile(r"/customers/import/\d+/$"))
    page.click("#confirm-import")
    page.wait_for_url(re.compile(r"/customers/import/\d+/report/$"))
    job = ImportJob.objects.get()
    assert job.status == ImportStatus.SUCCEEDED, job.report
    assert Subscription.objects.count() == 4
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["ACME-001", "GLOBEX-002"]
    assert page.locator("#import-result.success").is_visible()
    assert page.locator("#import-created").inner_text().strip() == "4"

    # Open the imported customer from the list and add a note to its timeline.
    page.goto(reverse("customers:list"))
    page.get_by_role("link", name="GLOBEX-002", exact=True).first.click()
    customer = Customer.objects.get(name="GLOBEX-002")
    page.wait_for_url(re.compile(rf"/customers/{customer.pk}/$"))
    form = page.locator("form:has(#add-timeline-entry)")
    form.locator("select[name=kind]").select_option("note")
    form.locator("input[name=title]").fill("初回キックオフの日程を調整")
    form.locator("textarea[name=body]").fill("来週火曜 10:00 で先方と合意。")
    page.click("#add-timeline-entry")
    page.get_by_text("初回キックオフの日程を調整").first.wait_for()
    assert customer.timeline_entries.filter(
        kind="note", title="初回キックオフの日程を調整"
    ).exists()
    page.reload()
    assert (
        page.get_by_text("初回キックオフの日程を調整").count() >= 1
    )  # it was saved, not just shown
    screenshot = tmp_path / "customer-360.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    assert not failed, f"requests that failed: {sorted(set(failed))}"

    # Switch the interface language both ways.
    japanese = _japanese_nav_label()
    page.click('button[data-lang="en"]')
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert "Customers" in _nav(page)
    page.click('button[data-lang="ja"]')
    page.wait_for_function("document.documentElement.lang === 'ja'")
    if japanese is not None:  # strict as soon as the Japanese catalog translates the navigation
        assert japanese in _nav(page)
        assert "Customers" not in _nav(page)
    assert not failed, f"requests that failed: {sorted(set(failed))}"
