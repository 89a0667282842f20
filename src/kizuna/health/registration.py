"""What the health context plugs into the lower contexts: Settings tabs, Customer 360 panels,
the customer-list column and the daily job (scores, signals, predictions)."""

from collections.abc import Mapping
from datetime import date

from django.utils.translation import gettext_lazy as _


def register() -> None:
    from kizuna.core.extensions import (
        CustomerListColumn,
        CustomerPanel,
        SettingsTab,
        register_customer_list_column,
        register_customer_panel,
        register_settings_tab,
    )
    from kizuna.core.jobs import DailyJob, register_daily_job

    register_settings_tab(
        SettingsTab(
            "health-scorecards", "health:scorecards", _("Health scorecards"), "manage_health", 45
        )
    )
    register_settings_tab(
        SettingsTab("health-signals", "health:signal-rules", _("Risk signals"), "manage_health", 46)
    )
    register_customer_panel(CustomerPanel("health", "health:customer-health", _("Health"), 3))
    register_customer_list_column(CustomerListColumn("health", _("Health"), _list_cells, 50))
    # After onboarding (20), before lifecycle (50), which may read the health bands.
    register_daily_job(DailyJob("health", _run_daily, order=40))


def _run_daily(day: date) -> object:
    from kizuna.health.jobs import run_health

    return run_health(as_of=day)


def _list_cells(customer_ids: list[int]) -> Mapping[int, str]:
    from kizuna.health.views import list_cells

    return list_cells(customer_ids)
