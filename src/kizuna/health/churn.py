"""The churn model: the probability that a customer is not active ``horizon_days`` from now.

Rows are monthly snapshots: every customer active on the 1st of a month ``t`` (KPI.md "active on
d") gives one row whose features are read **as of t and nothing later**: the metric values of
t's day file, MRR, tenure, days to renewal and seats from the subscriptions in service on t, the
latest NPS answer up to t, the risk signals open on t and the health score stored for t. Its
label is 1 when the customer is not active on ``t + horizon_days``; a row is labelled only when
``t + horizon_days <= as_of``.

The explainable default is a scikit-learn pipeline: median imputation with missing-value
indicators, standard scaling, de-correlation (of each pair of columns with |r| > 0.9 the one less
correlated with the label is dropped) and a logistic regression; its parameters are stored as
JSON and predictions are recomputed from them with numpy. Gradient boosting
(``HistGradientBoostingClassifier``) is the option; its estimator is stored with joblib under
``KIZUNA_DATA_DIR/models/``.

Accuracy comes from a time-based backtest: for each of the last (up to 12) monthly cut-offs m,
a model trained on the rows labelled by m (``t + horizon <= m``) predicts the rows of t = m;
the pooled predictions give the AUC, the lift of the top decile and a calibration table, next
to the AUC of the simple usage-drop rule (score = −events_28d_change) on the same rows.

A trap the features avoid only as far as the data allows: an open-ended subscription whose end
date was filled in when the customer cancelled tells the past its future (days to renewal would
then predict churn perfectly). Contract terms (a row per term, the renewal a new row, as
KPI.md describes) carry no such leak; the backtest would show the leak as an AUC near 1.

Drivers are model-agnostic and set-based: for each feature, the change in probability when that
feature alone is replaced by its training median, for all customers at once.
"""

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from django.conf import settings
from django.db import transaction
from django.db.models import FloatField, OuterRef, Subquery
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncDate
from django.utils.functional import Promise
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from kizuna.analytics import lake
from kizuna.analytics.models import MetricDefinition
from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Subscription
from kizuna.health.models import (
    ChurnModel,
    ChurnPrediction,
    HealthScore,
    ModelKind,
    RiskSignal,
)

logger = logging.getLogger(__name__)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

HORIZON_DAYS = 90
MIN_POSITIVES = 10
MIN_NEGATIVES = 10
BACKTEST_PERIODS = 12
CORRELATION_LIMIT = 0.9
TOP_DRIVERS = 3
# Prediction on a day without its metric file uses the latest file at most this many days older.
METRIC_FALLBACK_DAYS = 7
NPS_WITHIN_DAYS = 365
SEAT_UNITS = ("seat", "seats", "user", "users", "license", "licenses", "licence", "licences")
# The usage-drop rule the model must beat: the steeper the fall of events, the higher the risk.
BASELINE_FEATURE = "events_28d_change"
BASELINE_MARGIN = 0.01

CONTRACT_FEATURES = (
    "mrr",
    "tenure_days",
    "days_to_renewal",
    "seats",
    "nps",
    "open_signals",
    "health_score",
)

FEATURE_LABELS: dict[str, Promise] = {
    "mrr": gettext_lazy("MRR"),
    "tenure_days": gettext_lazy("Days as a customer"),
    "days_to_renewal": gettext_lazy("Days to renewal"),
    "seats": gettext_lazy("Seats"),
    "nps": gettext_lazy("Latest NPS answer"),
    "open_signals": gettext_lazy("Open risk signals"),
    "health_score": gettext_lazy("Health score"),
    "active_users_28d": gettext_lazy("Active users (28 days)"),
    "active_users_28d_change": gettext_lazy("Active users vs previous 28 days"),
    "active_users_7d": gettext_lazy("Active users (7 days)"),
    "active_users_month": gettext_lazy("Active users (this month)"),
    "seat_utilisation_28d": gettext_lazy("Seat utilisation (28 days)"),
    "active_days_28d": gettext_lazy("Active days (28 days)"),
    "logins_28d": gettext_lazy("Logins (28 days)"),
    "events_28d": gettext_lazy("Events (28 days)"),
    "events_28d_change": gettext_lazy("Events vs previous 28 days"),
    "feature_breadth_28d": gettext_lazy("Features used (28 days)"),
    "value_sum_28d": gettext_lazy("Event value total (28 days)"),
}


def feature_label(key: str) -> str:
    """The translated label of a feature; a custom metric's name from its definition."""
    if key in FEATURE_LABELS:
        return str(FEATURE_LABELS[key])
    definition = MetricDefinition.objects.filter(key=key).first()
    if definition is None:
        return key
    if (get_language() or "").startswith("ja") and definition.name_ja:
        return definition.name_ja
    return definition.name


# -- features ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """Feature rows: one per (customer, snapshot day), ``x`` with NaN for a missing value.

    ``y`` is 1 when the customer is not active ``horizon_days`` after the day (churned), 0 when
    it is; it is only meaningful for labelled frames (``t + horizon <= as_of``).
    """

    features: list[str]
    customer_ids: Ints
    days: npt.NDArray[np.datetime64]
    x: Floats
    y: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.customer_ids)

    def subset(self, mask: npt.NDArray[np.bool_]) -> "Frame":
        return Frame(
            self.features, self.customer_ids[mask], self.days[mask], self.x[mask], self.y[mask]
        )


def metric_feature_keys() -> list[str]:
    """The active metric definitions, in display order (those named like a contract feature
    are left out)."""
    keys = MetricDefinition.objects.filter(is_active=True).values_list("key", flat=True)
    return [key for key in keys if key not in CONTRACT_FEATURES]


def month_starts(start: date, end: date) -> list[date]:
    """The 1st of each month in ``[start, end]``."""
    day = date(start.year, start.month, 1)
    if day < start:
        day = _next_month(day)
    days = []
    while day <= end:
        days.append(day)
        day = _next_month(day)
    return days


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _metric_file(day: date) -> Path:
    return lake.metrics_dir() / day.isoformat() / "metrics.parquet"


def snapshot_days(*, as_of: date, horizon_days: int) -> list[date]:
    """Labelled snapshot days: the 1sts of months with a metric file and ``t + horizon <= as_of``."""
    root = lake.metrics_dir()
    if not root.exists():
        return []
    known = sorted(
        date.fromisoformat(path.parent.name)
        for path in root.glob("*-01/metrics.parquet")
        if _is_iso_day(path.parent.name)
    )
    return [day for day in known if day + timedelta(days=horizon_days) <= as_of]


def _is_iso_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _subscriptions_table() -> pa.Table:
    rows = list(
        Subscription.objects.values_list(
            "customer_id", "start_date", "end_date", "mrr", "quantity", "unit"
        )
    )
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "start_date": pa.array([r[1] for r in rows], pa.date32()),
            "end_date": pa.array([r[2] for r in rows], pa.date32()),
            "mrr": pa.array([float(r[3]) for r in rows], pa.float64()),
            "seats": pa.array(
                [float(r[4]) if r[5].strip().lower() in SEAT_UNITS else None for r in rows],
                pa.float64(),
            ),
        }
    )


def _nps_table(last_day: date) -> pa.Table:
    answers = (
        TimelineEntry.objects.filter(kind="nps.answered")
        .annotate(day=TruncDate("occurred_at"), score=Cast(KT("payload__score"), FloatField()))
        .filter(day__lte=last_day, score__isnull=False)
        .values_list("customer_id", "day", "score")
    )
    rows = list(answers)
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "day": pa.array([r[1] for r in rows], pa.date32()),
            "score": pa.array([r[2] for r in rows], pa.float64()),
        }
    )


def _signals_table(last_day: date) -> pa.Table:
    rows = list(
        RiskSignal.objects.filter(opened_on__lte=last_day).values_list(
            "customer_id", "opened_on", "closed_on"
        )
    )
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "opened_on": pa.array([r[1] for r in rows], pa.date32()),
            "closed_on": pa.array([r[2] for r in rows], pa.date32()),
        }
    )


def _scores_table(days: Sequence[date]) -> pa.Table:
    rows = list(
        HealthScore.objects.filter(day__in=list(days), score__isnull=False).values_list(
            "customer_id", "day", "score"
        )
    )
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "day": pa.array([r[1] for r in rows], pa.date32()),
            "score": pa.array([r[2] for r in rows], pa.float64()),
        }
    )


def build_frame(
    days: Sequence[date],
    *,
    features: Sequence[str],
    horizon_days: int = HORIZON_DAYS,
    metric_days: dict[date, date] | None = None,
) -> Frame:
    """The feature rows of every customer active on each of ``days``, read as of that day.

    ``metric_days`` maps a day to the day whose metric file stands for it (default: its own).
    Set-based: one DuckDB query joins the snapshot days with subscriptions, NPS answers,
    signals, stored scores and the metric files.
    """
    features = list(features)
    metric_keys = [key for key in features if key not in CONTRACT_FEATURES]
    empty = Frame(
        features,
        np.zeros(0, np.int64),
        np.zeros(0, "datetime64[D]"),
        np.zeros((0, len(features))),
        np.zeros(0, np.int8),
    )
    if not days:
        return empty
    days = sorted(set(days))
    metric_days = metric_days or {}
    snap = pa.table(
        {
            "t": pa.array(days, pa.date32()),
            "file_day": pa.array([metric_days.get(day, day) for day in days], pa.date32()),
        }
    )
    subs = _subscriptions_table()
    nps = _nps_table(days[-1])
    signals = _signals_table(days[-1])
    scores = _scores_table(days)
    files = [str(_metric_file(metric_days.get(day, day))) for day in days]
    files = [path for path in files if Path(path).exists()]
    con = duckdb.connect(config={"threads": settings.KIZUNA_DUCKDB_THREADS})
    try:
        con.execute("SET enable_progress_bar=false")
        for name, table in (
            ("snap", snap),
            ("subs", subs),
            ("nps", nps),
            ("signals", signals),
            ("scores", scores),
        ):
            con.register(name, table)
        if files and metric_keys:
            pivots = ", ".join(
                f"max(value) FILTER (WHERE metric = ?) AS m{n}" for n in range(len(metric_keys))
            )
            con.execute(
                f"CREATE TEMP TABLE metrics AS SELECT day AS file_day, customer_id, {pivots} "  # noqa: S608 (placeholders only)
                "FROM read_parquet(?) WHERE list_contains(?, metric) GROUP BY ALL",
                [*metric_keys, files, metric_keys],
            )
        else:
            columns = "".join(f", NULL::DOUBLE AS m{n}" for n in range(len(metric_keys)))
            con.execute(
                "CREATE TEMP TABLE metrics AS SELECT NULL::DATE AS file_day, "
                f"NULL::BIGINT AS customer_id{columns} WHERE false"
            )
        metric_columns = "".join(f", m.m{n}::DOUBLE AS m{n}" for n in range(len(metric_keys)))
        table = con.sql(
            f"""
            WITH active AS (
                SELECT d.t, d.file_day, s.customer_id, sum(s.mrr) AS mrr, sum(s.seats) AS seats,
                       min(s.end_date) AS next_end
                FROM snap d JOIN subs s
                  ON s.start_date <= d.t AND (s.end_date IS NULL OR s.end_date > d.t)
                GROUP BY ALL
            ), first_start AS (
                SELECT d.t, s.customer_id, min(s.start_date) AS first_day
                FROM snap d JOIN subs s ON s.start_date <= d.t
                GROUP BY ALL
            ), later AS (
                SELECT DISTINCT d.t, s.customer_id
                FROM snap d JOIN subs s
                  ON s.start_date <= d.t + $h::INTEGER
                 AND (s.end_date IS NULL OR s.end_date > d.t + $h::INTEGER)
            ), latest_nps AS (
                SELECT d.t, n.customer_id, arg_max(n.score, n.day) AS nps
                FROM snap d JOIN nps n
                  ON n.day <= d.t AND n.day > d.t - $nps_days::INTEGER
                GROUP BY ALL
            ), open_signals AS (
                SELECT d.t, g.customer_id, count(*) AS n
                FROM snap d JOIN signals g
                  ON g.opened_on <= d.t AND (g.closed_on IS NULL OR g.closed_on > d.t)
                GROUP BY ALL
            ), coverage AS (SELECT min(opened_on) AS since FROM signals)
            SELECT a.t, a.customer_id,
                   (l.customer_id IS NULL)::TINYINT AS churned,
                   a.mrr::DOUBLE AS mrr,
                   date_diff('day', f.first_day, a.t)::DOUBLE AS tenure_days,
                   date_diff('day', a.t, a.next_end)::DOUBLE AS days_to_renewal,
                   a.seats::DOUBLE AS seats,
                   p.nps::DOUBLE AS nps,
                   CASE WHEN c.since IS NULL OR a.t < c.since THEN NULL
                        ELSE coalesce(o.n, 0) END::DOUBLE AS open_signals,
                   h.score::DOUBLE AS health_score
                   {metric_columns}
            FROM active a
            JOIN first_start f ON f.t = a.t AND f.customer_id = a.customer_id
            LEFT JOIN later l ON l.t = a.t AND l.customer_id = a.customer_id
            LEFT JOIN latest_nps p ON p.t = a.t AND p.customer_id = a.customer_id
            LEFT JOIN open_signals o ON o.t = a.t AND o.customer_id = a.customer_id
            LEFT JOIN scores h ON h.day = a.t AND h.customer_id = a.customer_id
            LEFT JOIN metrics m ON m.file_day = a.file_day AND m.customer_id = a.customer_id
            CROSS JOIN coverage c
            ORDER BY a.t, a.customer_id
            """,  # noqa: S608 (column names generated from positions, values are parameters)
            params={"h": horizon_days, "nps_days": NPS_WITHIN_DAYS},
        ).to_arrow_table()
    finally:
        con.close()
    if table.num_rows == 0:
        return empty
    renamed = {name: f"m{n}" for n, name in enumerate(metric_keys)}
    x = np.column_stack(
        [
            table.column(renamed.get(name, name)).to_numpy(zero_copy_only=False).astype(np.float64)
            for name in features
        ]
    )
    return Frame(
        features,
        table.column("customer_id").to_numpy().astype(np.int64),
        table.column("t").to_numpy(zero_copy_only=False).astype("datetime64[D]"),
        x,
        table.column("churned").to_numpy().astype(np.int8),
    )


def training_frame(*, as_of: date, horizon_days: int = HORIZON_DAYS) -> Frame:
    """Every labelled monthly snapshot up to ``as_of``, with all candidate features."""
    days = snapshot_days(as_of=as_of, horizon_days=horizon_days)
    return build_frame(
        days, features=[*metric_feature_keys(), *CONTRACT_FEATURES], horizon_days=horizon_days
    )


# -- estimators ----------------------------------------------------------------------------------


def _sklearn() -> Any:
    """scikit-learn is imported on first use (it is slow to import and only the model needs it)."""
    import sklearn  # type: ignore[import-untyped]  # no type hints shipped

    return sklearn


class DropCorrelated:
    """Keeps, of each pair of columns with |r| above ``limit``, the one more correlated with
    the label (greedy in order of label correlation); constant columns are dropped too."""

    def __init__(self, limit: float = CORRELATION_LIMIT) -> None:
        self.limit = limit

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"limit": self.limit}

    def set_params(self, **params: Any) -> "DropCorrelated":
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def fit(self, x: Floats, y: npt.NDArray[Any]) -> "DropCorrelated":
        spread = x.std(axis=0)
        usable = np.flatnonzero(spread > 1e-12)
        if len(usable) == 0:
            self.keep_ = np.zeros(0, np.int64)
            return self
        target = np.asarray(y, np.float64)
        centred = x[:, usable] - x[:, usable].mean(axis=0)
        target_centred = target - target.mean()
        target_norm = np.sqrt((target_centred**2).sum())
        norms = np.sqrt((centred**2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            label_r = np.abs(centred.T @ target_centred) / (norms * target_norm)
            pair_r = np.abs(np.corrcoef(centred, rowvar=False)).reshape(len(usable), len(usable))
        label_r = np.nan_to_num(label_r)
        kept: list[int] = []
        for column in np.argsort(-label_r, kind="stable"):
            if all(not pair_r[column, other] > self.limit for other in kept):
                kept.append(int(column))
        self.keep_ = usable[np.sort(np.array(kept, np.int64))]
        return self

    def transform(self, x: Floats) -> Floats:
        return x[:, self.keep_]

    def fit_transform(self, x: Floats, y: npt.NDArray[Any]) -> Floats:
        return self.fit(x, y).transform(x)


class FillEmptyColumns:
    """Sets the columns that had no value at all in training to 0 (gradient boosting cannot bin
    a column without values; a feature stored only recently is empty in early backtests)."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def set_params(self, **params: Any) -> "FillEmptyColumns":
        return self

    def fit(self, x: Floats, y: npt.NDArray[Any] | None = None) -> "FillEmptyColumns":
        self.empty_ = np.isnan(x).all(axis=0)
        return self

    def transform(self, x: Floats) -> Floats:
        if not self.empty_.any():
            return x
        filled = x.copy()
        filled[:, self.empty_] = 0.0
        return filled

    def fit_transform(self, x: Floats, y: npt.NDArray[Any] | None = None) -> Floats:
        return self.fit(x, y).transform(x)


def make_estimator(kind: str) -> Any:
    """A fresh, unfitted estimator of the kind (single-threaded: the machines are shared)."""
    _sklearn()
    from sklearn.ensemble import HistGradientBoostingClassifier  # type: ignore[import-untyped]
    from sklearn.impute import SimpleImputer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import Pipeline  # type: ignore[import-untyped]
    from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

    if kind == ModelKind.GRADIENT_BOOSTING:
        return Pipeline(
            [
                ("fill_empty", FillEmptyColumns()),
                (
                    "model",
                    HistGradientBoostingClassifier(
                        max_iter=100,
                        learning_rate=0.05,
                        max_leaf_nodes=8,
                        min_samples_leaf=50,
                        l2_regularization=1.0,
                        early_stopping=False,
                        random_state=0,
                    ),
                ),
            ]
        )
    return Pipeline(
        [
            (
                "impute",
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            ("scale", StandardScaler()),
            ("decorrelate", DropCorrelated()),
            ("model", LogisticRegression(C=1.0, max_iter=2000)),
        ]
    )


def _predict(estimator: Any, x: Floats) -> Floats:
    return np.asarray(estimator.predict_proba(x)[:, 1], np.float64)


def lr_parameters(pipeline: Any, features: Sequence[str]) -> dict[str, Any]:
    """The fitted logistic pipeline as JSON-ready numbers (enough to predict again)."""
    imputer = pipeline.named_steps["impute"]
    scaler = pipeline.named_steps["scale"]
    keep = pipeline.named_steps["decorrelate"].keep_
    model = pipeline.named_steps["model"]
    indicators = (
        [int(i) for i in imputer.indicator_.features_] if imputer.indicator_ is not None else []
    )
    columns = [*features, *(f"missing:{features[i]}" for i in indicators)]
    return {
        "medians": [float(v) for v in imputer.statistics_],
        "indicators": indicators,
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "keep": [int(i) for i in keep],
        "columns": [columns[i] for i in keep],
        "coef": [float(v) for v in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
    }


def _lr_design(parameters: dict[str, Any], x: Floats) -> Floats:
    missing = np.isnan(x)
    filled = np.where(missing, np.asarray(parameters["medians"]), x)
    indicators = missing[:, parameters["indicators"]].astype(np.float64)
    design = np.hstack([filled, indicators])
    design = (design - np.asarray(parameters["mean"])) / np.asarray(parameters["scale"])
    return np.asarray(design[:, parameters["keep"]], np.float64)


def lr_log_odds(parameters: dict[str, Any], x: Floats) -> Floats:
    design = _lr_design(parameters, x)
    return np.asarray(design @ np.asarray(parameters["coef"]) + parameters["intercept"])


def _sigmoid(z: Floats) -> Floats:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), np.float64)


# -- backtest ------------------------------------------------------------------------------------


@dataclass
class Backtest:
    """The pooled out-of-time predictions of the backtest and their summary."""

    customer_ids: Ints
    days: npt.NDArray[np.datetime64]
    y: npt.NDArray[np.int8]
    probability: Floats
    baseline: Floats | None
    periods: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """``{"auc", "lift_top_decile", "calibration", "baseline_auc", "baseline_name",
        "beats_baseline", "periods", "rows", "positives", "by_period"}`` (rates as fractions)."""
        auc = roc_auc(self.y, self.probability)
        baseline_auc = roc_auc(self.y, self.baseline) if self.baseline is not None else None
        beats = None
        if auc is not None and baseline_auc is not None:
            beats = auc >= baseline_auc + BASELINE_MARGIN
        return {
            "auc": auc,
            "lift_top_decile": top_decile_lift(self.y, self.probability),
            "calibration": calibration(self.y, self.probability),
            "baseline_auc": baseline_auc,
            "baseline_name": "usage_drop",
            "baseline_feature": BASELINE_FEATURE,
            "beats_baseline": beats,
            "periods": len(self.periods),
            "rows": len(self.y),
            "positives": int(self.y.sum()),
            "base_rate": float(self.y.mean()) if len(self.y) else None,
            "by_period": self.periods,
        }


def roc_auc(y: npt.NDArray[Any], score: Floats) -> float | None:
    """Area under the ROC curve; None unless both classes are present."""
    if len(y) == 0 or y.min() == y.max():
        return None
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    return float(roc_auc_score(y, score))


def top_decile_lift(y: npt.NDArray[Any], score: Floats) -> float | None:
    """Churn rate of the 10% highest scores / overall churn rate (None when nobody churned)."""
    if len(y) == 0 or y.sum() == 0:
        return None
    top = np.argsort(-score, kind="stable")[: max(1, math.ceil(len(y) / 10))]
    return float(y[top].mean() / y.mean())


def calibration(y: npt.NDArray[Any], score: Floats, bins: int = 10) -> list[dict[str, Any]]:
    """Equal-count bins of the predictions (deciles): mean predicted vs observed churn."""
    order = np.argsort(score, kind="stable")
    rows = []
    for part in np.array_split(order, min(bins, len(order))):
        if len(part) == 0:
            continue
        rows.append(
            {
                "predicted": float(score[part].mean()),
                "observed": float(y[part].mean()),
                "count": len(part),
                "positives": int(y[part].sum()),
            }
        )
    return rows


def _enough(y: npt.NDArray[Any]) -> bool:
    positives = int(y.sum())
    return positives >= MIN_POSITIVES and len(y) - positives >= MIN_NEGATIVES


def run_backtest(
    frame: Frame, *, kind: str = ModelKind.LOGISTIC, horizon_days: int = HORIZON_DAYS
) -> Backtest:
    """Train on the past, predict the next period, for each of the last monthly cut-offs."""
    cutoffs = sorted(set(frame.days.tolist()))
    horizon = np.timedelta64(horizon_days, "D")
    usable = [
        cutoff
        for cutoff in cutoffs
        if _enough(frame.y[frame.days + horizon <= np.datetime64(cutoff, "D")])
    ][-BACKTEST_PERIODS:]
    parts: list[tuple[npt.NDArray[np.bool_], Floats]] = []
    periods = []
    for cutoff in usable:
        m = np.datetime64(cutoff, "D")
        train = frame.days + horizon <= m
        test = frame.days == m
        estimator = make_estimator(kind).fit(frame.x[train], frame.y[train])
        probability = _predict(estimator, frame.x[test])
        parts.append((test, probability))
        periods.append(
            {
                "cutoff": cutoff.isoformat(),
                "train_rows": int(train.sum()),
                "train_positives": int(frame.y[train].sum()),
                "rows": int(test.sum()),
                "positives": int(frame.y[test].sum()),
                "auc": roc_auc(frame.y[test], probability),
            }
        )
    if not parts:
        empty = np.zeros(0)
        return Backtest(
            np.zeros(0, np.int64), np.zeros(0, "datetime64[D]"), np.zeros(0, np.int8), empty, None
        )
    masks = [mask for mask, _ in parts]
    index = np.concatenate([np.flatnonzero(mask) for mask in masks])
    probability = np.concatenate([p for _, p in parts])
    baseline = None
    if BASELINE_FEATURE in frame.features:
        change = frame.x[index, frame.features.index(BASELINE_FEATURE)]
        baseline = np.asarray(-np.nan_to_num(change, nan=0.0), np.float64)
    return Backtest(
        frame.customer_ids[index], frame.days[index], frame.y[index], probability, baseline, periods
    )


# -- training ------------------------------------------------------------------------------------


def models_dir() -> Path:
    return Path(settings.DATA_DIR) / "models"


def train_model(
    *, as_of: date, kind: str = ModelKind.LOGISTIC, horizon_days: int = HORIZON_DAYS
) -> ChurnModel:
    """Train a churn model on the history up to ``as_of``, backtest it and make it current.

    Too little history (fewer than ``MIN_POSITIVES`` churned or ``MIN_NEGATIVES`` retained
    rows) gives a saved ChurnModel whose ``error`` says why; it is not made current.
    """
    if kind not in ModelKind.values:
        raise ValueError(f"kind: unknown model kind {kind!r}")
    if horizon_days < 1:
        raise ValueError("horizon_days: must be at least 1")
    frame = training_frame(as_of=as_of, horizon_days=horizon_days)
    present = ~np.isnan(frame.x).all(axis=0)
    features = [name for name, keep in zip(frame.features, present, strict=True) if keep]
    frame = Frame(features, frame.customer_ids, frame.days, frame.x[:, present], frame.y)
    positives = int(frame.y.sum())
    model = ChurnModel(
        kind=kind,
        horizon_days=horizon_days,
        trained_through=as_of,
        features=features,
        rows=len(frame),
        positives=positives,
    )
    if not _enough(frame.y):
        model.error = _(
            "Not enough history to train: {rows} customer-months labelled up to {day}, of which "
            "{positives} churned within {horizon} days; at least {min_positives} churned and "
            "{min_negatives} retained are needed. Compute more metric history (kizuna metrics "
            "run) or wait for more outcomes."
        ).format(
            rows=len(frame),
            day=as_of.isoformat(),
            positives=positives,
            horizon=horizon_days,
            min_positives=MIN_POSITIVES,
            min_negatives=MIN_NEGATIVES,
        )
        model.save()
        logger.warning("churn model not trained: %s", model.error)
        return model
    backtest = run_backtest(frame, kind=kind, horizon_days=horizon_days)
    model.backtest = backtest.summary()
    estimator = make_estimator(kind).fit(frame.x, frame.y)
    medians = np.nanmedian(frame.x, axis=0)
    parameters: dict[str, Any] = {"medians": [float(v) for v in medians]}
    if kind == ModelKind.LOGISTIC:
        parameters["logistic"] = lr_parameters(estimator, features)
    else:
        import joblib  # type: ignore[import-untyped]  # no type hints shipped

        folder = models_dir()
        folder.mkdir(parents=True, exist_ok=True)
        name = f"churn-{as_of.isoformat()}-{uuid.uuid4().hex[:12]}.joblib"
        joblib.dump(estimator, folder / name)
        parameters["estimator"] = f"models/{name}"
    model.parameters = parameters
    with transaction.atomic():
        ChurnModel.objects.filter(is_current=True).update(is_current=False)
        model.is_current = True
        model.save()
    return model


# -- prediction ----------------------------------------------------------------------------------


class ModelUnavailableError(Exception):
    """The model cannot predict (it failed to train, or its stored estimator is gone)."""


def model_probability(model: ChurnModel, x: Floats) -> Floats:
    """The model's churn probabilities for feature rows in ``model.features`` order."""
    if model.error:
        raise ModelUnavailableError(model.error)
    if model.kind == ModelKind.LOGISTIC:
        return _sigmoid(lr_log_odds(model.parameters["logistic"], x))
    import joblib

    path = Path(settings.DATA_DIR) / str(model.parameters.get("estimator", ""))
    if not path.is_file():
        raise ModelUnavailableError(f"estimator file missing: {path}")
    return _predict(joblib.load(path), x)


def drivers_matrix(model: ChurnModel, x: Floats) -> tuple[Floats, Floats]:
    """The probabilities and, per row and feature, how much the feature raises them: p minus
    the probability with that feature alone set to its training median (set-based)."""
    probability = model_probability(model, x)
    medians = np.asarray(model.parameters["medians"], np.float64)
    effects = np.zeros_like(x)
    for j in range(x.shape[1]):
        changed = x.copy()
        changed[:, j] = medians[j]
        effects[:, j] = probability - model_probability(model, changed)
    return probability, effects


def _log_odds_parts(model: ChurnModel, x: Floats) -> Floats | None:
    """For the logistic model: per feature, Σ coefficient × scaled value of its columns."""
    if model.kind != ModelKind.LOGISTIC:
        return None
    parameters = model.parameters["logistic"]
    contributions = _lr_design(parameters, x) * np.asarray(parameters["coef"])
    n_features = x.shape[1]
    owner = np.array(
        [
            i if i < n_features else parameters["indicators"][i - n_features]
            for i in parameters["keep"]
        ],
        np.int64,
    )
    parts = np.zeros_like(x)
    for column, feature in enumerate(owner):
        parts[:, feature] += contributions[:, column]
    return parts


def _metric_days(day: date) -> dict[date, date]:
    for back in range(METRIC_FALLBACK_DAYS + 1):
        candidate = day - timedelta(days=back)
        if _metric_file(candidate).exists():
            return {day: candidate}
    return {}


def predict_current(*, day: date, model: ChurnModel | None = None) -> int:
    """Store a ChurnPrediction with its top drivers for every customer active on ``day``.

    Uses the current model unless one is given; returns how many were stored (0 without a
    usable model). Predicting again the same day with the same model replaces the rows.
    """
    model = model or current_model()
    if model is None or model.error:
        return 0
    frame = build_frame(
        [day],
        features=model.features,
        horizon_days=model.horizon_days,
        metric_days=_metric_days(day),
    )
    if not len(frame):
        return 0
    probability, effects = drivers_matrix(model, frame.x)
    log_odds = _log_odds_parts(model, frame.x)
    labels = {key: feature_label(key) for key in model.features}
    order = np.argsort(-effects, axis=1, kind="stable")[:, :TOP_DRIVERS]
    predictions = []
    for row, customer_id in enumerate(frame.customer_ids.tolist()):
        drivers = []
        for j in order[row].tolist():
            effect = float(effects[row, j])
            if effect <= 0:
                break
            value = frame.x[row, j]
            driver: dict[str, Any] = {
                "feature": model.features[j],
                "label": labels[model.features[j]],
                "value": None if math.isnan(value) else float(value),
                "effect": round(effect, 6),
            }
            if log_odds is not None:
                driver["log_odds"] = round(float(log_odds[row, j]), 6)
            drivers.append(driver)
        predictions.append(
            ChurnPrediction(
                model=model,
                customer_id=customer_id,
                day=day,
                probability=float(probability[row]),
                drivers=drivers,
            )
        )
    with transaction.atomic():
        ChurnPrediction.objects.filter(model=model, day=day).delete()
        ChurnPrediction.objects.bulk_create(predictions, batch_size=2000)
    return len(predictions)


def current_model() -> ChurnModel | None:
    """The model the daily run predicts with (None before the first successful training)."""
    return ChurnModel.objects.filter(is_current=True).first()


def latest_predictions(customer_ids: Sequence[int]) -> dict[int, ChurnPrediction]:
    """Each customer's latest prediction (latest day, then latest model), in one query."""
    latest = ChurnPrediction.objects.filter(customer_id=OuterRef("customer_id")).order_by(
        "-day", "-model_id", "-id"
    )
    rows = ChurnPrediction.objects.filter(
        customer_id__in=list(customer_ids), id=Subquery(latest.values("id")[:1])
    ).select_related("model")
    return {row.customer_id: row for row in rows}


def describe_driver(driver: dict[str, Any]) -> str:
    """A translated sentence for a driver, e.g. "Events vs previous 28 days: −0.35 (+8 points)"."""
    value = driver.get("value")
    shown = "—" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")
    return _("{label}: {value} (+{points} points of churn probability)").format(
        label=feature_label(str(driver.get("feature", ""))) or driver.get("label", ""),
        value=shown,
        points=f"{100 * float(driver.get('effect', 0.0)):.1f}",
    )
