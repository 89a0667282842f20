"""The settings area: users and roles (administrators only), API tokens, role access."""

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.conftest import TEST_PASSWORD
from kizuna.core.models import ApiToken, User
from kizuna.core.roles import Role

USERS = reverse("core:settings-users")
TOKENS = reverse("core:settings-tokens")


@pytest.fixture(autouse=True)
def _english(settings: object) -> None:
    """Assert on English text whatever the Japanese catalog holds."""
    settings.LANGUAGE_CODE = "en"  # type: ignore[attr-defined]


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _html(response: object) -> str:
    return response.content.decode()  # type: ignore[attr-defined]


def test_settings_overview_shows_users_tab_to_administrators_only(
    admin_client: Client, make_user: Callable[..., User]
) -> None:
    assert USERS in _html(admin_client.get(reverse("core:settings")))
    manager = _client(make_user(Role.CS_MANAGER))
    html = _html(manager.get(reverse("core:settings")))
    assert USERS not in html
    assert TOKENS in html
    assert reverse("customers:catalog") in html


# Users and roles


def test_administrator_creates_a_user_with_a_role_and_an_argon2_password(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        USERS,
        {
            "username": "tanaka",
            "first_name": "Yui",
            "last_name": "Tanaka",
            "email": "tanaka@example.com",
            "role": Role.ONBOARDING_CSM,
            "password1": "kizuna-onboard-2026!",
            "password2": "kizuna-onboard-2026!",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(username="tanaka")
    assert user.role == Role.ONBOARDING_CSM
    assert user.password.startswith("argon2$")
    assert user.check_password("kizuna-onboard-2026!")
    html = _html(admin_client.get(USERS))
    assert "User tanaka was created." in html
    assert "Onboarding CSM" in html
    assert Client().login(username="tanaka", password="kizuna-onboard-2026!")


@pytest.mark.parametrize(
    ("changes", "field_error"),
    [
        ({"password2": "something-else-entirely"}, "The two passwords differ."),
        ({"password1": "12345678", "password2": "12345678"}, "This password is too common."),
        ({"username": "admin"}, "A user with that username already exists."),
        ({"username": "bad name!"}, "Enter a valid username."),
        ({"role": "overlord"}, "Select a valid choice."),
    ],
)
def test_creating_a_user_with_bad_input_names_the_problem(
    admin_client: Client, changes: dict[str, str], field_error: str
) -> None:
    data = {
        "username": "tanaka",
        "role": Role.VIEWER,
        "password1": "kizuna-onboard-2026!",
        "password2": "kizuna-onboard-2026!",
        **changes,
    }
    response = admin_client.post(USERS, data)
    assert response.status_code == 400
    assert field_error in _html(response)
    assert not User.objects.filter(username__in=["tanaka", "bad name!"]).exists()


def test_administrator_changes_a_role(admin_client: Client, make_user: Callable[..., User]) -> None:
    member = make_user(Role.VIEWER, username="kato")
    response = admin_client.post(
        reverse("core:settings-user-edit", args=[member.pk]),
        {"role": Role.EXPANSION_CSM, "is_active": "on", "email": "kato@example.com"},
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.role, member.is_active, member.email) == (
        Role.EXPANSION_CSM,
        True,
        "kato@example.com",
    )


def test_a_deactivated_user_cannot_sign_in_and_their_tokens_stop_working(
    admin_client: Client, make_user: Callable[..., User]
) -> None:
    member = make_user(Role.ADOPTION_CSM, username="ito")
    _token, raw = ApiToken.issue(user=member, name="script")
    response = admin_client.post(reverse("core:settings-user-deactivate", args=[member.pk]))
    assert response.status_code == 302
    member.refresh_from_db()
    assert not member.is_active
    assert "can no longer sign in" in _html(admin_client.get(USERS))
    assert not Client().login(username="ito", password=TEST_PASSWORD)
    assert ApiToken.find_active(raw) is None


def test_administrators_cannot_deactivate_themselves_or_remove_the_last_admin(
    admin_client: Client, admin_user: User
) -> None:
    admin_client.post(reverse("core:settings-user-deactivate", args=[admin_user.pk]))
    admin_user.refresh_from_db()
    assert admin_user.is_active
    assert "You cannot deactivate yourself." in _html(admin_client.get(USERS))

    response = admin_client.post(
        reverse("core:settings-user-edit", args=[admin_user.pk]),
        {"role": Role.VIEWER, "is_active": "on"},
    )
    assert response.status_code == 400
    assert "Keep at least one active administrator." in _html(response)
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN


@pytest.mark.parametrize(
    "role",
    [Role.CS_MANAGER, Role.ONBOARDING_CSM, Role.ADOPTION_CSM, Role.EXPANSION_CSM, Role.VIEWER],
)
def test_users_and_roles_are_for_administrators_only(
    make_user: Callable[..., User], role: str
) -> None:
    client = _client(make_user(role))
    target = make_user(Role.VIEWER)
    assert client.get(USERS).status_code == 403
    assert client.post(USERS, {"username": "x", "role": Role.ADMIN}).status_code == 403
    edit = reverse("core:settings-user-edit", args=[target.pk])
    assert client.post(edit, {"role": Role.ADMIN, "is_active": "on"}).status_code == 403
    deactivate = reverse("core:settings-user-deactivate", args=[target.pk])
    assert client.post(deactivate).status_code == 403
    target.refresh_from_db()
    assert (target.role, target.is_active) == (Role.VIEWER, True)
    assert not User.objects.filter(username="x").exists()


# API tokens


@pytest.mark.parametrize("role", list(Role))
def test_every_signed_in_user_creates_a_token_shown_once_and_stored_hashed(
    make_user: Callable[..., User], role: str
) -> None:
    user = make_user(role)
    client = _client(user)
    response = client.post(TOKENS, {"name": "CRM sync"})
    html = _html(response)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=user)
    raw = html.split('id="raw-token">', 1)[1].split("<", 1)[0]
    assert raw.startswith("kzn_")
    assert token.key_hash != raw
    assert raw not in token.key_hash
    assert ApiToken.find_active(raw) == token
    again = _html(client.get(TOKENS))
    assert raw not in again
    assert f"{token.hint}…" in again
    assert "CRM sync" in again


def test_a_token_without_a_name_is_refused(admin_client: Client) -> None:
    response = admin_client.post(TOKENS, {"name": "  "})
    assert response.status_code == 400
    assert "This field is required." in _html(response)
    assert not ApiToken.objects.exists()


def test_a_revoked_token_no_longer_authenticates_the_api(
    make_user: Callable[..., User],
) -> None:
    user = make_user(Role.VIEWER)
    token, raw = ApiToken.issue(user=user, name="laptop")
    client = _client(user)
    response = client.post(reverse("core:settings-token-revoke", args=[token.pk]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiToken.find_active(raw) is None
    html = _html(client.get(TOKENS))
    assert "was revoked" in html
    assert "Revoked " in html


def test_nobody_sees_or_revokes_another_users_tokens(
    make_user: Callable[..., User], admin_client: Client
) -> None:
    owner = make_user(Role.ADOPTION_CSM, username="owner")
    token, raw = ApiToken.issue(user=owner, name="owner's script")
    assert "owner&#x27;s script" not in _html(admin_client.get(TOKENS))
    response = admin_client.post(reverse("core:settings-token-revoke", args=[token.pk]))
    assert response.status_code == 403
    assert ApiToken.find_active(raw) == token


def test_tokens_list_shows_when_a_token_was_last_used(make_user: Callable[..., User]) -> None:
    user = make_user(Role.VIEWER)
    token, _raw = ApiToken.issue(user=user, name="report bot")
    used = timezone.now().replace(year=2026, month=5, day=4, hour=3, minute=2)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=used)
    html = _html(_client(user).get(TOKENS))
    assert timezone.localtime(used).strftime("%Y-%m-%d %H:%M") in html


def test_settings_pages_send_strangers_to_sign_in(client: Client, db: None) -> None:
    for url in (reverse("core:settings"), USERS, TOKENS):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("core:login") in response["Location"]
