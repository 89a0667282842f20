"""Segment's own Python client sends a few thousand events to a live Kizuna: each arrives once."""

from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from segment.analytics.client import Client

from kizuna.analytics.tests.live import LiveServer

pytestmark = pytest.mark.live

EVENTS = 3000


@pytest.fixture
def server() -> Iterator[tuple[LiveServer, str]]:
    live = LiveServer(workers=2)
    try:
        key = live.prepare()
        live.start()
        yield live, key
    finally:
        live.cleanup()


def send(live: LiveServer, key: str, numbers: range) -> list[Any]:
    """Send events numbered ``numbers`` (track, with an identify and a group every tenth)."""
    errors: list[Any] = []
    client = Client(
        key,
        host=live.url,
        sync_mode=False,
        upload_size=100,
        max_queue_size=10_000,
        on_error=lambda error, batch: errors.append(error),
    )
    for n in numbers:
        user = f"user-{n % 50}"
        if n % 10 == 1:
            client.identify(user, {"email": f"{user}@example.com"}, message_id=f"m-{n}")
        elif n % 10 == 2:
            client.group(user, f"acct-{n % 5}", {"name": "Acme"}, message_id=f"m-{n}")
        else:
            client.track(
                user, "Report Exported", {"feature": "reports"}, message_id=f"m-{n}",
                context={"groupId": f"acct-{n % 5}"},
            )  # fmt: skip
    client.flush()
    client.join()
    return errors


def lake_message_ids(live: LiveServer) -> tuple[int, int]:
    pattern = str(live.root / "lake" / "events" / "*" / "*.parquet")
    con = duckdb.connect()
    try:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT message_id) FROM read_parquet(?)", [pattern]
        ).fetchone() or (0, 0)
    finally:
        con.close()
    return int(total), int(distinct)


def test_the_segment_client_delivers_every_event_exactly_once(
    server: tuple[LiveServer, str],
) -> None:
    live, key = server

    assert send(live, key, range(EVENTS)) == []

    rows = live.query("SELECT message_id, count(*) FROM analytics_inboxevent GROUP BY message_id")
    assert len(rows) == EVENTS
    assert {count for _id, count in rows} == {1}
    assert {message_id for message_id, _count in rows} == {f"m-{n}" for n in range(EVENTS)}
    kinds = dict(live.query("SELECT kind, count(*) FROM analytics_inboxevent GROUP BY kind"))
    assert kinds == {"track": 2400, "identify": 300, "group": 300}

    live.kizuna("lake", "--skip-checks", "flush")
    assert lake_message_ids(live) == (EVENTS, EVENTS)

    # A client that resends 200 of them (say, after a timeout) changes nothing in the lake.
    assert send(live, key, range(1000, 1200)) == []
    live.kizuna("lake", "--skip-checks", "flush")

    assert lake_message_ids(live) == (EVENTS, EVENTS)
    assert live.query("SELECT sum(duplicates) FROM analytics_lakebatch") == [(200,)]
    assert live.query("SELECT count(*) FROM analytics_inboxevent") == [(0,)]
