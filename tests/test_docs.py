"""Every management command and every environment setting is documented (Datasette's habit)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "kizuna"
OPERATOR_DOC = ROOT / "docs" / "operator.md"
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
