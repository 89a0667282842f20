"""Settings come from the environment with safe production defaults; the `kizuna` script works."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import kizuna.config.settings as s;"
        "print(s.DEBUG, s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'], s.SESSION_COOKIE_SECURE)"
    )
    clean = {
        k: v for k, v in os.environ.items() if k not in {"KIZUNA_ENV", "DATABASE_URL", "DEBUG"}
    }
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip


def test_production_refuses_to_start_without_a_secret_key() -> None:
    clean = {"SECRET_KEY": "", "ALLOWED_HOSTS": ""}
    result = _load_settings(clean)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_defaults_are_safe_when_configured() -> None:
    result = _load_settings(
        {"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "cs.example.com",
         "DATABASE_URL": "postgres://kizuna@db.example.com:5432/kizuna"}
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False", "['cs.example.com']", "django.db.backends.postgresql", "True",
    ]  # fmt: skip


def test_dev_mode_gives_obvious_local_defaults() -> None:
    result = _load_settings({"KIZUNA_ENV": "dev", "SECRET_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1)[0] == "True"
    assert "django.db.backends.sqlite3" in result.stdout
    assert "'127.0.0.1'" in result.stdout


def test_kizuna_console_script_lists_our_commands() -> None:
    script = Path(sys.executable).parent / "kizuna"
    result = subprocess.run(
        [str(script), "help"], env={**os.environ, "KIZUNA_ENV": "dev"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate"):
        assert command in result.stdout


def test_find_python_picks_an_interpreter_of_at_least_3_12() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "find-python")], cwd=ROOT, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    interpreter = result.stdout.strip()
    version = subprocess.run(
        [interpreter, "-c", "import sys; print(sys.version_info >= (3, 12))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "True"
