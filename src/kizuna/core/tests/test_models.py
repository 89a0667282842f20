"""Staff user helpers."""

from kizuna.core.models import User


def test_display_name_puts_the_family_name_first_for_japanese_names() -> None:
    assert User(username="u", first_name="直人", last_name="岡本").display_name == "岡本 直人"


def test_display_name_keeps_western_order_for_latin_names() -> None:
    assert User(username="u", first_name="Jane", last_name="Smith").display_name == "Jane Smith"


def test_display_name_falls_back_to_the_username() -> None:
    assert User(username="jsmith").display_name == "jsmith"
