"""Product usage data: Segment-compatible ingestion, the event lake, the metrics engine."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    name = "kizuna.analytics"
    label = "analytics"
    verbose_name = _("Usage analytics")

    def ready(self) -> None:
        from kizuna.core.extensions import (
            CustomerPanel,
            SettingsTab,
            register_customer_panel,
            register_settings_tab,
        )

        register_settings_tab(
            SettingsTab("sources", "analytics:sources", _("Sources"), "manage_sources", 50)
        )
        register_settings_tab(
            SettingsTab("metrics", "analytics:metrics", _("Metrics"), "manage_metrics", 60)
        )
        register_customer_panel(CustomerPanel("usage", "analytics:customer-usage", _("Usage"), 10))
