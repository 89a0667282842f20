"""What the playbooks context plugs into the lower contexts: Settings tabs, Customer 360 panels,
the daily job and the worker's cycle job (the runner)."""


def register() -> None:
    """Filled in as the playbook pages and runner land."""
    from django.utils.translation import gettext_lazy as _

    from kizuna.core.extensions import CustomerPanel, register_customer_panel
    from kizuna.core.jobs import DailyJob, register_daily_job
    from kizuna.playbooks.tasks import wake_snoozed

    register_customer_panel(CustomerPanel("tasks", "playbooks:customer-tasks", _("Tasks"), 4))
    # Snoozed tasks come back as open on their day (before the playbook runner, order 60).
    register_daily_job(DailyJob("tasks-wake", wake_snoozed, order=59))
    # The runner: every worker cycle (new timeline entries, dated triggers, due actions and
    # retries), and once more right after the daily jobs (health 40, lifecycle 50), so what
    # they recorded fires without waiting for the next cycle.
    from kizuna.core.jobs import register_cycle_job
    from kizuna.playbooks.runner import run_cycle

    register_cycle_job("playbooks", run_cycle)
    register_daily_job(DailyJob("playbooks", lambda day: run_cycle(), order=60))
    # Settings → Webhooks: where notify_webhook posts (P3).
    from kizuna.core.extensions import SettingsTab, register_settings_tab

    register_settings_tab(
        SettingsTab("webhooks", "playbooks:webhooks", _("Webhooks"), "manage_playbooks", 80)
    )
