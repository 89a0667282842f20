"""Onboarding: programs, plans, milestones, follow-ups, goals and the customer's plan page."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OnboardingConfig(AppConfig):
    name = "kizuna.onboarding"
    label = "onboarding"
    verbose_name = _("Onboarding")

    def ready(self) -> None:
        from kizuna.onboarding import registration

        registration.register()
