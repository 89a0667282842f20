"""The caller and their API tokens over the REST API; who the token auth lets in and who not."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from kizuna.core.models import ApiToken, User
from kizuna.core.roles import Role

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def _bearer(raw: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {raw}"})


def _token_for(user: User, name: str = "script") -> tuple[ApiToken, Client]:
    token, raw = ApiToken.issue(user=user, name=name)
    return token, _bearer(raw)


def _post_json(client: Client, path: str, body: Any) -> Any:
    return client.post(API + path, json.dumps(body), content_type="application/json")


def test_me_tells_the_caller_their_role_capabilities_and_language(
    make_user: Callable[..., User],
) -> None:
    user = make_user(
        Role.ADOPTION_CSM, username="kato", first_name="Ren", last_name="Kato", language="en"
    )
    _token, client = _token_for(user)
    response = client.get(API + "/me")
    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": "kato",
        "name": "Ren Kato",
        "email": "kato@example.com",
        "role": "adoption_csm",
        "is_superuser": False,
        "capabilities": ["view", "edit_customers", "write_timeline"],
        "language": "en",
    }


def test_me_falls_back_to_the_installation_language_and_lists_a_viewers_one_right(
    make_user: Callable[..., User], settings: Any
) -> None:
    settings.LANGUAGE_CODE = "ja"
    _token, client = _token_for(make_user(Role.VIEWER))
    body = client.get(API + "/me").json()
    assert (body["capabilities"], body["language"]) == (["view"], "ja")


def test_a_signed_in_session_can_ask_who_it_is(admin_client: Client) -> None:
    body = admin_client.get(API + "/me").json()
    assert (body["username"], body["role"]) == ("admin", "admin")
    assert "manage_users" in body["capabilities"]


def test_a_created_token_is_shown_once_and_then_authenticates(
    make_user: Callable[..., User],
) -> None:
    user = make_user(Role.VIEWER, username="reader")
    _first, client = _token_for(user, "laptop")
    response = _post_json(client, "/tokens", {"name": "  CRM sync  "})
    assert response.status_code == 201
    body = response.json()
    raw = body["token"]
    assert raw.startswith("kzn_")
    assert (body["name"], body["hint"], body["revoked_at"]) == ("CRM sync", raw[:8], None)
    stored = ApiToken.objects.get(pk=body["id"])
    assert (stored.user, stored.key_hash != raw) == (user, True)
    assert _bearer(raw).get(API + "/me").json()["username"] == "reader"
    listed = client.get(API + "/tokens")
    assert raw not in listed.content.decode()
    assert {token["name"] for token in listed.json()} == {"laptop", "CRM sync"}
    assert all("token" not in token for token in listed.json())


def test_a_token_needs_a_name_of_at_most_100_characters(make_user: Callable[..., User]) -> None:
    _token, client = _token_for(make_user(Role.VIEWER))
    for body in ({"name": "   "}, {"name": "x" * 101}, {}, {"name": "ok", "scope": "all"}):
        response = _post_json(client, "/tokens", body)
        assert response.status_code == 422, body
        locs = {str(error["loc"][-1]) for error in response.json()["detail"]}
        assert locs == ({"scope"} if "scope" in body else {"name"})
    assert ApiToken.objects.count() == 1


def test_tokens_list_shows_only_the_callers_tokens_active_first(
    make_user: Callable[..., User],
) -> None:
    user = make_user(Role.VIEWER)
    _own, client = _token_for(user, "current")
    old, _raw = ApiToken.issue(user=user, name="old")
    ApiToken.objects.filter(pk=old.pk).update(revoked_at=timezone.now())
    _token_for(make_user(Role.ADMIN), "someone else's")
    body = client.get(API + "/tokens").json()
    assert [token["name"] for token in body] == ["current", "old"]
    assert body[0]["revoked_at"] is None
    assert body[1]["revoked_at"] is not None


def test_revoking_a_token_stops_it_at_once(make_user: Callable[..., User]) -> None:
    user = make_user(Role.VIEWER)
    _main, client = _token_for(user, "main")
    spare, spare_client = _token_for(user, "spare")
    assert spare_client.get(API + "/me").status_code == 200
    response = client.delete(f"{API}/tokens/{spare.pk}")
    assert response.status_code == 204
    spare.refresh_from_db()
    assert spare.revoked_at is not None
    assert spare_client.get(API + "/me").status_code == 401
    assert client.get(API + "/me").status_code == 200
    # Revoking again keeps the first time.
    first = spare.revoked_at
    assert client.delete(f"{API}/tokens/{spare.pk}").status_code == 204
    spare.refresh_from_db()
    assert spare.revoked_at == first


def test_a_token_can_revoke_itself(make_user: Callable[..., User]) -> None:
    token, client = _token_for(make_user(Role.VIEWER))
    assert client.delete(f"{API}/tokens/{token.pk}").status_code == 204
    assert client.get(API + "/me").status_code == 401


def test_nobody_revokes_another_users_token(make_user: Callable[..., User]) -> None:
    _admin_token, admin = _token_for(make_user(Role.ADMIN))
    theirs, their_client = _token_for(make_user(Role.VIEWER))
    response = admin.delete(f"{API}/tokens/{theirs.pk}")
    assert response.status_code == 404
    assert their_client.get(API + "/me").status_code == 200
    assert admin.delete(f"{API}/tokens/987654").status_code == 404


def test_a_revoked_token_gets_401(make_user: Callable[..., User]) -> None:
    token, client = _token_for(make_user(Role.ADMIN))
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    response = client.get(API + "/customers")
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_an_inactive_users_token_gets_401(make_user: Callable[..., User]) -> None:
    user = make_user(Role.ADMIN)
    _token, client = _token_for(user)
    assert client.get(API + "/me").status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(API + "/me").status_code == 401
    assert client.get(API + "/customers").status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer kzn_not-a-real-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "Token kzn_whatever"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_no_or_a_wrong_token_gets_401(headers: dict[str, str], db: None) -> None:
    client = Client(headers=headers)
    for path in ("/me", "/tokens", "/customers"):
        assert client.get(API + path).status_code == 401, (headers, path)
    assert _post_json(client, "/tokens", {"name": "sneaky"}).status_code == 401
    assert not ApiToken.objects.exists()


def test_using_a_token_records_when_at_most_once_a_minute(make_user: Callable[..., User]) -> None:
    token, client = _token_for(make_user(Role.VIEWER))
    assert token.last_used_at is None
    client.get(API + "/me")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    client.get(API + "/me")
    token.refresh_from_db()
    assert token.last_used_at == first
    earlier = first - timedelta(minutes=5)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=earlier)
    client.get(API + "/me")
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert token.last_used_at > earlier


def test_every_endpoint_of_this_router_is_in_the_api_guide() -> None:
    from pathlib import Path

    from kizuna.core.api import router

    guide = (Path(__file__).resolve().parents[4] / "docs" / "api.md").read_text()
    routes = {
        (method, path)
        for path, path_view in router.path_operations.items()
        for operation in path_view.operations
        for method in operation.methods
    }
    assert len(routes) == 4
    for method, path in routes:
        assert f"{method} /api/v1{path}" in guide, f"{method} {path} is not in docs/api.md"
