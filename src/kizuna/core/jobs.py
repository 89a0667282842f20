"""Daily jobs that higher contexts hand to the background worker without being imported by it.

A context registers a function in its ``AppConfig.ready()``; ``kizuna worker`` (in
``analytics``) runs every registered job once a day after the metrics, in registration
order, each in its own ``try`` so one failing job never stops the others.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class DailyJob:
    key: str
    run: Callable[[date], object]
    order: int = 100


_daily_jobs: dict[str, DailyJob] = {}


def register_daily_job(job: DailyJob) -> None:
    _daily_jobs[job.key] = job


def daily_jobs() -> list[DailyJob]:
    return sorted(_daily_jobs.values(), key=lambda job: (job.order, job.key))


_flush_listeners: dict[str, Callable[[date], object]] = {}


def register_flush_listener(key: str, listener: Callable[[date], object]) -> None:
    """Call ``listener(today)`` after every lake flush that wrote events (new product usage)."""
    _flush_listeners[key] = listener


def flush_listeners() -> list[Callable[[date], object]]:
    return [_flush_listeners[key] for key in sorted(_flush_listeners)]


_cycle_jobs: dict[str, Callable[[], object]] = {}


def register_cycle_job(key: str, job: Callable[[], object]) -> None:
    """Call ``job()`` on every cycle of ``kizuna worker`` (every ``--flush-every`` seconds).

    For work that must not wait for midnight: the playbook runner's due actions and retries.
    """
    _cycle_jobs[key] = job


def cycle_jobs() -> list[Callable[[], object]]:
    return [_cycle_jobs[key] for key in sorted(_cycle_jobs)]
