"""Template context shared by every page: the navigation of the product's areas."""

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from kizuna.core.extensions import customer_panels, settings_tabs

# (url name or None for an area still to come, label, key used to highlight the current area)
NAVIGATION = (
    ("core:home", _("Home"), "home"),
    ("customers:list", _("Customers"), "customers"),
    ("lifecycle:portfolio", _("Portfolio"), "portfolio"),
    ("onboarding:board", _("Onboarding"), "onboarding"),
    ("health:overview", _("Health"), "health"),
    ("playbooks:my-day", _("Tasks"), "tasks"),
    (None, _("Tech touch"), "techtouch"),
    (None, _("Surveys"), "surveys"),
    (None, _("Expansion"), "expansion"),
    ("reports:dashboard", _("Reports"), "reports"),
    ("core:settings", _("Settings"), "settings"),
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    return {
        "navigation": NAVIGATION,
        "extra_settings_tabs": settings_tabs(),
        "customer_panels": customer_panels(),
    }
