"""Health: scorecards and scores, risk signals, CSM sentiment and the churn model."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HealthConfig(AppConfig):
    name = "kizuna.health"
    label = "health"
    verbose_name = _("Health")

    def ready(self) -> None:
        from kizuna.health import registration

        registration.register()
