"""The API answers for itself: tokens work, strangers get 401, never a redirect to the login page."""

import pytest
from django.test import Client

from kizuna.core.models import ApiToken, User


@pytest.mark.django_db
def test_api_without_credentials_answers_401_not_a_login_redirect(client: Client) -> None:
    response = client.get("/api/v1/customers")
    assert response.status_code == 401


@pytest.mark.django_db
def test_api_accepts_a_bearer_token() -> None:
    user = User.objects.create_user(username="reader", role="viewer")
    _token, raw = ApiToken.issue(user=user, name="script")
    response = Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/v1/customers")
    assert response.status_code == 200


@pytest.mark.django_db
def test_api_refuses_an_unknown_token() -> None:
    client = Client(headers={"Authorization": "Bearer kzn_not-a-real-token"})
    assert client.get("/api/v1/customers").status_code == 401
