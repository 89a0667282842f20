"""The lifecycle run: segments, then stages, then touch models, then owners, then history."""

from datetime import date

from django.utils import timezone

from kizuna.lifecycle.models import LifecycleRun


def run_lifecycle(*, as_of: date | None = None) -> LifecycleRun:
    """Evaluate every rule for all customers as of ``as_of`` (today) and record the run."""
    from kizuna.lifecycle.history import sync_current_state

    day = as_of or timezone.localdate()
    run = LifecycleRun.objects.create(as_of=day)
    counts: dict[str, int] = {}
    counts.update({f"synced:{key}": value for key, value in sync_current_state(on=day).items()})
    run.counts = counts
    run.finished_at = timezone.now()
    run.save(update_fields=["counts", "finished_at"])
    return run
