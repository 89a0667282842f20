"""Lifecycle: segments, stages, touch models, CSM ownership and handoffs between roles."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LifecycleConfig(AppConfig):
    name = "kizuna.lifecycle"
    label = "lifecycle"
    verbose_name = _("Lifecycle")

    def ready(self) -> None:
        from kizuna.lifecycle import registration

        registration.register()
