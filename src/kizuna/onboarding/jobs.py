"""The onboarding job: plans for new customers, automatic completions, statuses, follow-ups."""

from datetime import date


def run_onboarding(*, as_of: date) -> dict[str, int]:
    """Placeholder until the engine lands."""
    return {}


def check_completions(*, as_of: date) -> dict[str, int]:
    """Placeholder until the engine lands."""
    return {}
