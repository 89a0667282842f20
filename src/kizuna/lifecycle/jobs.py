"""The lifecycle run: segments, then stages, then touch models, then owners, then history.

Each step is its own transaction (a step is all-or-nothing; the run is not one long write
transaction, which on SQLite would hold the database's write lock and stall ingestion).
Two runs never overlap: a run claims its ``LifecycleRun`` row while holding a lock on the
``LifecycleSettings`` row, and refuses to start while another recent run is unfinished.
"""

from datetime import date, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.lifecycle.models import LifecycleRun, LifecycleSettings

# A run unfinished after this long is taken as crashed, and no longer blocks the next one.
STALE_AFTER = timedelta(hours=6)

# The counts of a run, in the order the steps run, with what people read.
STEP_LABELS = {
    "segments": gettext_lazy("Segment changes"),
    "stages": gettext_lazy("Stage changes"),
    "touch_models": gettext_lazy("Touch-model changes"),
    "owners": gettext_lazy("Owners assigned"),
    "handoffs": gettext_lazy("Handoffs opened"),
    "synced": gettext_lazy("Edits recorded in history"),
}


class LifecycleRunInProgressError(RuntimeError):
    """Another lifecycle run has started and not finished."""


def _claim(day: date) -> LifecycleRun:
    with transaction.atomic():
        settings = LifecycleSettings.load()
        # Serialises claims on PostgreSQL; SQLite serialises write transactions anyway.
        LifecycleSettings.objects.select_for_update().filter(pk=settings.pk).first()
        running = (
            LifecycleRun.objects.filter(
                finished_at__isnull=True, started_at__gte=timezone.now() - STALE_AFTER
            )
            .order_by("-started_at")
            .first()
        )
        if running is not None:
            raise LifecycleRunInProgressError(
                _("A lifecycle run (as of %(day)s) has been running since %(started)s.")
                % {
                    "day": running.as_of.isoformat(),
                    "started": timezone.localtime(running.started_at).strftime("%Y-%m-%d %H:%M"),
                }
            )
        return LifecycleRun.objects.create(as_of=day)


def run_lifecycle(*, as_of: date | None = None) -> LifecycleRun:
    """Evaluate every rule for all customers as of ``as_of`` (today) and record the run.

    Steps: segments → stages → touch models → owners of unowned customers → handoffs for
    the stage changes → history of edits made elsewhere. ``LifecycleRun.counts`` holds what
    each step changed; an error is stored in ``LifecycleRun.error`` and raised again.
    Raises ``LifecycleRunInProgressError`` when another run is under way.
    """
    from kizuna.lifecycle.assignment import assign_unowned
    from kizuna.lifecycle.handoffs import open_stage_handoffs
    from kizuna.lifecycle.history import sync_current_state
    from kizuna.lifecycle.segments import evaluate_segments
    from kizuna.lifecycle.stages import evaluate_stages
    from kizuna.lifecycle.touch import apply_touch_models

    day = as_of or timezone.localdate()
    run = _claim(day)
    counts: dict[str, int] = {}
    try:
        counts["segments"] = evaluate_segments(day)
        stage_changes = evaluate_stages(day)
        counts["stages"] = len(stage_changes)
        counts["touch_models"] = apply_touch_models(day)
        counts["owners"] = assign_unowned(day)
        counts["handoffs"] = open_stage_handoffs(stage_changes, on=day)
        counts["synced"] = sum(sync_current_state(on=day).values())
    except Exception as error:
        run.counts = counts
        run.error = f"{type(error).__name__}: {error}"[:5000]
        run.finished_at = timezone.now()
        run.save(update_fields=["counts", "error", "finished_at"])
        raise
    run.counts = counts
    run.finished_at = timezone.now()
    run.save(update_fields=["counts", "finished_at"])
    return run


def last_run() -> LifecycleRun | None:
    """The latest lifecycle run (finished or not)."""
    return LifecycleRun.objects.order_by("-started_at", "-id").first()


def run_counts(run: LifecycleRun) -> list[tuple[str, str, int]]:
    """A run's counts as (key, label, count), in step order (unknown keys last)."""
    rows = [
        (key, str(label), int(run.counts[key]))
        for key, label in STEP_LABELS.items()
        if key in run.counts
    ]
    rows += [(key, key, int(value)) for key, value in run.counts.items() if key not in STEP_LABELS]
    return rows
