"""Settings → Onboarding calendar: the settings and holidays that move due dates."""

from collections.abc import Callable
from datetime import date

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.onboarding.calendar import due_date
from kizuna.onboarding.models import Holiday, OnboardingSettings

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_for(make_user: Callable[..., User]) -> Callable[..., Client]:
    def make(role: str) -> Client:
        client = Client()
        client.force_login(make_user(role))
        return client

    return make


def test_a_manager_adds_a_holiday_that_moves_due_dates(
    client_for: Callable[..., Client],
) -> None:
    client = client_for(Role.CS_MANAGER)
    # 2026-05-01 is a Friday: start + 3 days is Monday 05-04, a holiday, so the 5th.
    response = client.post(
        reverse("onboarding:settings"), {"day": "2026-05-04", "name": "みどりの日"}
    )

    assert response.status_code == 302
    assert list(Holiday.objects.values_list("day", "name")) == [(date(2026, 5, 4), "みどりの日")]
    assert due_date(date(2026, 5, 1), 3) == date(2026, 5, 5)
    page = client.get(reverse("onboarding:settings")).content.decode()
    assert "みどりの日" in page


def test_settings_are_saved_and_bad_values_name_the_field(
    client_for: Callable[..., Client],
) -> None:
    client = client_for(Role.ONBOARDING_CSM)
    url = reverse("onboarding:settings")
    fields = {"save_settings": "1", "at_risk_days": "5", "link_days": "30"}

    assert client.post(url, fields).status_code == 302
    saved = OnboardingSettings.load()
    assert (saved.skip_weekends, saved.at_risk_days, saved.link_days) == (False, 5, 30)
    # Saturday 2026-05-02 is a due date again once weekends are not skipped.
    assert due_date(date(2026, 5, 1), 1) == date(2026, 5, 2)

    with translation.override("en"):
        refused = client.post(url, {**fields, "link_days": "0"}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400
    assert "Between 1 and 366 days." in refused.content.decode()
    assert OnboardingSettings.load().link_days == 30


def test_a_duplicate_holiday_is_refused_and_a_viewer_cannot_open_the_page(
    client_for: Callable[..., Client],
) -> None:
    Holiday.objects.create(day=date(2026, 5, 4), name="みどりの日")
    client = client_for(Role.CS_MANAGER)

    response = client.post(reverse("onboarding:settings"), {"day": "2026-05-04", "name": "x"})

    assert response.status_code == 400
    assert Holiday.objects.count() == 1
    assert client_for(Role.VIEWER).get(reverse("onboarding:settings")).status_code == 403
    remove = reverse("onboarding:holiday-delete", args=[Holiday.objects.get().pk])
    assert client.post(remove).status_code == 302
    assert not Holiday.objects.exists()
