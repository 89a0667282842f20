"""Fixtures every context's tests may use: users of each role, API clients."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from kizuna.core.models import ApiToken, User
from kizuna.core.roles import Role

TEST_PASSWORD = "correct-horse-battery-staple-42"


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    def make(role: str = Role.ADMIN, username: str | None = None, **fields: object) -> User:
        name = username or f"{role}-{User.objects.count() + 1}"
        return User.objects.create_user(
            username=name,
            email=f"{name}@example.com",
            password=TEST_PASSWORD,
            role=role,
            **fields,
        )

    return make


@pytest.fixture
def admin_user(make_user: Callable[..., User]) -> User:
    return make_user(Role.ADMIN, username="admin")


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def api_client(make_user: Callable[..., User]) -> Callable[..., Client]:
    """A client that sends a bearer token of a fresh user with the given role."""

    def make(role: str = Role.ADMIN) -> Client:
        user = make_user(role)
        _token, raw = ApiToken.issue(user=user, name="tests")
        return Client(headers={"Authorization": f"Bearer {raw}"})

    return make


@pytest.fixture(autouse=True)
def isolated_data_dir(settings: Any, tmp_path: Path) -> Path:
    """Every test gets its own data directory, so lake files never leak between tests."""
    data_dir = tmp_path / "kizuna-data"
    data_dir.mkdir()
    settings.DATA_DIR = data_dir
    return data_dir
