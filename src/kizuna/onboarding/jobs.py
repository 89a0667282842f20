"""The onboarding job: plans for new customers, automatic completions, goals, statuses.

Follow-up tasks need no job: a plan creates its dated tasks when it is made.
"""

from datetime import date

from django.utils import timezone


def run_onboarding(as_of: date | None = None) -> dict[str, int]:
    """The daily run as of a day (default today); returns counts of what changed.

    create_missing_plans → check_completions → evaluate_goals → refresh_statuses, in that
    order, so a plan created today is checked, and statuses reflect today's completions.
    """
    from kizuna.onboarding.completion import check_completions as complete
    from kizuna.onboarding.goals import evaluate_goals
    from kizuna.onboarding.plans import create_missing_plans
    from kizuna.onboarding.status import refresh_statuses

    day = as_of or timezone.localdate()
    return {
        "plans_created": create_missing_plans(day),
        "milestones_completed": complete(day),
        "goals_changed": evaluate_goals(day),
        "statuses_changed": refresh_statuses(day),
    }


def check_completions(as_of: date | None = None) -> dict[str, int]:
    """After new product events (each lake flush): automatic completions, then statuses."""
    from kizuna.onboarding.completion import check_completions as complete
    from kizuna.onboarding.status import refresh_statuses

    day = as_of or timezone.localdate()
    completed = complete(day)
    return {
        "milestones_completed": completed,
        "statuses_changed": refresh_statuses(day) if completed else 0,
    }
