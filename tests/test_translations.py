"""The Japanese translation is complete and compiled: no English string leaks into the ja UI."""

import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

LOCALE = Path(__file__).resolve().parent.parent / "src" / "kizuna" / "locale"
PO_FILE = LOCALE / "ja" / "LC_MESSAGES" / "django.po"
MO_FILE = PO_FILE.with_suffix(".mo")


def _msgids(po_text: str) -> set[str]:
    """The msgids of a .po file (multi-line ids joined), header excluded."""
    ids: set[str] = set()
    current: list[str] | None = None
    for line in po_text.splitlines():
        if line.startswith("msgid "):
            current = [line[6:].strip().strip('"')]
        elif current is not None and line.startswith('"'):
            current.append(line.strip().strip('"'))
        elif current is not None:
            ids.add("".join(current))
            current = None
    ids.discard("")
    return ids


def test_every_japanese_message_is_translated_and_none_is_fuzzy() -> None:
    assert shutil.which("msgfmt"), "gettext is missing: make test installs it"
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(PO_FILE)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr, result.stderr
    assert "fuzzy" not in result.stderr, result.stderr


def test_compiled_catalog_matches_the_po_file(tmp_path: Path) -> None:
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(compiled), str(PO_FILE)], check=True)
    assert MO_FILE.read_bytes() == compiled.read_bytes(), "run `make messages` and commit the .mo"


def test_every_translatable_string_in_the_code_is_in_the_catalog(
    tmp_path: Path, settings: pytest.FixtureRequest
) -> None:
    assert shutil.which("xgettext"), "gettext is missing: make test installs it"
    source = LOCALE.parent
    work = tmp_path / "kizuna"
    shutil.copytree(source, work, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (work / "locale").mkdir()
    settings.LOCALE_PATHS = [work / "locale"]  # type: ignore[attr-defined]
    import os

    cwd = os.getcwd()
    os.chdir(work)
    try:
        call_command("makemessages", locale=["ja"], verbosity=0, no_obsolete=True)
    finally:
        os.chdir(cwd)
    fresh = _msgids((work / "locale" / "ja" / "LC_MESSAGES" / "django.po").read_text())
    committed = _msgids(PO_FILE.read_text())
    missing = sorted(fresh - committed)
    assert not missing, (
        f"{len(missing)} strings not in the ja catalog (make messages): {missing[:10]}"
    )
