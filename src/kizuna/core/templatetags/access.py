"""Template filter asking the permission rules: ``{% if user|can:"manage_users" %}``."""

from typing import Any

from django import template

from kizuna.core.access import user_can
from kizuna.core.roles import Capability

register = template.Library()


@register.filter
def can(user: Any, capability: str) -> bool:
    """True when the user's role grants the capability (an unknown capability is never granted)."""
    try:
        return user_can(user, Capability(capability))
    except ValueError:
        return False
