"""What onboarding plugs into lower contexts: Settings tab, Customer 360 panel, daily job."""

from datetime import date

from django.utils.translation import gettext_lazy as _


def register() -> None:
    from kizuna.core.extensions import (
        CustomerPanel,
        SettingsTab,
        register_customer_panel,
        register_settings_tab,
    )
    from kizuna.core.jobs import DailyJob, register_daily_job, register_flush_listener

    register_settings_tab(
        SettingsTab(
            "programs", "onboarding:programs", _("Onboarding programs"), "manage_programs", 40
        )
    )
    register_settings_tab(
        SettingsTab(
            "onboarding-settings",
            "onboarding:settings",
            _("Onboarding calendar"),
            "manage_programs",
            41,
        )
    )
    register_customer_panel(
        CustomerPanel("onboarding", "onboarding:customer-onboarding", _("Onboarding"), 3)
    )
    # Before lifecycle (order 50): a plan completed today moves the stage in the same run.
    register_daily_job(DailyJob("onboarding", _run_daily, order=20))
    register_flush_listener("onboarding", _after_flush)


def _run_daily(day: date) -> object:
    from kizuna.onboarding.jobs import run_onboarding

    return run_onboarding(as_of=day)


def _after_flush(day: date) -> object:
    from kizuna.onboarding.jobs import check_completions

    return check_completions(as_of=day)
