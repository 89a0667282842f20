"""The lake flush: inbox rows → Parquet files, exactly once, and identify/group calls → identities.

The protocol survives being killed at any point and two workers running it at once:

1. **Claim** (one transaction): resume the pending ``LakeBatch`` if there is one, else create one
   whose ``max_inbox_id`` bounds the rows it takes. A conditional unique constraint
   (``lakebatch_one_pending``) lets only one batch be pending, so two batches never overlap.
2. **Write**: read the batch's inbox rows in one statement (one consistent snapshot), drop those
   whose ``(source, messageId)`` was already delivered (duplicates), and write the rest with
   ``lake.write_events(table, "inbox-<batch id>")``. The file names depend only on the batch, so
   writing again after a crash replaces the earlier files instead of adding copies.
3. **Complete** (one transaction): remember the delivered message ids, apply the batch's
   identify/group calls (``ProductUser``, ``GroupLink``, links to Contacts), delete exactly the
   inbox rows that were written, and mark the batch done. Killed before this commits, the batch
   stays pending and the next flush redoes steps 2–3 over the same rows (plus any that
   committed late), replacing the files.

Only one process works on the pending batch at a time: the flush holds a lock that dies with its
process — a PostgreSQL advisory lock, or on SQLite (one machine by definition) an ``flock`` on a
file beside the lake. A second flush finds it taken and returns ``busy``. Deleting the rows
actually read (not the id range) matters on PostgreSQL, where a row with a smaller id can commit
after the claim.
"""

import fcntl
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from kizuna.analytics import lake
from kizuna.analytics.identity import account_customer_map
from kizuna.analytics.models import (
    DeliveredMessage,
    GroupLink,
    InboxEvent,
    LakeBatch,
    ProductUser,
    Source,
)
from kizuna.customers.models import Contact

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 50_000
FETCH_CHUNK = 5_000
ADVISORY_LOCK_KEY = 0x4B5A_4C4B  # "KZLK": the lake flush
IDENTITY_KINDS = ("identify", "group")


@dataclass(frozen=True)
class FlushResult:
    """What one ``flush_inbox`` call did (``busy``: another flush was running; nothing done)."""

    batches: int = 0
    rows_written: int = 0
    duplicates: int = 0
    files: tuple[str, ...] = ()
    busy: bool = False
    pruned: int = 0


@dataclass(frozen=True)
class IdentityCall:
    """An identify or group call of a batch, as the identity step needs it."""

    kind: str
    source_id: int
    user_id: str
    account_key: str
    traits: dict[str, Any]
    event_time: datetime


@dataclass
class WrittenBatch:
    """Step 2's outcome, everything step 3 needs."""

    inbox_ids: list[int] = field(default_factory=list)
    delivered: list[tuple[int, str]] = field(default_factory=list)
    duplicates: int = 0
    files: list[str] = field(default_factory=list)
    identity_calls: list[IdentityCall] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return len(self.delivered)


class FlushConflictError(Exception):
    """Another flush owns the pending batch (only possible without the flush lock)."""


def flush_inbox(batch_size: int = DEFAULT_BATCH_SIZE) -> FlushResult:
    """Move every inbox row present at the start to the lake, ``batch_size`` rows per batch.

    Safe to call from several processes at once (one works, the others return ``busy``) and
    exactly-once across crashes (see the module docstring).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with flush_lock() as acquired:
        if not acquired:
            return FlushResult(busy=True)
        stop_at = InboxEvent.objects.aggregate(last=Max("id"))["last"] or 0
        batches = rows = duplicates = 0
        files: list[str] = []
        while True:
            try:
                batch = claim_batch(batch_size)
            except FlushConflictError:
                return FlushResult(busy=True)
            if batch is None:
                break
            written = write_batch(batch)
            complete_batch(batch, written)
            batches += 1
            rows += written.rows_written
            duplicates += written.duplicates
            files.extend(written.files)
            if batch.max_inbox_id >= stop_at:
                break
        pruned = prune_delivered()
    return FlushResult(
        batches=batches,
        rows_written=rows,
        duplicates=duplicates,
        files=tuple(files),
        pruned=pruned,
    )


@contextmanager
def flush_lock() -> Iterator[bool]:
    """Hold the flush lock for the block; yields False (at once) when another process has it."""
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
    path = lake.lake_root() / ".flush.lock"
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


def claim_batch(batch_size: int = DEFAULT_BATCH_SIZE) -> LakeBatch | None:
    """Step 1: the pending batch, or a new one over the next ``batch_size`` inbox rows."""
    try:
        with transaction.atomic():
            pending = LakeBatch.objects.filter(status=LakeBatch.Status.PENDING).first()
            if pending is not None:
                return pending
            ids = InboxEvent.objects.order_by("id").values_list("id", flat=True)
            last = ids[batch_size - 1 : batch_size].first()
            if last is None:
                last = InboxEvent.objects.aggregate(last=Max("id"))["last"]
            if last is None:
                return None
            return LakeBatch.objects.create(max_inbox_id=last)
    except IntegrityError:
        raise FlushConflictError from None


def _select_sql() -> str:
    quote = connection.ops.quote_name
    inbox = quote(InboxEvent._meta.db_table)
    delivered = quote(DeliveredMessage._meta.db_table)
    if connection.vendor == "sqlite":  # text, not Django's per-row datetime converter
        times = "CAST(i.event_time AS TEXT), CAST(i.received_at AS TEXT)"
    else:
        times = "i.event_time, i.received_at"
    return (
        f"SELECT i.id, i.source_id, i.message_id, i.kind, i.event_type, {times}, i.user_id, "  # noqa: S608 - our names; values are parameters
        f"i.anonymous_id, i.account_key, i.event_value, i.feature, i.payload, d.id "
        f"FROM {inbox} i LEFT JOIN {delivered} d "
        f"ON d.source_id = i.source_id AND d.message_id = i.message_id "
        f"WHERE i.id <= %s ORDER BY i.id"
    )


def write_batch(batch: LakeBatch) -> WrittenBatch:
    """Step 2: write the batch's new events to the lake; nothing in the database changes."""
    written = WrittenBatch()
    columns: dict[str, list[Any]] = {name: [] for name in lake.EVENT_SCHEMA.names}
    with connection.cursor() as cursor:
        cursor.execute(_select_sql(), [batch.max_inbox_id])
        while chunk := cursor.fetchmany(FETCH_CHUNK):
            for row in chunk:
                _take_row(row, written, columns)
    if written.delivered:
        table = _event_table(columns)
        written.files = lake.write_events(table, f"inbox-{batch.id:06d}")
    return written


def _take_row(row: Sequence[Any], written: WrittenBatch, columns: dict[str, list[Any]]) -> None:
    (inbox_id, source_id, message_id, kind, event_type, event_time, received_at, user_id,
     anonymous_id, account_key, event_value, feature, payload, delivered_id) = row  # fmt: skip
    written.inbox_ids.append(inbox_id)
    if delivered_id is not None:
        written.duplicates += 1
        return
    written.delivered.append((source_id, message_id))
    message = orjson.loads(payload)
    details = message.get("traits" if kind in IDENTITY_KINDS else "properties")
    if not isinstance(details, dict):
        details = {}
    columns["message_id"].append(message_id)
    columns["origin"].append(f"source:{source_id}")
    columns["kind"].append(kind)
    columns["event_type"].append(event_type)
    columns["event_time"].append(event_time)
    columns["received_at"].append(received_at)
    columns["user_id"].append(user_id)
    columns["anonymous_id"].append(anonymous_id)
    columns["account_key"].append(account_key)
    columns["event_value"].append(event_value)
    columns["feature"].append(feature)
    columns["properties"].append(orjson.dumps(details).decode())
    if kind in IDENTITY_KINDS and user_id:
        written.identity_calls.append(
            IdentityCall(kind, source_id, user_id, account_key, details, _as_datetime(event_time))
        )


def _timestamps(values: list[Any]) -> pa.Array:
    if connection.vendor == "sqlite":
        naive = pa.array(values, pa.string()).cast(pa.timestamp("us"))
        return pc.assume_timezone(naive, "UTC")
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _event_table(columns: dict[str, list[Any]]) -> pa.Table:
    event_time = _timestamps(columns.pop("event_time"))
    arrays: dict[str, Any] = {
        "event_time": event_time,
        "received_at": _timestamps(columns.pop("received_at")),
        "event_date": lake.event_dates(event_time),
    }
    columns.pop("event_date")
    for name, values in columns.items():
        arrays[name] = pa.array(values, lake.EVENT_SCHEMA.field(name).type)
    return lake.conform(pa.table(arrays), lake.EVENT_SCHEMA)


def complete_batch(batch: LakeBatch, written: WrittenBatch) -> None:
    """Step 3: in one transaction, mark delivered, link identities, delete the moved rows."""
    now = timezone.now()
    with transaction.atomic():
        done = LakeBatch.objects.filter(pk=batch.pk, status=LakeBatch.Status.PENDING).update(
            status=LakeBatch.Status.DONE,
            rows_written=written.rows_written,
            duplicates=written.duplicates,
            files=written.files,
            finished_at=now,
        )
        if done != 1:
            raise FlushConflictError
        _insert_delivered(written.delivered, now)
        apply_identity_calls(written.identity_calls)
        _delete_inbox_rows(written.inbox_ids)
    batch.refresh_from_db()


def _insert_delivered(keys: Sequence[tuple[int, str]], now: datetime) -> None:
    if not keys:
        return
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(DeliveredMessage._meta.db_table)} "  # noqa: S608 - our names; values are parameters
        f"(source_id, message_id, delivered_at) VALUES (%s, %s, %s) "
        f"ON CONFLICT (source_id, message_id) DO NOTHING"
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(source_id, message_id, stamp) for source_id, message_id in keys])


def _id_runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted ids as inclusive runs of consecutive values: [1,2,3,7] → [(1,3),(7,7)]."""
    runs: list[tuple[int, int]] = []
    for value in sorted(ids):
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _delete_inbox_rows(ids: Sequence[int]) -> None:
    runs = _id_runs(ids)
    for start in range(0, len(runs), 200):
        condition = Q()
        for low, high in runs[start : start + 200]:
            condition |= Q(id__gte=low, id__lte=high) if low != high else Q(id=low)
        InboxEvent.objects.filter(condition).delete()  # a fast delete: nothing refers to it


def prune_delivered() -> int:
    """Forget delivered message ids older than ``KIZUNA_DEDUP_DAYS`` (in chunks)."""
    cutoff = timezone.now() - timedelta(days=settings.KIZUNA_DEDUP_DAYS)
    last = DeliveredMessage.objects.filter(delivered_at__lt=cutoff).aggregate(last=Max("id"))
    if last["last"] is None:
        return 0
    removed = 0
    while True:
        ids = DeliveredMessage.objects.filter(id__lte=last["last"]).order_by("id")
        bound = ids.values_list("id", flat=True)[49_999:50_000].first() or last["last"]
        removed += DeliveredMessage.objects.filter(id__lte=bound).delete()[0]
        if bound >= last["last"]:
            return removed


# --- identities --------------------------------------------------------------------------------


def _text(value: Any, limit: int) -> str:
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)[:limit]
    return ""


def _display_name(traits: dict[str, Any]) -> str:
    name = _text(traits.get("name"), 200)
    if name:
        return name
    parts = [_text(traits.get(key), 100) for key in ("firstName", "lastName")]
    return " ".join(part for part in parts if part)[:200]


def apply_identity_calls(calls: Sequence[IdentityCall]) -> None:
    """Upsert product users and group links from identify/group calls, then link contacts.

    Later calls win (by event time); traits accumulate. A user's account is the group call's
    ``groupId`` or the ``context.groupId`` of their identify call. One query per kind of row,
    not per call.
    """
    if not calls:
        return
    ordered = sorted(calls, key=lambda call: call.event_time)
    _upsert_product_users(ordered)
    _upsert_group_links([call for call in ordered if call.kind == "group"])
    link_product_users(user_ids={call.user_id for call in ordered})


def _upsert_product_users(ordered: Sequence[IdentityCall]) -> None:
    users: dict[str, dict[str, Any]] = {}
    for call in ordered:
        user = users.setdefault(
            call.user_id,
            {"account_key": "", "email": "", "name": "", "traits": {},
             "first_seen": call.event_time, "last_seen": call.event_time},
        )  # fmt: skip
        user["last_seen"] = call.event_time
        if call.account_key:
            user["account_key"] = call.account_key
        if call.kind == "identify":
            user["traits"].update(call.traits)
            user["email"] = _text(call.traits.get("email"), 254) or user["email"]
            user["name"] = _display_name(call.traits) or user["name"]
    for chunk in _chunks(list(users), 500):
        existing = ProductUser.objects.in_bulk(chunk, field_name="user_id")
        changed: list[ProductUser] = []
        created: list[ProductUser] = []
        for user_id in chunk:
            seen = users[user_id]
            current = existing.get(user_id)
            if current is None:
                created.append(ProductUser(user_id=user_id, **seen))
                continue
            current.account_key = seen["account_key"] or current.account_key
            current.email = seen["email"] or current.email
            current.name = seen["name"] or current.name
            current.traits = {**current.traits, **seen["traits"]}
            current.first_seen = min(current.first_seen, seen["first_seen"])
            current.last_seen = max(current.last_seen, seen["last_seen"])
            changed.append(current)
        ProductUser.objects.bulk_create(created)
        ProductUser.objects.bulk_update(
            changed, ["account_key", "email", "name", "traits", "first_seen", "last_seen"]
        )


def _upsert_group_links(group_calls: Sequence[IdentityCall]) -> None:
    if not group_calls:
        return
    trait_of_source = dict(
        Source.objects.filter(id__in={call.source_id for call in group_calls}).values_list(
            "id", "group_id_trait"
        )
    )
    links: dict[str, tuple[str, dict[str, Any]]] = {}
    for call in group_calls:
        trait = trait_of_source.get(call.source_id, "")
        customer_key = _text(call.traits.get(trait), 200) if trait else ""
        previous = links.get(call.account_key, ("", {}))
        links[call.account_key] = (
            customer_key or previous[0] or call.account_key,
            {**previous[1], **call.traits},
        )
    for chunk in _chunks(list(links), 500):
        existing = GroupLink.objects.in_bulk(chunk, field_name="group_id")
        created: list[GroupLink] = []
        changed: list[GroupLink] = []
        for group_id in chunk:
            customer_key, traits = links[group_id]
            current = existing.get(group_id)
            if current is None:
                created.append(
                    GroupLink(group_id=group_id, customer_key=customer_key, traits=traits)
                )
                continue
            current.customer_key = customer_key
            current.traits = {**current.traits, **traits}
            changed.append(current)
        GroupLink.objects.bulk_create(created)
        GroupLink.objects.bulk_update(changed, ["customer_key", "traits"])


def link_product_users(*, user_ids: Iterable[str] | None = None) -> int:
    """Link product users to Contacts; return how many links changed.

    A user's contact is the Contact whose ``product_user_id`` is the user id, else the Contact
    with the user's email at the customer the user's account names. ``user_ids=None`` relinks
    every user without a contact (for contacts created after their users were seen).
    """
    columns = ("id", "user_id", "account_key", "email", "contact_id")
    if user_ids is None:
        rows = list(ProductUser.objects.filter(contact__isnull=True).values_list(*columns))
    else:
        rows = []
        for chunk in _chunks(sorted(set(user_ids)), 500):
            rows.extend(ProductUser.objects.filter(user_id__in=chunk).values_list(*columns))
    if not rows:
        return 0
    accounts = account_customer_map()
    customer_of_account = dict(
        zip(accounts["account_key"].to_pylist(), accounts["customer_id"].to_pylist(), strict=True)
    )
    changed = 0
    for start in range(0, len(rows), 500):
        chunk_rows = rows[start : start + 500]
        by_user_id: dict[str, int] = {}
        for product_user_id, contact_id in (
            Contact.objects.filter(product_user_id__in=[row[1] for row in chunk_rows])
            .order_by("ended_on", "id")
            .values_list("product_user_id", "id")
        ):
            by_user_id.setdefault(product_user_id, contact_id)
        emails = {row[3] for row in chunk_rows if row[3]}
        by_email: dict[tuple[int, str], int] = {}
        if emails:
            for customer_id, email, contact_id in (
                Contact.objects.filter(email__in=emails | {email.lower() for email in emails})
                .order_by("id")
                .values_list("customer_id", "email", "id")
            ):
                by_email.setdefault((customer_id, email.lower()), contact_id)
        updates: list[ProductUser] = []
        for pk, user_id, account_key, email, contact_id in chunk_rows:
            found: int | None = by_user_id.get(user_id)
            account_customer = customer_of_account.get(account_key)
            if found is None and account_customer is not None and email:
                found = by_email.get((account_customer, email.lower()))
            if found is not None and found != contact_id:
                updates.append(ProductUser(id=pk, contact_id=found))
        ProductUser.objects.bulk_update(updates, ["contact"])
        changed += len(updates)
    return changed


def _chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[start : start + size] for start in range(0, len(values), size)]
