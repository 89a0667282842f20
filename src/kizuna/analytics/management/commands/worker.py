"""``kizuna worker``: the periodic jobs of usage analytics (lake flush, nightly metrics)."""

import contextlib
import logging
import time
from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from django.utils import timezone

from kizuna.analytics.flush import flush_inbox, link_product_users
from kizuna.analytics.metrics import run_incremental
from kizuna.core.jobs import cycle_jobs, daily_jobs, flush_listeners

logger = logging.getLogger("kizuna.analytics.worker")


class Command(BaseCommand):
    help = (
        "Run the lake flush every --flush-every seconds, and the incremental metrics run when "
        "the worker starts and after each midnight (TIME_ZONE). Several workers may run at "
        "once: only one flushes at a time."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--flush-every",
            type=float,
            default=60.0,
            help="Seconds between lake flushes (default 60).",
        )
        parser.add_argument("--once", action="store_true", help="Run one cycle and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        every = options["flush_every"]
        if every <= 0:
            raise CommandError("--flush-every must be positive")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C; a kill mid-flush is safe too
            self._loop(every=every, once=options["once"])

    def _loop(self, *, every: float, once: bool) -> None:
        last_daily: date | None = None
        while True:
            started = time.monotonic()
            self._flush()
            today = timezone.localdate()
            if last_daily != today:
                self._daily()
                last_daily = today
            self._cycle()
            if once:
                return
            time.sleep(max(0.0, every - (time.monotonic() - started)))
            close_old_connections()  # a long-lived process: drop broken or expired connections

    def _flush(self) -> None:
        try:
            result = flush_inbox()
        except Exception:  # a worker must outlive one bad cycle; the next one retries
            logger.exception("lake flush failed")
            return
        if result.busy:
            logger.info("lake flush: another worker is flushing")
        elif result.batches:
            self.stdout.write(
                f"lake flush: {result.rows_written:,} events, {result.duplicates:,} duplicates"
            )
            if result.rows_written:
                for listener in flush_listeners():
                    try:
                        listener(timezone.localdate())
                    except Exception:
                        logger.exception("a listener of new events failed")

    def _cycle(self) -> None:
        for job in cycle_jobs():
            try:
                job()
            except Exception:
                logger.exception("a cycle job failed")

    def _daily(self) -> None:
        try:
            link_product_users()
        except Exception:
            logger.exception("linking product users to contacts failed")
        try:
            run_incremental()
        except Exception:
            logger.exception("incremental metrics run failed")
        for job in daily_jobs():
            try:
                job.run(timezone.localdate())
            except Exception:
                logger.exception("daily job %s failed", job.key)
