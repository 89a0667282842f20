"""The daily health run: default scorecards, risk signals, scores, band changes, churn.

Order matters: signals first (the ``open_signals`` measure counts what is open today), then
scores, then the band changes on the timeline (playbooks react to them), then churn
probabilities from the current model — re-trained first when it is missing or older than
``RETRAIN_AFTER``. A failed training is logged and stored on its model row, never raised: the
scores of the day are what matters. Each step commits on its own (no long write transaction).

Two runs never overlap: a run holds a lock that dies with its process — a PostgreSQL advisory
lock, or on SQLite (one machine by definition) an ``flock`` on a file beside the lake — and a
second run raises ``HealthRunInProgressError`` at once.
"""

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.analytics import lake

logger = logging.getLogger(__name__)

RETRAIN_AFTER = timedelta(days=30)
RETRY_FAILED_AFTER = timedelta(days=7)
ADVISORY_LOCK_KEY = 0x4B5A_4845  # "KZHE": the health run
_LOCK_FILE = ".health-run.lock"


class HealthRunInProgressError(RuntimeError):
    """Another health run holds the lock."""


@dataclass(frozen=True, kw_only=True)
class HealthRunResult:
    """What one run did; ``errors`` holds the steps that failed (step → message)."""

    as_of: date
    scorecards_created: int = 0
    signals: dict[str, int] = field(default_factory=dict)  # opened, kept, closed
    scored: int = 0
    not_scored: int = 0
    bands: dict[str, int] = field(default_factory=dict)
    band_changes: int = 0
    model_trained: bool = False
    model_id: int | None = None
    predictions: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data


@contextmanager
def run_lock() -> Iterator[bool]:
    """Hold the health-run lock for the block; yields False at once when another run has it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
            acquired = bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
        return
    path = lake.lake_root() / _LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(descriptor)  # closing releases the flock


def _signal_counts(result: Any) -> dict[str, int]:
    return {key: int(getattr(result, key, 0) or 0) for key in ("opened", "kept", "closed")}


def _needs_training(model: Any, as_of: date) -> bool:
    if model is None:
        return True
    trained_through = getattr(model, "trained_through", None)
    return trained_through is None or as_of - trained_through > RETRAIN_AFTER


def _failed_recently(day: date) -> bool:
    """Whether the latest training attempt failed less than ``RETRY_FAILED_AFTER`` ago (too
    few churned customers, say): retrying every day would only repeat the failure."""
    from kizuna.health.models import ChurnModel

    latest = ChurnModel.objects.order_by("-trained_at", "-id").first()
    return (
        latest is not None
        and bool(latest.error)
        and day - latest.trained_through < RETRY_FAILED_AFTER
    )


def run_health(*, as_of: date | None = None) -> HealthRunResult:
    """The daily health run as of ``as_of`` (today); raises ``HealthRunInProgressError``
    when another run is under way. Signals and churn are separate steps: one failing is
    logged and recorded in ``errors`` while the others still run."""
    day = as_of or timezone.localdate()
    with run_lock() as acquired:
        if not acquired:
            raise HealthRunInProgressError(_("A health run is already under way."))
        return _run(day)


def _run(day: date) -> HealthRunResult:
    from kizuna.health import churn, signals
    from kizuna.health.scorecards import ensure_default_scorecards
    from kizuna.health.scoring import record_band_changes, score_customers

    began = time.perf_counter()
    errors: dict[str, str] = {}
    created = ensure_default_scorecards()
    signal_counts: dict[str, int] = {}
    try:
        signal_counts = _signal_counts(signals.evaluate_signals(day=day))
    except Exception as error:
        logger.exception("health run %s: risk signals failed", day)
        errors["signals"] = f"{type(error).__name__}: {error}"[:2000]
    scores = score_customers(day=day)
    changes = record_band_changes(day=day)
    trained = False
    model_id: int | None = None
    predictions = 0
    try:
        model = churn.current_model()
        if _needs_training(model, day) and not _failed_recently(day):
            trained = True
            try:
                fresh = churn.train_model(as_of=day)
            except Exception as error:
                logger.exception("health run %s: churn model training failed", day)
                errors["training"] = f"{type(error).__name__}: {error}"[:2000]
            else:
                if fresh.error:
                    errors["training"] = str(fresh.error)[:2000]
                else:
                    model = fresh
        if model is not None:
            model_id = model.pk
            predictions = int(churn.predict_current(day=day, model=model) or 0)
    except Exception as error:
        logger.exception("health run %s: churn predictions failed", day)
        errors["predictions"] = f"{type(error).__name__}: {error}"[:2000]
    result = HealthRunResult(
        as_of=day,
        scorecards_created=created,
        signals=signal_counts,
        scored=scores.scored,
        not_scored=scores.not_scored,
        bands=dict(scores.bands),
        band_changes=changes,
        model_trained=trained,
        model_id=model_id,
        predictions=predictions,
        errors=errors,
        seconds=time.perf_counter() - began,
    )
    logger.info(
        "health run %s: %s scored, %s band changes, %s predictions in %.1f s",
        day,
        result.scored,
        result.band_changes,
        result.predictions,
        result.seconds,
    )
    return result
