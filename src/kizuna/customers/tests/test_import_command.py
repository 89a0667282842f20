"""`kizuna import KIND FILE`: imports, maps columns, reports bad rows with exit code 1."""

import json
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, ImportJob, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    """Messages are asserted in English (the default language is Japanese)."""
    settings.LANGUAGE_CODE = "en"


STANDARD = (
    "account_id,product,start_date,end_date,mrr,quantity,units,bill_period_months,discount\n"
    "A-1,Analytics,2024-01-01,,1000,3,seats,1,0\n"
    'A-2,Analytics,2024-02-01,2025-02-01,"12,000",1,,12,5%\n'
)


def _run(*args: str) -> str:
    out = StringIO()
    call_command("import", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _file(tmp_path: Path, text: str, name: str = "subs.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_importing_the_standard_columns_prints_the_counts(tmp_path: Path) -> None:
    output = _run("subscriptions", _file(tmp_path, STANDARD))

    assert "2 created, 0 updated, 0 unchanged" in output
    assert "2 customers" in output
    assert Subscription.objects.count() == 2
    assert ImportJob.objects.get().report["created"] == 2


def test_json_output_is_the_report(tmp_path: Path) -> None:
    path = _file(tmp_path, STANDARD)
    _run("subscriptions", path)

    report = json.loads(_run("subscriptions", path, "--json"))

    assert (report["ok"], report["created"], report["unchanged"]) == (True, 0, 2)


def test_a_bad_row_exits_with_1_and_a_table_naming_row_column_and_reason(tmp_path: Path) -> None:
    path = _file(tmp_path, STANDARD + "A-3,Analytics,2024/02/30,,100,1,,1,0\n")
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("import", "subscriptions", path, stdout=out, stderr=StringIO())

    assert raised.value.returncode == 1
    table = out.getvalue()
    assert "Rejected" in table
    row = next(line for line in table.splitlines() if "2024/02/30" in line)
    assert "4" in row
    assert "start_date" in row
    assert "is not a date" in row
    assert Customer.objects.count() == 0


def test_map_options_name_the_fields_of_unusual_columns(tmp_path: Path) -> None:
    path = _file(tmp_path, "Company Name,Sector\nAcme,Retail\n", name="customers.csv")

    _run("customers", path, "--map", "Company Name=name", "--map", "Sector=industry")

    assert Customer.objects.get().industry == "Retail"


def test_a_viewer_may_not_import(tmp_path: Path, make_user: Callable[..., User]) -> None:
    make_user(Role.VIEWER, username="vera")

    with pytest.raises(CommandError, match="may not"):
        _run("subscriptions", _file(tmp_path, STANDARD), "--user", "vera")
    assert Subscription.objects.count() == 0


def test_a_cs_manager_imports_as_themself(tmp_path: Path, make_user: Callable[..., User]) -> None:
    manager = make_user(Role.CS_MANAGER, username="mika")

    _run("subscriptions", _file(tmp_path, STANDARD), "--user", "mika")

    assert ImportJob.objects.get().created_by == manager


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        _run("subscriptions", str(tmp_path / "nope.csv"))
