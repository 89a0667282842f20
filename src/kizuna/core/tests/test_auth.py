"""Signing in and out, password changes, Argon2 hashes, throttled failures and the UI language."""

import re
from collections.abc import Callable

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from kizuna.conftest import TEST_PASSWORD
from kizuna.core.models import LoginFailure, User
from kizuna.core.roles import Role

LOGIN = reverse("core:login")
THROTTLED = "Too many failed sign-in attempts"


def _sign_in(client: Client, username: str, password: str) -> object:
    return client.post(LOGIN, {"username": username, "password": password})


def test_a_user_signs_in_reaches_home_and_signs_out(make_user: Callable[..., User]) -> None:
    make_user(Role.ADOPTION_CSM, username="sato")
    client = Client()
    response = _sign_in(client, "sato", TEST_PASSWORD)
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert response["Location"] == reverse("core:home")  # type: ignore[index]
    assert client.get(reverse("core:home")).status_code == 200

    response = client.post(reverse("core:logout"))
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert client.get(reverse("core:home")).status_code == 302


def test_a_wrong_password_keeps_the_user_out(make_user: Callable[..., User]) -> None:
    make_user(Role.VIEWER, username="sato")
    client = Client()
    response = _sign_in(client, "sato", "not-the-password")
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert client.get(reverse("core:home")).status_code == 302
    assert LoginFailure.objects.filter(username="sato").count() == 1


def test_passwords_are_stored_with_argon2(make_user: Callable[..., User]) -> None:
    user = make_user(Role.VIEWER)
    assert user.password.startswith("argon2$")
    assert TEST_PASSWORD not in user.password


def test_a_user_changes_their_password(make_user: Callable[..., User]) -> None:
    user = make_user(Role.VIEWER, username="sato")
    client = Client()
    client.force_login(user)
    response = client.post(
        reverse("core:password-change"),
        {
            "old_password": TEST_PASSWORD,
            "new_password1": "a-brand-new-passphrase-77",
            "new_password2": "a-brand-new-passphrase-77",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("core:password-changed")
    user.refresh_from_db()
    assert user.password.startswith("argon2$")
    assert user.check_password("a-brand-new-passphrase-77")
    assert client.get(reverse("core:home")).status_code == 200  # the session survives
    assert not Client().login(username="sato", password=TEST_PASSWORD)


def test_a_password_change_with_the_wrong_old_password_is_refused(
    make_user: Callable[..., User],
) -> None:
    user = make_user(Role.VIEWER)
    client = Client()
    client.force_login(user)
    response = client.post(
        reverse("core:password-change"),
        {
            "old_password": "wrong",
            "new_password1": "a-brand-new-passphrase-77",
            "new_password2": "a-brand-new-passphrase-77",
        },
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert user.check_password(TEST_PASSWORD)


def test_repeated_failures_refuse_even_the_right_password_but_not_other_users(
    make_user: Callable[..., User], settings: object
) -> None:
    settings.LANGUAGE_CODE = "en"  # type: ignore[attr-defined]
    limit = 3
    settings.KIZUNA_LOGIN_MAX_FAILURES = limit  # type: ignore[attr-defined]
    make_user(Role.VIEWER, username="sato")
    make_user(Role.VIEWER, username="suzuki")
    client = Client()
    for _attempt in range(limit):
        html = _sign_in(client, "sato", "guess").content.decode()  # type: ignore[attr-defined]
        assert THROTTLED not in html

    response = _sign_in(client, "sato", TEST_PASSWORD)
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert THROTTLED in response.content.decode()  # type: ignore[attr-defined]
    assert client.get(reverse("core:home")).status_code == 302

    # The username is what is throttled, whatever its case.
    assert THROTTLED in _sign_in(Client(), "SATO", TEST_PASSWORD).content.decode()  # type: ignore[attr-defined]

    other = Client()
    assert _sign_in(other, "suzuki", TEST_PASSWORD).status_code == 302  # type: ignore[attr-defined]


def test_throttling_ends_when_the_window_has_passed(
    make_user: Callable[..., User], settings: object
) -> None:
    settings.KIZUNA_LOGIN_MAX_FAILURES = 2  # type: ignore[attr-defined]
    make_user(Role.VIEWER, username="sato")
    client = Client()
    for _attempt in range(2):
        _sign_in(client, "sato", "guess")
    assert _sign_in(client, "sato", TEST_PASSWORD).status_code == 200  # type: ignore[attr-defined]
    settings.KIZUNA_LOGIN_FAILURE_WINDOW_SECONDS = 0  # type: ignore[attr-defined]
    assert _sign_in(client, "sato", TEST_PASSWORD).status_code == 302  # type: ignore[attr-defined]
    assert not LoginFailure.objects.filter(username="sato").exists()


def test_a_deactivated_user_cannot_sign_in(make_user: Callable[..., User]) -> None:
    make_user(Role.ADMIN, username="gone", is_active=False)
    assert _sign_in(Client(), "gone", TEST_PASSWORD).status_code == 200  # type: ignore[attr-defined]


# The UI language


def test_japanese_is_the_default_language(admin_client: Client) -> None:
    html = admin_client.get(reverse("core:home")).content.decode()
    assert '<html lang="ja">' in html


def test_the_browser_language_is_used(admin_client: Client) -> None:
    response = admin_client.get(reverse("core:home"), headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in response.content.decode()


def test_the_language_switch_is_remembered_in_a_cookie(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("set_language"), {"language": "en", "next": reverse("customers:list")}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:list")
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert settings.LANGUAGE_COOKIE_NAME == "kizuna_language"
    assert cookie.value == "en"
    assert int(cookie["max-age"]) == settings.LANGUAGE_COOKIE_AGE
    # The cookie wins over the browser's Accept-Language.
    html = admin_client.get(
        reverse("core:home"), headers={"Accept-Language": "ja"}
    ).content.decode()
    assert '<html lang="en">' in html
    back = admin_client.post(reverse("set_language"), {"language": "ja", "next": "/"})
    assert back.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ja"
    assert '<html lang="ja">' in admin_client.get(reverse("core:home")).content.decode()


def test_the_sign_in_page_switches_language_before_signing_in(client: Client, db: None) -> None:
    response = client.post(reverse("set_language"), {"language": "en", "next": LOGIN})
    assert response.status_code == 302
    html = client.get(LOGIN).content.decode()
    assert '<html lang="en">' in html
    assert "Sign in to Kizuna" in html


@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_language_switch_marks_the_current_language(
    admin_client: Client, language: str
) -> None:
    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    html = admin_client.get(reverse("core:settings")).content.decode()
    assert re.search(rf'value="{language}" data-lang="{language}"\s+class="linklike current"', html)
