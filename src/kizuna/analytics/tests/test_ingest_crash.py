"""A server killed (kill -9) while batches are in flight loses nothing it acknowledged."""

import base64
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import requests

from kizuna.analytics.tests.live import LiveServer

pytestmark = pytest.mark.live

SENDERS = 4
BATCH = 50


@pytest.fixture
def server() -> Iterator[tuple[LiveServer, str]]:
    live = LiveServer(workers=2)
    try:
        key = live.prepare()
        live.start()
        yield live, key
    finally:
        live.cleanup()


def test_every_acknowledged_batch_survives_a_kill_9_of_the_server(
    server: tuple[LiveServer, str],
) -> None:
    live, key = server
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    acknowledged: list[str] = []
    failed: list[str] = []
    stop = threading.Event()

    def sender(number: int) -> None:
        session = requests.Session()
        sequence = 0
        while not stop.is_set():
            ids = [f"s{number}-b{sequence}-m{n}" for n in range(BATCH)]
            sequence += 1
            body = orjson.dumps(
                {"batch": [{"type": "track", "event": "Saved", "userId": "u", "messageId": m}
                           for m in ids]}
            )  # fmt: skip
            try:
                response = session.post(
                    f"{live.url}/v1/batch",
                    data=body,
                    headers={"Authorization": auth, "Content-Type": "application/json"},
                    timeout=10,
                )
            except requests.RequestException:
                failed.extend(ids)
                time.sleep(0.05)
                continue
            (acknowledged if response.status_code == 200 else failed).extend(ids)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30  # both workers load Django on their first request
    while len(acknowledged) < 40 * BATCH and time.monotonic() < deadline:
        time.sleep(0.05)
    live.kill()  # SIGKILL to Granian and both workers, mid-flight
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)

    assert len(acknowledged) > 20 * BATCH  # the server did work before it died
    assert failed  # and requests were in flight or refused when it did
    live.start()  # the database recovers (SQLite WAL) and the server answers again
    response = requests.post(
        f"{live.url}/v1/track",
        data=orjson.dumps({"event": "After", "userId": "u", "messageId": "after-restart"}),
        headers={"Authorization": auth},
        timeout=10,
    )
    assert response.status_code == 200

    stored = {row[0] for row in live.query("SELECT message_id FROM analytics_inboxevent")}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:3]}"
    assert "after-restart" in stored
