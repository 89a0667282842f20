"""Every page of the shell answers for a signed-in user and sends strangers to sign in."""

import pytest
from django.test import Client
from django.urls import reverse

PAGES = ["core:home", "customers:list", "reports:dashboard", "core:settings"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_require_sign_in(client: Client, name: str, db: None) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert reverse("core:login") in response["Location"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_render_for_signed_in_user(admin_client: Client, name: str) -> None:
    assert admin_client.get(reverse(name)).status_code == 200
