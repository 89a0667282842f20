"""The suite runs on the database CI asks for; a PostgreSQL run that fell back would be a lie."""

import os

import pytest
from django.db import connection


@pytest.mark.django_db
def test_suite_runs_on_postgresql_when_ci_asks_for_it() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    if os.environ.get("KIZUNA_EXPECT_POSTGRES"):
        assert connection.vendor == "postgresql"
