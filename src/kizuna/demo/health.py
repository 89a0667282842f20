"""``demo load``'s health stage: scorecards, CSM sentiment, signals and scores over the metric
history, and a churn model trained on the company's own past.

Everything goes through the health services, as a company that installs Kizuna with a year and
a half of history would run them: the default scorecards and signal rules are created, the
signals are backfilled day by day over the metric history (so every signal has its real opening
day and, when the condition cleared, its closing day, with ``risk.raised`` / ``risk.closed``
on the timeline), then the scores (``backfill_scores``), the band changes of the last quarter,
and finally the churn model is trained as of the latest day and predicts every customer.

The CSMs' own judgement (``CsmSentiment``) is the one input Kizuna cannot compute: the demo's
high-touch CSMs record one a month for their customers, and like real CSMs they read the
relationship well but not perfectly — the sentiment follows the simulated engagement of that
week with some noise. That is the simulator speaking for the CSM; the product itself never
reads the simulation or the ground truth.
"""

import random
from datetime import date, timedelta
from typing import TYPE_CHECKING

from kizuna.core.models import TimelineKind
from kizuna.customers.models import TouchModel
from kizuna.demo.simulation import SimulatedCustomer

if TYPE_CHECKING:
    from kizuna.demo.load import LoadContext, StageProgress

# What the health services write on the timeline (the stage's own entries).
TIMELINE_KINDS = (
    TimelineKind.RISK_RAISED,
    TimelineKind.RISK_CLOSED,
    TimelineKind.HEALTH_BAND_CHANGED,
)

# Scores are backfilled for this many days up to the latest day (signals for the whole metric
# history): enough for the band outcomes ("does good renew more than at risk?") and the charts.
SCORE_DAYS = 365
BAND_CHANGE_DAYS = 90
SENTIMENT_EVERY_DAYS = 30


def sentiment_rows(
    c: SimulatedCustomer, customer_id: int, *, since: date, until: date, seed: int
) -> list[tuple[int, date, int]]:
    """(customer id, day, 1–5) a month apart while the customer is in service, from the week's
    engagement plus noise (a CSM's reading of the relationship)."""
    rng = random.Random(f"{seed}-sentiment-{c.external_id}")  # noqa: S311 - demo data
    rows: list[tuple[int, date, int]] = []
    day = max(since, c.first_start + timedelta(days=rng.randint(20, 40)))
    end = min(until, c.churn_date or until)
    while day < end:
        week = (day - c.first_start).days // 7
        if 0 <= week < len(c.engagement):
            level = float(c.engagement[week]) + rng.gauss(0.0, 0.12)
            rows.append((customer_id, day, max(1, min(5, 1 + round(level * 4.4)))))
        day += timedelta(days=SENTIMENT_EVERY_DAYS + rng.randint(-5, 5))
    return rows


def load_health(ctx: "LoadContext", progress: "StageProgress") -> None:
    """Scorecards, sentiment, signals, scores, band changes and the churn model."""
    from kizuna.core.models import User
    from kizuna.health.churn import predict_current, train_model
    from kizuna.health.jobs import run_health
    from kizuna.health.models import CsmSentiment, HealthScore, RiskSignal
    from kizuna.health.scorecards import ensure_default_scorecards
    from kizuna.health.scoring import backfill_scores, record_band_changes
    from kizuna.health.signals import backfill_signals, ensure_default_rules

    end = ctx.latest_day
    metrics_start = max(ctx.history_start, end - timedelta(days=round(ctx.metric_months * 30.44)))
    score_start = max(metrics_start, end - timedelta(days=SCORE_DAYS - 1))
    signal_days = (end - metrics_start).days + 1
    score_days = (end - score_start).days + 1
    total = signal_days + score_days + BAND_CHANGE_DAYS + 2

    ensure_default_scorecards()
    ensure_default_rules()

    owners = {u.username: u.pk for u in User.objects.all()}
    sentiments = [
        CsmSentiment(
            customer_id=pk, recorded_on=day, sentiment=value,
            recorded_by_id=owners.get(c.owners[1] or ""),
        )
        for c in ctx.simulated
        if c.touch_model == TouchModel.HIGH
        for pk, day, value in sentiment_rows(
            c, ctx.customer_ids[c.external_id], since=metrics_start, until=end, seed=ctx.seed
        )
    ]  # fmt: skip
    CsmSentiment.objects.bulk_create(sentiments, batch_size=2000)
    ctx.counts["sentiments"] = len(sentiments)

    signals = backfill_signals(
        start=metrics_start, end=end, progress=lambda _p, done, _t: progress(done, total)
    )
    ctx.counts["signals_opened"] = signals.opened
    scores = backfill_scores(
        start=score_start,
        end=end,
        progress=lambda _p, done, _t: progress(signal_days + done, total),
    )
    ctx.counts["health_scores"] = scores.rows
    for offset in range(BAND_CHANGE_DAYS):
        record_band_changes(day=end - timedelta(days=BAND_CHANGE_DAYS - 1 - offset))
        progress(signal_days + score_days + offset, total)
    model = train_model(as_of=end)
    ctx.counts["churn_model"] = 0 if model.error else 1
    auc = (model.backtest or {}).get("auc")
    ctx.counts["model_auc_permille"] = round(auc * 1000) if auc is not None else 0
    progress(total - 1, total)
    if not model.error:
        ctx.counts["predictions"] = predict_current(day=end, model=model)
    # Then today's run, as the worker would make it this morning: signals judged on the
    # history (renewals at risk read yesterday's scores, which a backfill of signals before
    # scores cannot), today's scores, band changes and predictions.
    run_health(as_of=ctx.today)
    ctx.counts["health_scores"] = HealthScore.objects.count()
    ctx.counts["signals_open"] = RiskSignal.objects.filter(closed_on__isnull=True).count()
    progress(total, total)
