"""Playbooks: tasks (calls to action), rules that create them, the runner and its effects."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlaybooksConfig(AppConfig):
    name = "kizuna.playbooks"
    label = "playbooks"
    verbose_name = _("Playbooks")

    def ready(self) -> None:
        from kizuna.playbooks import registration

        registration.register()
