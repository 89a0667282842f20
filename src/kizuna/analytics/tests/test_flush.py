"""The lake flush: exactly once across crashes and concurrent flushes, and identity linking."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import orjson
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone, translation

from kizuna.analytics import engine, flush, ingest, lake, sources
from kizuna.analytics.models import (
    DeliveredMessage,
    GroupLink,
    InboxEvent,
    LakeBatch,
    ProductUser,
    Source,
)
from kizuna.analytics.stats import event_stats, sources_overview
from kizuna.customers.models import Contact, Customer

RECEIVED = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    sources.clear_key_cache()
    yield
    sources.clear_key_cache()


@pytest.fixture
def source(db: None) -> Source:
    return sources.create_source(name="web")[0]


def send(source: Source, *messages: dict[str, Any], received_at: datetime = RECEIVED) -> int:
    """Put messages in the inbox the way the HTTP endpoint does (without HTTP)."""
    rows = ingest.inbox_rows(
        "batch", {"batch": list(messages)}, source_id=source.id, received_at=received_at
    )
    return ingest.store(source.id, rows)


def track(message_id: str, user_id: str = "u-1", **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Report Exported",
        "userId": user_id,
        "messageId": message_id,
        "timestamp": "2026-11-30T02:00:00Z",
        "properties": {"feature": "reports"},
        **fields,
    }


def lake_rows() -> list[dict[str, Any]]:
    files = [str(path) for path in lake.event_files()]
    if not files:
        return []
    con = duckdb.connect()
    try:
        cursor = con.execute(
            "SELECT * FROM read_parquet(?, union_by_name=true) ORDER BY message_id", [files]
        )
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


def message_ids() -> list[str]:
    return [row["message_id"] for row in lake_rows()]


def test_flush_moves_the_inbox_to_daily_parquet_files_and_empties_it(source: Source) -> None:
    send(
        source,
        track("a", timestamp="2026-11-30T14:30:00Z"),  # 23:30 in Tokyo: still the 30th
        track("b", timestamp="2026-11-30T15:30:00Z"),  # 00:30 on the 1st in Tokyo
        {"type": "identify", "userId": "u-1", "messageId": "c", "traits": {"plan": "pro"}},
    )

    result = flush.flush_inbox()

    assert (result.batches, result.rows_written, result.duplicates) == (1, 3, 0)
    assert InboxEvent.objects.count() == 0
    batch = LakeBatch.objects.get()
    assert batch.status == LakeBatch.Status.DONE
    assert sorted(batch.files) == [
        "events/2026-11-30/inbox-000001.parquet".replace("000001", f"{batch.id:06d}"),
        "events/2026-12-01/inbox-000001.parquet".replace("000001", f"{batch.id:06d}"),
    ]
    rows = {row["message_id"]: row for row in lake_rows()}
    assert rows["a"]["event_date"] == date(2026, 11, 30)
    assert rows["b"]["event_date"] == date(2026, 12, 1)
    assert rows["a"]["origin"] == f"source:{source.id}"
    assert orjson.loads(rows["a"]["properties"]) == {"feature": "reports"}
    assert orjson.loads(rows["c"]["properties"]) == {"plan": "pro"}  # traits of identify
    assert rows["a"]["received_at"] == RECEIVED
    assert set(DeliveredMessage.objects.values_list("message_id", flat=True)) == {"a", "b", "c"}


def test_small_batches_split_the_inbox_and_each_gets_its_own_files(source: Source) -> None:
    send(source, *[track(f"m-{n}") for n in range(5)])

    result = flush.flush_inbox(batch_size=2)

    assert (result.batches, result.rows_written) == (3, 5)
    assert list(LakeBatch.objects.values_list("rows_written", flat=True).order_by("id")) == [
        2,
        2,
        1,
    ]
    assert message_ids() == [f"m-{n}" for n in range(5)]


def test_a_retry_after_the_flush_is_dropped_as_duplicate(source: Source) -> None:
    send(source, track("m-1"), track("m-2"))
    flush.flush_inbox()

    send(source, track("m-2"), track("m-3"))  # m-2 again: a client retry after the flush
    result = flush.flush_inbox()

    assert (result.rows_written, result.duplicates) == (1, 1)
    assert message_ids() == ["m-1", "m-2", "m-3"]
    totals = event_stats()
    assert (totals["received"], totals["lake"], totals["duplicates"], totals["inbox"]) == (
        4,
        3,
        1,
        0,
    )


def test_a_crash_between_writing_files_and_committing_loses_and_doubles_nothing(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(source, track("a", timestamp="2026-11-29T02:00:00Z"), track("b"))

    def crash(batch: LakeBatch, written: flush.WrittenBatch) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(flush, "complete_batch", crash)
    with pytest.raises(RuntimeError):
        flush.flush_inbox()
    assert message_ids() == ["a", "b"]  # the files exist …
    assert InboxEvent.objects.count() == 2  # … but the inbox still holds the rows
    assert LakeBatch.objects.get().status == LakeBatch.Status.PENDING

    send(source, track("c"))  # arrives while the batch is pending: goes to the next batch
    monkeypatch.undo()
    result = flush.flush_inbox()

    assert message_ids() == ["a", "b", "c"]  # exactly once
    assert len(lake.event_files()) == 3  # two days of the resumed batch + the next batch
    assert InboxEvent.objects.count() == 0
    assert list(LakeBatch.objects.values_list("status", "rows_written").order_by("id")) == [
        ("done", 2),
        ("done", 1),
    ]
    assert result.rows_written == 3


def test_a_crash_while_writing_files_is_repaired_by_the_next_flush(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(source, track("a", timestamp="2026-11-28T02:00:00Z"), track("b"))
    real_write = lake.write_atomically
    calls = {"n": 0}

    def die_on_second_file(table: Any, path: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_write(table, path)

    monkeypatch.setattr(lake, "write_atomically", die_on_second_file)
    with pytest.raises(OSError, match="disk full"):
        flush.flush_inbox()
    monkeypatch.undo()
    assert message_ids() == ["a"]

    flush.flush_inbox()

    assert message_ids() == ["a", "b"]


def test_rows_committed_late_below_the_claimed_id_stay_for_the_next_batch(source: Source) -> None:
    """PostgreSQL can commit a smaller id after the claim: only rows read are deleted."""
    send(source, track("a"), track("b"))
    batch = flush.claim_batch()
    assert batch is not None
    written = flush.write_batch(batch)
    first_id = InboxEvent.objects.order_by("id").values_list("id", flat=True).first()
    assert first_id is not None
    late = InboxEvent.objects.get(message_id="b")
    late.pk, late.message_id = first_id - 1, "late"  # an id below the batch's range …
    late.save(force_insert=True)  # … committed after the batch was read

    flush.complete_batch(batch, written)

    assert list(InboxEvent.objects.values_list("message_id", flat=True)) == ["late"]
    flush.flush_inbox()
    assert message_ids() == ["a", "b", "late"]


def test_only_one_batch_can_be_pending(source: Source) -> None:
    LakeBatch.objects.create(max_inbox_id=10)

    with pytest.raises(IntegrityError), transaction.atomic():
        LakeBatch.objects.create(max_inbox_id=20)

    LakeBatch.objects.create(max_inbox_id=30, status=LakeBatch.Status.DONE)  # done ones: many
    assert LakeBatch.objects.count() == 2


@contextmanager
def flush_running_elsewhere() -> Iterator[None]:
    """Hold the flush lock the way another process would: its own connection or file."""
    if connection.vendor == "postgresql":
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [flush.ADVISORY_LOCK_KEY])
            yield
        finally:
            other.close()  # ends the session, which releases the lock
        return
    with flush.flush_lock() as acquired:  # flock: a second open file conflicts, even here
        assert acquired
        yield


def test_a_second_flush_while_one_runs_does_nothing(source: Source) -> None:
    send(source, track("a"))

    with flush_running_elsewhere():
        second = flush.flush_inbox()

    assert second.busy
    assert message_ids() == []
    assert InboxEvent.objects.count() == 1
    assert flush.flush_inbox().rows_written == 1


@pytest.mark.django_db(transaction=True)
def test_two_flushes_at_once_write_every_event_exactly_once() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs two real connections (in-memory SQLite is one)")
    source = sources.create_source(name="web")[0]
    send(source, *[track(f"m-{n:03d}") for n in range(300)])
    results: list[flush.FlushResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            results.append(flush.flush_inbox(batch_size=50))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert sum(result.rows_written for result in results) == 300
    assert message_ids() == [f"m-{n:03d}" for n in range(300)]
    assert InboxEvent.objects.count() == 0


def test_delivered_ids_older_than_the_dedup_window_are_forgotten(
    source: Source, settings: Any
) -> None:
    settings.KIZUNA_DEDUP_DAYS = 7
    now = timezone.now()
    DeliveredMessage.objects.create(
        source_id=source.id, message_id="old", delivered_at=now - timedelta(days=8)
    )
    DeliveredMessage.objects.create(
        source_id=source.id, message_id="new", delivered_at=now - timedelta(days=6)
    )

    assert flush.prune_delivered() == 1

    assert list(DeliveredMessage.objects.values_list("message_id", flat=True)) == ["new"]


# --- identities --------------------------------------------------------------------------------


def test_identify_and_group_calls_link_users_and_events_to_a_customer_created_later(
    source: Source,
) -> None:
    send(
        source,
        {"type": "identify", "userId": "u-aoi", "messageId": "i-1",
         "traits": {"email": "Aoi@Example.com", "firstName": "Aoi", "lastName": "Sato"},
         "timestamp": "2026-11-30T01:00:00Z"},
        {"type": "group", "userId": "u-aoi", "groupId": "ws-1", "messageId": "g-1",
         "traits": {"name": "Acme workspace"}, "timestamp": "2026-11-30T01:05:00Z"},
        track("t-1", user_id="u-aoi"),  # no account on the event itself
    )  # fmt: skip
    flush.flush_inbox()

    user = ProductUser.objects.get()
    assert (user.user_id, user.account_key, user.email, user.name) == (
        "u-aoi", "ws-1", "Aoi@Example.com", "Aoi Sato"
    )  # fmt: skip
    assert user.first_seen == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    assert GroupLink.objects.get().customer_key == "ws-1"
    with engine.session("duckdb") as con:
        unknown = engine.usage_events(con).to_pyarrow().to_pylist()
    assert [row["customer_id"] for row in unknown] == [None]  # customer not known yet

    acme = Customer.objects.create(name="Acme", external_id="ws-1")  # the CRM import, later
    with engine.session("duckdb") as con:
        linked = engine.usage_events(con).to_pyarrow().to_pylist()

    assert [(row["customer_id"], row["user_key"]) for row in linked] == [(acme.id, "u-aoi")]
    contact = Contact.objects.create(customer=acme, name="Aoi Sato", email="aoi@example.com")
    assert flush.link_product_users() == 1
    assert ProductUser.objects.get().contact_id == contact.id


def test_a_contact_is_linked_at_flush_by_product_user_id_or_by_email(source: Source) -> None:
    acme = Customer.objects.create(name="Acme", external_id="ACME")
    by_id = Contact.objects.create(customer=acme, name="Ren", product_user_id="u-ren")
    by_email = Contact.objects.create(customer=acme, name="Mio", email="mio@example.com")
    other = Customer.objects.create(name="Other", external_id="OTHER")
    Contact.objects.create(customer=other, name="Ken", email="ken@example.com")
    send(
        source,
        {"type": "identify", "userId": "u-ren", "messageId": "1", "traits": {}},
        {"type": "identify", "userId": "u-mio", "messageId": "2", "context": {"groupId": "ACME"},
         "traits": {"email": "mio@example.com"}},
        # Ken's email is at another customer than the account of this call: no link.
        {"type": "identify", "userId": "u-ken", "messageId": "3", "context": {"groupId": "ACME"},
         "traits": {"email": "ken@example.com"}},
    )  # fmt: skip

    flush.flush_inbox()

    links = dict(ProductUser.objects.values_list("user_id", "contact_id"))
    assert links == {"u-ren": by_id.id, "u-mio": by_email.id, "u-ken": None}


def test_a_source_trait_maps_group_ids_to_customer_external_ids(source: Source) -> None:
    Source.objects.filter(pk=source.pk).update(group_id_trait="crm_id")
    customer = Customer.objects.create(name="Acme", external_id="C-100")
    send(
        source,
        {"type": "group", "userId": "u-1", "groupId": "ws-77", "messageId": "g",
         "traits": {"crm_id": "C-100", "plan": "pro"}},
        track("t", context={"groupId": "ws-77"}),
    )  # fmt: skip

    flush.flush_inbox()

    link = GroupLink.objects.get()
    assert (link.group_id, link.customer_key, link.traits) == (
        "ws-77", "C-100", {"crm_id": "C-100", "plan": "pro"}
    )  # fmt: skip
    with engine.session("duckdb") as con:
        rows = engine.usage_events(con).to_pyarrow().to_pylist()
    assert [row["customer_id"] for row in rows] == [customer.id]


def test_later_identify_calls_update_the_product_user(source: Source) -> None:
    send(source, {"type": "identify", "userId": "u", "messageId": "1", "traits": {"a": 1, "email": "x@e.com"},
                  "timestamp": "2026-11-01T00:00:00Z"})  # fmt: skip
    flush.flush_inbox()
    send(source, {"type": "identify", "userId": "u", "messageId": "2", "traits": {"b": 2},
                  "context": {"groupId": "G"}, "timestamp": "2026-11-05T00:00:00Z"})  # fmt: skip
    flush.flush_inbox()

    user = ProductUser.objects.get()
    assert (user.traits, user.email, user.account_key) == (
        {"a": 1, "email": "x@e.com", "b": 2},
        "x@e.com",
        "G",
    )
    assert (user.first_seen.date(), user.last_seen.date()) == (date(2026, 11, 1), date(2026, 11, 5))


# --- stats and commands ------------------------------------------------------------------------


def test_stats_count_the_last_hour_from_the_inbox_and_recent_lake_files(source: Source) -> None:
    now = timezone.now()
    send(source, track("old"), received_at=now - timedelta(hours=2))
    send(source, track("recent"), received_at=now - timedelta(minutes=10))
    flush.flush_inbox()
    send(source, track("waiting"), received_at=now - timedelta(minutes=1))

    totals = event_stats()
    overview = {row.name: row for row in sources_overview()}

    assert (totals["received"], totals["inbox"], totals["lake"], totals["last_hour"]) == (
        3,
        1,
        2,
        2,
    )
    assert totals["sources"]["web"] == {"inbox": 1, "last_hour": 2, "duplicates": 0, "rejected": 0}
    assert overview["web"].events_last_hour == 2
    assert overview["web"].last_event_at is not None
    assert abs(overview["web"].last_event_at - (now - timedelta(minutes=1))) < timedelta(seconds=1)


def test_the_lake_flush_command_reports_what_it_moved(source: Source, capsys: Any) -> None:
    send(source, track("a"), track("b"))

    call_command("lake", "flush")

    assert "2 events written in 1 batch(es)" in capsys.readouterr().out
    assert message_ids() == ["a", "b"]


def test_worker_once_flushes_and_starts_the_daily_metrics_run(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[bool] = []
    monkeypatch.setattr(
        "kizuna.analytics.management.commands.worker.run_incremental", lambda: runs.append(True)
    )
    send(source, track("a"))

    call_command("worker", "--once")

    assert message_ids() == ["a"]
    assert runs == [True]


def test_sources_command_prints_only_the_new_key_lists_and_revokes(db: None, capsys: Any) -> None:
    call_command("sources", "create", "mobile", "--group-id-trait", "crm_id")
    key = capsys.readouterr().out.strip()

    assert key.startswith("kzw_")
    assert len(key) == 47  # the prefix and 32 random bytes, URL-safe base64
    source = Source.objects.get(name="mobile")
    assert (source.key_prefix, source.group_id_trait) == (key[:8], "crm_id")
    assert source.key_hash == sources.hash_write_key(key) != key
    call_command("sources", "list", "--json")
    listed = orjson.loads(capsys.readouterr().out)
    assert [(row["name"], row["key_prefix"], row["active"]) for row in listed] == [
        ("mobile", key[:8], True)
    ]
    call_command("sources", "revoke", "mobile")
    assert sources.lookup_write_key(key) == sources.KeyLookup(source.id, "mobile", False)
    with pytest.raises(CommandError, match="already exists"), translation.override("en"):
        call_command("sources", "create", "mobile")
    with pytest.raises(CommandError, match="no source named"), translation.override("en"):
        call_command("sources", "revoke", "nothing")


def test_events_stats_command_prints_json(source: Source, capsys: Any) -> None:
    send(source, track("a"), track("a"))  # a duplicate within the request
    ingest.record_rejection(source.id, "invalid_json", "malformed JSON", 1)

    call_command("events", "stats", "--json")

    totals = orjson.loads(capsys.readouterr().out)
    assert {key: totals[key] for key in ("received", "inbox", "lake", "duplicates", "rejected")} == {
        "received": 2, "inbox": 1, "lake": 0, "duplicates": 1, "rejected": 1
    }  # fmt: skip
    assert totals["rejected_by_reason"] == {"invalid_json": 1}
