"""Every management command, environment setting and API route of the newer contexts is
documented (Datasette's habit)."""

import re
from importlib import import_module
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "kizuna"
OPERATOR_DOC = ROOT / "docs" / "operator.md"
API_DOC = ROOT / "docs" / "api.md"
USER_DOCS = sorted((ROOT / "docs" / "user").glob("*.md"))

# os.environ.get("NAME"…), os.environ["NAME"] and the settings helpers _env_bool/_env_list("NAME"…)
ENV_READ = re.compile(
    r"""(?:os\.environ\.get\(|os\.environ\[|_env_\w+\()\s*["']([A-Z][A-Z0-9_]*)["']"""
)


def _commands() -> list[str]:
    return sorted(
        path.stem
        for path in SRC.glob("*/management/commands/*.py")
        if not path.stem.startswith("_")
    )


def _environment_variables() -> list[str]:
    """Variables read by settings.py and by our management commands (e.g. WEB_WORKERS)."""
    sources = [SRC / "config" / "settings.py", *SRC.glob("*/management/commands/*.py")]
    return sorted({name for path in sources for name in ENV_READ.findall(path.read_text())})


def test_the_scan_finds_the_commands_and_settings_it_guards() -> None:
    assert {"serve", "demo"} <= set(_commands())
    assert {"SECRET_KEY", "DATABASE_URL", "KIZUNA_ENV", "WEB_WORKERS"} <= set(
        _environment_variables()
    )


@pytest.mark.parametrize("command", _commands())
def test_every_management_command_is_documented(command: str) -> None:
    docs = "\n".join(path.read_text() for path in [OPERATOR_DOC, *USER_DOCS])
    assert re.search(rf"\bkizuna {re.escape(command)}\b", docs), (
        f"`kizuna {command}` is not mentioned in docs/operator.md or docs/user/*.md"
    )


@pytest.mark.parametrize("name", _environment_variables())
def test_every_environment_variable_is_documented_for_operators(name: str) -> None:
    assert f"`{name}`" in OPERATOR_DOC.read_text(), (
        f"`{name}` is not documented in docs/operator.md"
    )


# The django-ninja routers whose every route docs/api.md must describe.
DOCUMENTED_ROUTERS = (
    "kizuna.health.api",
    "kizuna.playbooks.api_tasks",
    "kizuna.playbooks.api_playbooks",
)


def _api_routes(module_name: str) -> list[tuple[str, str]]:
    """(METHOD, full path) of every operation of the module's router, as the API serves it:
    the API's root (``/api/v1``), the prefix the router is mounted with in
    ``kizuna.config.api``, and the router's own path, e.g. ``("GET", "/api/v1/tasks/{task_id}")``."""
    from kizuna.config.api import api

    router = import_module(module_name).router
    prefixes = [prefix for prefix, mounted in api._routers if mounted is router]
    assert prefixes, f"{module_name}.router is not mounted in kizuna.config.api"
    root = reverse(f"{api.urls_namespace}:api-root").rstrip("/")
    routes: list[tuple[str, str]] = []
    for prefix in prefixes:
        for path, view in router.path_operations.items():
            full = (
                root + "/" + "/".join(part.strip("/") for part in (prefix, path) if part.strip("/"))
            )
            routes.extend((method, full) for op in view.operations for method in op.methods)
    return sorted(set(routes))


def test_the_scan_finds_the_api_routes_it_guards() -> None:
    health = _api_routes("kizuna.health.api")
    tasks = _api_routes("kizuna.playbooks.api_tasks")
    playbooks = _api_routes("kizuna.playbooks.api_playbooks")
    assert ("GET", "/api/v1/health/customers/{customer_id}") in health
    assert ("POST", "/api/v1/tasks/{task_id}/complete") in tasks
    assert ("DELETE", "/api/v1/playbooks/{playbook_id}") in playbooks
    assert len(health) >= 8
    assert len(tasks) >= 5
    assert len(playbooks) >= 16


def _documents(doc: str, method: str, path: str) -> bool:
    """The doc names the route as `METHOD /api/v1/path`, optionally followed by a query."""
    return re.search(rf"`{method} {re.escape(path)}(?:\?[^`]*)?`", doc) is not None


def test_the_route_check_tells_a_documented_route_from_a_longer_one() -> None:
    doc = "- `GET /api/v1/tasks?owner=me` and `POST /api/v1/tasks/{task_id}/complete`"
    assert _documents(doc, "GET", "/api/v1/tasks")
    assert _documents(doc, "POST", "/api/v1/tasks/{task_id}/complete")
    assert not _documents(doc, "POST", "/api/v1/tasks")
    assert not _documents(doc, "GET", "/api/v1/tasks/{task_id}")


@pytest.mark.parametrize(
    ("method", "path"),
    [route for module in DOCUMENTED_ROUTERS for route in _api_routes(module)],
)
def test_every_api_route_is_documented(method: str, path: str) -> None:
    assert _documents(API_DOC.read_text(), method, path), (
        f"`{method} {path}` is not described in docs/api.md"
    )
