"""The simulated company as files: the CSVs a CRM exports, and the hidden ground truth.

The CSV columns are the field names Kizuna's import accepts without a mapping
(``kizuna import customers|contacts|subscriptions``). The ground truth is written next to the
data in ``ground_truth/`` (Parquet, streamed customer by customer) with a ``ground_truth.json``
manifest; nothing in the product reads it. It holds, per customer, the hidden fit, the
onboarding time, the fate and its cause; the weekly engagement, users and seats; and every
happening of the story with its date (departures, trainings, renewal decisions with their churn
probability, upsells, NPS answers…), including those no CSM heard of.
"""

import csv
import io
import json
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kizuna.demo.config import DemoConfig
from kizuna.demo.simulation import SimulatedCustomer

CUSTOMER_COLUMNS = (
    "external_id", "name", "domain", "industry", "employee_count", "region", "segment",
    "lifecycle_stage", "touch_model", "churn_date", "churn_reason",
)  # fmt: skip
CONTACT_COLUMNS = (
    "external_id", "account_id", "name", "email", "phone", "job_title", "role", "language",
    "product_user_id", "started_on", "ended_on",
)  # fmt: skip
SUBSCRIPTION_COLUMNS = (
    "external_id", "account_id", "product", "plan", "start_date", "end_date", "mrr", "quantity",
    "unit", "bill_period_months", "discount", "currency", "status",
)  # fmt: skip
TABLES = {
    "customers": CUSTOMER_COLUMNS,
    "contacts": CONTACT_COLUMNS,
    "subscriptions": SUBSCRIPTION_COLUMNS,
}
CURRENCY = "JPY"

TRUTH_DIR = "ground_truth"
TRUTH_MANIFEST = "ground_truth.json"
TRUTH_CUSTOMERS = pa.schema(
    [
        ("external_id", pa.string()),
        ("segment", pa.string()),
        ("touch_model", pa.string()),
        ("first_start", pa.date32()),
        ("fit", pa.float64()),
        ("onboarding_days", pa.int32()),
        ("onboarding_speed", pa.string()),  # fast / normal / slow (config.Onboarding)
        ("stage", pa.string()),
        ("churned", pa.bool_()),
        ("churn_date", pa.date32()),
        ("churn_cause", pa.string()),  # low_engagement / champion_left / external
        ("churn_reason", pa.string()),
        ("reactivated", pa.bool_()),
        ("departures", pa.int32()),
        ("trainings_after_departure", pa.int32()),
        ("upsells", pa.int32()),
        ("downgrades", pa.int32()),
        ("cross_sold", pa.bool_()),
        ("mean_nps", pa.float64()),
        ("story", pa.string()),  # the showcase story imposed on it, if any
    ]
)
TRUTH_ENGAGEMENT = pa.schema(
    [
        ("external_id", pa.string()),
        ("week_start", pa.date32()),
        ("engagement", pa.float32()),  # 0 when not a customer that week
        ("users", pa.int32()),  # provisioned product users
        ("seats", pa.int32()),
    ]
)
TRUTH_HAPPENINGS = pa.schema(
    [
        ("external_id", pa.string()),
        ("day", pa.date32()),
        ("kind", pa.string()),
        ("on_timeline", pa.bool_()),  # False: the CS team never heard of it
        ("title", pa.string()),
        ("payload", pa.string()),  # JSON
    ]
)
UPSELL_KINDS = frozenset({"upsell", "tier_up", "seats_added"})
DOWNGRADE_KINDS = frozenset({"downgrade", "tier_down"})


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def customer_row(c: SimulatedCustomer) -> list[str]:
    values = (
        c.external_id, c.name, c.domain, c.industry, c.employees, c.region, c.segment,
        c.stage, c.touch_model, c.churn_date, c.churn_reason,
    )  # fmt: skip
    return [_cell(v) for v in values]


def contact_rows(c: SimulatedCustomer) -> list[list[str]]:
    rows = []
    for n, p in enumerate(c.people, start=1):
        values = (
            f"{c.external_id}-P{n:02d}", c.external_id, p.name, p.email, p.phone, p.job_title,
            p.role, p.language, p.product_user_id, p.started_on, p.ended_on,
        )  # fmt: skip
        rows.append([_cell(v) for v in values])
    return rows


def subscription_rows(c: SimulatedCustomer) -> list[list[str]]:
    rows = []
    for n, r in enumerate(c.rows, start=1):
        values = (
            f"{c.external_id}-S{n:03d}", c.external_id, r.product.code,
            r.product.plan(r.rank).code, r.start, r.end, r.mrr, r.quantity, r.product.unit,
            r.bill_months, r.discount, CURRENCY, r.status,
        )  # fmt: skip
        rows.append([_cell(v) for v in values])
    return rows


ROWS = {
    "customers": lambda c: [customer_row(c)],
    "contacts": contact_rows,
    "subscriptions": subscription_rows,
}


def csv_bytes(kind: str, customers: list[SimulatedCustomer]) -> bytes:
    """One import file (UTF-8 CSV) of ``kind`` for the customers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLES[kind])
    for c in customers:
        writer.writerows(ROWS[kind](c))
    return buffer.getvalue().encode()


class CsvFiles:
    """customers.csv, contacts.csv and subscriptions.csv in a folder, appended chunk by chunk."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.handles: dict[str, TextIO] = {}
        self.writers: dict[str, Any] = {}
        self.rows = dict.fromkeys(TABLES, 0)
        for kind, columns in TABLES.items():
            handle = (folder / f"{kind}.csv").open("w", encoding="utf-8", newline="")
            self.handles[kind] = handle
            self.writers[kind] = csv.writer(handle, lineterminator="\n")
            self.writers[kind].writerow(columns)

    def add(self, customers: list[SimulatedCustomer]) -> None:
        for kind, writer in self.writers.items():
            for c in customers:
                rows = ROWS[kind](c)
                writer.writerows(rows)
                self.rows[kind] += len(rows)

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def _speed(days: int, config: DemoConfig) -> str:
    if days <= config.onboarding.fast_days:
        return "fast"
    return "slow" if days >= config.onboarding.slow_days else "normal"


class TruthWriter:
    """Streams the ground truth of customers to ``folder/ground_truth/*.parquet``."""

    def __init__(self, folder: Path, *, config: DemoConfig) -> None:
        self.folder = folder / TRUTH_DIR
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.customers = 0
        self.writers = {
            name: pq.ParquetWriter(self.folder / f"{name}.parquet", schema, compression="zstd")
            for name, schema in (
                ("customers", TRUTH_CUSTOMERS),
                ("engagement", TRUTH_ENGAGEMENT),
                ("happenings", TRUTH_HAPPENINGS),
            )
        }

    def add(self, customers: list[SimulatedCustomer]) -> None:
        if not customers:
            return
        self.customers += len(customers)
        self.writers["customers"].write_table(
            pa.Table.from_pylist([self._customer(c) for c in customers], schema=TRUTH_CUSTOMERS)
        )
        weeks = np.array([len(c.engagement) for c in customers])
        first = np.array([c.first_start for c in customers], dtype="datetime64[D]")
        within = np.arange(weeks.sum()) - np.repeat(np.cumsum(weeks) - weeks, weeks)
        self.writers["engagement"].write_table(
            pa.table(
                {
                    "external_id": pa.array([c.external_id for c in customers], pa.string()).take(
                        pa.array(np.repeat(np.arange(len(customers)), weeks))
                    ),
                    "week_start": pa.array(np.repeat(first, weeks) + within * 7, pa.date32()),
                    "engagement": pa.array(
                        _concat([c.engagement for c in customers]), pa.float32()
                    ),
                    "users": pa.array(_concat([c.users for c in customers]), pa.int32()),
                    "seats": pa.array(_concat([c.seats for c in customers]), pa.int32()),
                },
                schema=TRUTH_ENGAGEMENT,
            )
        )
        self.writers["happenings"].write_table(
            pa.Table.from_pylist(
                [
                    {
                        "external_id": c.external_id,
                        "day": h.day,
                        "kind": h.kind,
                        "on_timeline": h.timeline_kind is not None,
                        "title": h.title,
                        "payload": json.dumps(h.payload, ensure_ascii=False, sort_keys=True),
                    }
                    for c in customers
                    for h in c.happenings
                ],
                schema=TRUTH_HAPPENINGS,
            )
        )

    def _customer(self, c: SimulatedCustomer) -> dict[str, Any]:
        kinds = [h.kind for h in c.happenings]
        scores = [h.payload["score"] for h in c.happenings if h.kind == "nps"]
        return {
            "external_id": c.external_id,
            "segment": c.segment,
            "touch_model": c.touch_model,
            "first_start": c.first_start,
            "fit": round(c.fit, 6),
            "onboarding_days": c.onboarding_days,
            "onboarding_speed": _speed(c.onboarding_days, self.config),
            "stage": c.stage,
            "churned": c.churn_date is not None,
            "churn_date": c.churn_date,
            "churn_cause": c.churn_cause or None,
            "churn_reason": c.churn_reason or None,
            "reactivated": "reactivation" in kinds,
            "departures": sum(k in ("admin_changed", "champion_changed") for k in kinds),
            "trainings_after_departure": kinds.count("training"),
            "upsells": sum(k in UPSELL_KINDS for k in kinds),
            "downgrades": sum(k in DOWNGRADE_KINDS for k in kinds),
            "cross_sold": "cross_sell" in kinds,
            "mean_nps": round(sum(scores) / len(scores), 3) if scores else None,
            "story": c.script or None,
        }

    def close(self, **manifest: Any) -> Path:
        """Close the files and write the manifest (``manifest`` adds its own entries)."""
        for writer in self.writers.values():
            writer.close()
        path = self.folder.parent / TRUTH_MANIFEST
        document = {
            "about": "Hidden truth of the simulated demo company. Kizuna never reads this file.",
            **manifest,
            "customers": self.customers,
            "files": {
                name: f"{TRUTH_DIR}/{name}.parquet"
                for name in ("customers", "engagement", "happenings")
            },
            "config": asdict(self.config),
        }
        path.write_text(
            json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True, default=_json)
            + "\n",
            encoding="utf-8",
        )
        return path


def _json(value: object) -> object:
    if isinstance(value, Decimal | date):
        return str(value)
    raise TypeError(type(value).__name__)


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)
