"""Honest evaluation of risk signals and the churn model against the demo's hidden truth.

Run it on a data directory holding a loaded demo (``KIZUNA_DATA_DIR=… kizuna demo load``). When
the demo holds no health history yet, it builds it first with the product's own services, as an
operator would: ``backfill_signals`` and ``backfill_scores`` over the metric history window
(from 8 weeks after its first day, so that window-over-window changes exist), then
``train_model`` and ``predict_current`` as of the latest metric day. Only this script reads the
ground truth (``$KIZUNA_DATA_DIR/demo/ground_truth/*.parquet``); the product never does.

What is compared:

- admin / champion changes: signals ``champion_left`` and ``new_admin`` against the true
  ``admin_changed`` / ``champion_changed`` happenings. A signal is right when a true change of
  the same customer happened from 35 days before it opened to 7 days after; a true change is
  found when such a signal opened from 7 days before it to 35 days after.
- usage drops: ``usage_drop`` (and, separately, every drop kind: usage, active users, logins)
  against the true engagement dips: weeks whose hidden engagement, averaged over 4 weeks, is at
  least 20% below the 4 weeks before (consecutive dip weeks make one episode). A signal is
  right when its customer had a dip week from 5 weeks before it opened to 2 weeks after; an
  episode is found when a signal of the kind was open during it (or opened up to 2 weeks after).

Only signals opened in the window count. The recall counts the true changes / dips of the
window (changes up to 35 days, dips up to 2 weeks before its end, so that their signals can be
seen); the precision counts a signal right when a true change / dip is near it, also one just
outside the window (a change in its last 35 days, a dip just before its start). The precision
against the window's changes / dips only (the definition before 2026-12-02, which counted those
signals at the edges as wrong) is reported too.
- the churn model: the backtest's out-of-time predictions (train on the past, predict each of
  the last monthly cut-offs) against the true churn dates (churned within 90 days after the
  snapshot), with the same for the usage-drop rule and a naive "low usage" rule for context.

``kizuna demo load`` now builds a health history of its own (signals over the whole metric
history, scores over its last 365 days). Without options the script keeps it (it only backfills
what is missing); ``--rebuild`` deletes it (risk signals, their ``risk.*`` timeline entries and
the health scores) and builds it again over the window above, timing each backfill;
``--skip-backfill`` neither backfills nor trains (the evaluation reads what is stored).

    KIZUNA_DATA_DIR=/tmp/kz-demo .venv/bin/python bench/eval_health.py [--json]
        [--skip-backfill | --rebuild] [--kind logistic|gradient_boosting]
"""

import argparse
import json
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DROP_KINDS = ("usage_drop", "active_users_down", "logins_down")
PEOPLE_KINDS = ("champion_left", "new_admin")
DIP_FALL = 0.2


def _django() -> None:
    sys.path.insert(0, str(HERE.parent / "src"))
    os.environ.setdefault("KIZUNA_ENV", "dev")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizuna.config.settings")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django

    django.setup()


def _metric_window() -> tuple[date, date]:
    from kizuna.analytics import lake

    days = sorted(
        date.fromisoformat(p.parent.name) for p in lake.metrics_dir().glob("*/metrics.parquet")
    )
    if not days:
        raise SystemExit("no metric history: load the demo first (kizuna demo load)")
    return days[0], days[-1]


def _build_history(start: date, end: date, kind: str) -> dict[str, Any]:
    """The health history the daily job would have made, through the product's services."""
    from kizuna.health import churn
    from kizuna.health.models import HealthScore, RiskSignal
    from kizuna.health.scorecards import ensure_default_scorecards
    from kizuna.health.scoring import backfill_scores
    from kizuna.health.signals import backfill_signals

    seconds: dict[str, Any] = {}
    if not RiskSignal.objects.exists():
        began = time.perf_counter()
        backfill_signals(start=start, end=end)
        seconds["backfill_signals"] = time.perf_counter() - began
    if not HealthScore.objects.exists():
        ensure_default_scorecards()
        began = time.perf_counter()
        backfill_scores(start=start, end=end)
        seconds["backfill_scores"] = time.perf_counter() - began
    began = time.perf_counter()
    model = churn.train_model(as_of=end, kind=kind)
    seconds["train_model"] = time.perf_counter() - began
    began = time.perf_counter()
    seconds["predicted"] = churn.predict_current(day=end, model=model)
    seconds["predict_current"] = time.perf_counter() - began
    return seconds


def _delete_history() -> dict[str, int]:
    """Remove the stored health history so that ``_build_history`` makes it again."""
    from kizuna.core.models import TimelineEntry, TimelineKind
    from kizuna.health.models import HealthScore, RiskSignal

    entries = TimelineEntry.objects.filter(
        kind__in=[TimelineKind.RISK_RAISED, TimelineKind.RISK_CLOSED]
    ).delete()[0]
    signals = RiskSignal.objects.all().delete()[0]
    scores = HealthScore.objects.all().delete()[0]
    return {"signals": signals, "timeline_entries": entries, "scores": scores}


def _truth(folder: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    return {
        name: pq.read_table(folder / f"{name}.parquet").to_pandas()
        for name in ("customers", "engagement", "happenings")
    }


def _signals(ids: dict[str, int]) -> Any:
    import pandas as pd

    from kizuna.health.models import RiskSignal

    rows = list(
        RiskSignal.objects.values_list("customer_id", "kind", "opened_on", "closed_on", "details")
    )
    by_id = {v: k for k, v in ids.items()}
    frame = pd.DataFrame(rows, columns=["customer_id", "kind", "opened_on", "closed_on", "details"])
    frame["external_id"] = frame["customer_id"].map(by_id)
    return frame


def _ratio(numerator: int, denominator: int) -> dict[str, Any]:
    return {
        "value": numerator / denominator if denominator else None,
        "numerator": numerator,
        "denominator": denominator,
    }


def _people_changes(truth: dict[str, Any], signals: Any, start: date, end: date) -> dict[str, Any]:
    happenings = truth["happenings"]
    every = happenings[happenings["kind"].isin(["admin_changed", "champion_changed"])]
    changes = every[(every["day"] >= start) & (every["day"] <= end - timedelta(days=35))]
    raised = signals[signals["kind"].isin(PEOPLE_KINDS)]
    raised = raised[raised["opened_on"] >= start]
    near_any = {key: list(group["day"]) for key, group in every.groupby("external_id")}
    by_customer = {key: list(group["day"]) for key, group in changes.groupby("external_id")}
    opened = {key: list(group["opened_on"]) for key, group in raised.groupby("external_id")}

    def right(days: dict[str, list[date]]) -> int:
        return sum(
            any(o - timedelta(days=35) <= day <= o + timedelta(days=7) for day in days.get(x, []))
            for x, o in zip(raised["external_id"], raised["opened_on"], strict=True)
        )

    found = sum(
        any(
            day - timedelta(days=7) <= o <= day + timedelta(days=35)
            for o in opened.get(external_id, [])
        )
        for external_id, day in zip(changes["external_id"], changes["day"], strict=True)
    )
    known = changes[changes["on_timeline"]]
    found_unknown = sum(
        any(
            day - timedelta(days=7) <= o <= day + timedelta(days=35)
            for o in opened.get(external_id, [])
        )
        for external_id, day in zip(
            changes.loc[~changes["on_timeline"], "external_id"],
            changes.loc[~changes["on_timeline"], "day"],
            strict=True,
        )
    )
    return {
        "signals": len(raised),
        "true_changes": len(changes),
        # A signal is right when a true change of its customer is near it, also one just
        # outside the window whose changes the recall counts (at its edges).
        "precision": _ratio(int(right(near_any)), len(raised)),
        "precision_against_window_changes_only": _ratio(int(right(by_customer)), len(raised)),
        "recall": _ratio(int(found), len(changes)),
        "recall_of_changes_nobody_told_the_csm": _ratio(
            int(found_unknown), len(changes) - len(known)
        ),
    }


def _dip_episodes(truth: dict[str, Any], start: date, end: date) -> Any:
    """Episodes of consecutive weeks whose 4-week engagement is ≥ 20% below the 4 weeks before."""
    import pandas as pd

    weekly = truth["engagement"].sort_values(["external_id", "week_start"]).copy()
    weekly["week_start"] = pd.to_datetime(weekly["week_start"])
    grouped = weekly.groupby("external_id")["engagement"]
    now = grouped.transform(lambda s: s.rolling(4).mean())
    before = grouped.transform(lambda s: s.shift(4).rolling(4).mean())
    weekly["dip"] = (before > 0.05) & (now > 0) & (now <= (1 - DIP_FALL) * before)
    weekly = weekly[
        (weekly["week_start"] >= pd.Timestamp(start)) & (weekly["week_start"] <= pd.Timestamp(end))
    ]
    dips = weekly[weekly["dip"]].copy()
    if dips.empty:
        return pd.DataFrame(columns=["external_id", "first", "last"])
    dips["gap"] = dips.groupby("external_id")["week_start"].diff().dt.days.ne(7)
    dips["episode"] = dips["gap"].cumsum()
    episodes = (
        dips.groupby(["external_id", "episode"])["week_start"]
        .agg(first="min", last="max")
        .reset_index()
    )
    episodes["first"] = episodes["first"].dt.date
    episodes["last"] = episodes["last"].dt.date
    return episodes


def _usage_drops(truth: dict[str, Any], signals: Any, start: date, end: date) -> dict[str, Any]:
    episodes = _dip_episodes(truth, start, end - timedelta(days=14))
    # For the precision, every dip near a signal counts, also one at the window's edges.
    every = _dip_episodes(truth, start - timedelta(weeks=5), end)
    weeks = {
        key: list(zip(group["first"], group["last"], strict=True))
        for key, group in every.groupby("external_id")
    }
    window_weeks = {
        key: list(zip(group["first"], group["last"], strict=True))
        for key, group in episodes.groupby("external_id")
    }
    out: dict[str, Any] = {"true_dip_episodes": len(episodes)}
    for label, kinds in (("usage_drop", ("usage_drop",)), ("any_drop_kind", DROP_KINDS)):
        raised = signals[signals["kind"].isin(kinds)]
        raised = raised[raised["opened_on"] >= start]
        right, right_in_window = (
            sum(
                any(
                    o - timedelta(weeks=5) <= last and first <= o + timedelta(weeks=2)
                    for first, last in near.get(external_id, [])
                )
                for external_id, o in zip(raised["external_id"], raised["opened_on"], strict=True)
            )
            for near in (weeks, window_weeks)
        )
        spans = {
            key: list(zip(group["opened_on"], group["closed_on"], strict=True))
            for key, group in raised.groupby("external_id")
        }
        found = sum(
            any(
                o <= last + timedelta(weeks=2) and (c is None or c > first)
                for o, c in spans.get(external_id, [])
            )
            for external_id, first, last in zip(
                episodes["external_id"], episodes["first"], episodes["last"], strict=True
            )
        )
        out[label] = {
            "signals": len(raised),
            "precision": _ratio(int(right), len(raised)),
            "precision_against_window_dips_only": _ratio(int(right_in_window), len(raised)),
            "recall": _ratio(int(found), len(episodes)),
        }
    return out


def _model(truth: dict[str, Any], ids: dict[str, int], end: date, kind: str) -> dict[str, Any]:
    import numpy as np

    from kizuna.health import churn

    frame = churn.training_frame(as_of=end)
    present = ~np.isnan(frame.x).all(axis=0)
    frame = churn.Frame(
        [f for f, keep in zip(frame.features, present, strict=True) if keep],
        frame.customer_ids,
        frame.days,
        frame.x[:, present],
        frame.y,
    )
    backtest = churn.run_backtest(frame, kind=kind)
    customers = truth["customers"]
    churn_day = {
        ids[e]: d
        for e, d in zip(customers["external_id"], customers["churn_date"], strict=True)
        if e in ids and d is not None
    }
    days = [np.datetime64(day, "D").astype(date) for day in backtest.days]
    truly = np.array(
        [
            cid in churn_day and t < churn_day[cid] <= t + timedelta(days=churn.HORIZON_DAYS)
            for cid, t in zip(backtest.customer_ids.tolist(), days, strict=True)
        ],
        np.int8,
    )
    index = {
        (cid, d): n
        for n, (cid, d) in enumerate(zip(frame.customer_ids.tolist(), frame.days, strict=True))
    }
    rows = [
        index[(cid, d)]
        for cid, d in zip(backtest.customer_ids.tolist(), backtest.days, strict=True)
    ]
    low_usage = -np.nan_to_num(frame.x[rows, frame.features.index("events_28d")], nan=0.0)
    summary = backtest.summary()
    return {
        "kind": kind,
        "periods": summary["periods"],
        "rows": len(truly),
        "true_churners": int(truly.sum()),
        "rows_where_label_and_truth_differ": int((truly != backtest.y).sum()),
        "auc_vs_truth": churn.roc_auc(truly, backtest.probability),
        "lift_top_decile_vs_truth": churn.top_decile_lift(truly, backtest.probability),
        "auc_vs_labels": summary["auc"],
        "usage_drop_rule_auc_vs_truth": (
            churn.roc_auc(truly, backtest.baseline) if backtest.baseline is not None else None
        ),
        "low_usage_rule_auc_vs_truth": churn.roc_auc(truly, low_usage),
        "beats_baseline": summary["beats_baseline"],
        "calibration": summary["calibration"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    history = parser.add_mutually_exclusive_group()
    history.add_argument("--skip-backfill", action="store_true")
    history.add_argument("--rebuild", action="store_true")
    parser.add_argument("--kind", default="logistic", choices=["logistic", "gradient_boosting"])
    args = parser.parse_args()
    _django()
    from django.conf import settings

    from kizuna.customers.models import Customer

    folder = Path(settings.DATA_DIR) / "demo" / "ground_truth"
    if not folder.exists():
        raise SystemExit(f"no ground truth in {folder}: load the demo first (kizuna demo load)")
    first, end = _metric_window()
    start = first + timedelta(weeks=8)
    deleted = _delete_history() if args.rebuild else {}
    built = {} if args.skip_backfill else _build_history(start, end, args.kind)
    if deleted:
        built["deleted_first"] = deleted
    truth = _truth(folder)
    ids = {e: pk for e, pk in Customer.objects.values_list("external_id", "id") if e}
    signals = _signals(ids)
    report = {
        "window": [start.isoformat(), end.isoformat()],
        "built": built,
        "signals_by_kind": signals["kind"].value_counts().to_dict(),
        "people_changes": _people_changes(truth, signals, start, end),
        "usage_drops": _usage_drops(truth, signals, start, end),
        "model": _model(truth, ids, end, args.kind),
    }
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print(report)
    return 0


def _pct(ratio: dict[str, Any]) -> str:
    if ratio["value"] is None:
        return f"— ({ratio['numerator']}/{ratio['denominator']})"
    return f"{100 * ratio['value']:.0f}% ({ratio['numerator']}/{ratio['denominator']})"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _print(report: dict[str, Any]) -> None:
    print(f"window {report['window'][0]} … {report['window'][1]}; built: {report['built']}")
    print(f"signals by kind: {report['signals_by_kind']}")
    people = report["people_changes"]
    print(
        f"admin/champion changes ({people['true_changes']} true, {people['signals']} signals): "
        f"precision {_pct(people['precision'])} (against the window's changes only "
        f"{_pct(people['precision_against_window_changes_only'])}), "
        f"recall {_pct(people['recall'])}, recall of "
        f"changes nobody told the CSM {_pct(people['recall_of_changes_nobody_told_the_csm'])}"
    )
    drops = report["usage_drops"]
    for key in ("usage_drop", "any_drop_kind"):
        print(
            f"{key} vs {drops['true_dip_episodes']} true engagement dips "
            f"({drops[key]['signals']} signals): precision {_pct(drops[key]['precision'])} "
            f"(against the window's dips only "
            f"{_pct(drops[key]['precision_against_window_dips_only'])}), "
            f"recall {_pct(drops[key]['recall'])}"
        )
    model = report["model"]
    print(
        f"model ({model['kind']}, {model['periods']} monthly cut-offs, {model['rows']} rows, "
        f"{model['true_churners']} true churners within 90 days): AUC vs truth "
        f"{_num(model['auc_vs_truth'])}, top-decile lift {_num(model['lift_top_decile_vs_truth'])}; "
        f"usage-drop rule AUC {_num(model['usage_drop_rule_auc_vs_truth'])}, low-usage rule AUC "
        f"{_num(model['low_usage_rule_auc_vs_truth'])}; rows where label and truth differ "
        f"{model['rows_where_label_and_truth_differ']}"
    )


if __name__ == "__main__":
    sys.exit(main())
