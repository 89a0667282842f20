"""What the lifecycle context plugs into the lower contexts: Settings tabs, Customer 360
panels, the daily job and the customer-save hook that keeps state history complete."""

from typing import Any

from django.db.models.signals import post_save
from django.utils.translation import gettext_lazy as _


def register() -> None:
    from kizuna.core.extensions import (
        CustomerPanel,
        SettingsTab,
        register_customer_panel,
        register_settings_tab,
    )
    from kizuna.core.jobs import DailyJob, register_daily_job
    from kizuna.customers.models import Customer

    register_settings_tab(
        SettingsTab("segments", "lifecycle:segments", _("Segments"), "manage_lifecycle", 70)
    )
    register_settings_tab(
        SettingsTab(
            "touch-policy", "lifecycle:touch-policy", _("Touch models"), "manage_lifecycle", 71
        )
    )
    register_settings_tab(
        SettingsTab("stages", "lifecycle:stage-settings", _("Stages"), "manage_lifecycle", 72)
    )
    register_settings_tab(
        SettingsTab("teams", "lifecycle:teams", _("Teams and assignment"), "assign_owners", 73)
    )
    register_customer_panel(
        CustomerPanel("lifecycle", "lifecycle:customer-lifecycle", _("Lifecycle"), 5)
    )
    register_customer_panel(
        CustomerPanel("owners", "lifecycle:customer-owners", _("Owners and handoffs"), 6)
    )
    register_daily_job(DailyJob("lifecycle", _run_daily, order=50))
    post_save.connect(_customer_saved, sender=Customer, dispatch_uid="lifecycle-history")


def _run_daily(day: Any) -> object:
    from kizuna.lifecycle.jobs import run_lifecycle

    return run_lifecycle(as_of=day)


def _customer_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    from kizuna.lifecycle.history import sync_current_state

    sync_current_state(customer_ids=[instance.pk])
