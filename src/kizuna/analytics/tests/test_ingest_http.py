"""The Segment-compatible endpoints: every call, auth, limits, malformed input, duplicates, skew."""

import base64
import gzip
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from django.db import OperationalError
from django.test import Client

from kizuna.analytics import ingest, sources
from kizuna.analytics.models import InboxEvent, IngestRejection, Source
from kizuna.analytics.stats import event_stats, recent_rejections

Post = Callable[..., Any]


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    sources.clear_key_cache()
    ingest._auth_failures.clear()
    yield
    sources.clear_key_cache()


@pytest.fixture
def source_key(db: None) -> tuple[Source, str]:
    return sources.create_source(name="web")


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.fixture
def post(source_key: tuple[Source, str]) -> Post:
    """POST a JSON document (or raw bytes) to /v1/<endpoint> with the source's write key."""
    client = Client()

    def send(
        endpoint: str,
        document: Any,
        *,
        key: str | None = None,
        content_type: str = "application/json",
        **headers: str,
    ) -> Any:
        body = document if isinstance(document, bytes) else orjson.dumps(document)
        auth = basic(source_key[1] if key is None else key) if key != "" else None
        extra = {"HTTP_AUTHORIZATION": auth} if auth else {}
        return client.post(
            f"/v1/{endpoint}", data=body, content_type=content_type, **extra, **headers
        )

    return send


def track(message_id: str = "m-1", **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Report Exported",
        "userId": "u-1",
        "messageId": message_id,
        "timestamp": "2026-11-30T01:00:00.000Z",
        "properties": {"feature": "reports", "value": 3},
        **fields,
    }


# --- every endpoint ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "message", "kind", "event_type"),
    [
        ("track", {"event": "Signed In", "userId": "u-1"}, "track", "Signed In"),
        (
            "identify",
            {"userId": "u-1", "traits": {"email": "a@example.com"}},
            "identify",
            "identify",
        ),
        ("group", {"userId": "u-1", "groupId": "acme", "traits": {}}, "group", "group"),
        ("page", {"anonymousId": "anon-1", "name": "Pricing"}, "page", "page"),
        ("screen", {"userId": "u-1", "name": "Home"}, "screen", "screen"),
        ("alias", {"userId": "u-1", "previousId": "anon-1"}, "alias", "alias"),
    ],
)
def test_each_single_call_endpoint_stores_one_inbox_row(
    post: Post, endpoint: str, message: dict[str, Any], kind: str, event_type: str
) -> None:
    response = post(endpoint, {**message, "messageId": f"{endpoint}-1"})

    assert response.status_code == 200, response.content
    assert response.json() == {"success": True}
    row = InboxEvent.objects.get()
    assert (row.kind, row.event_type, row.message_id) == (kind, event_type, f"{endpoint}-1")


@pytest.mark.parametrize("endpoint", ["batch", "import"])
def test_batch_and_its_import_alias_store_every_message(post: Post, endpoint: str) -> None:
    batch = [track("m-1"), track("m-2", userId=None, anonymousId="anon-9"), track("m-3")]

    response = post(endpoint, {"batch": batch, "sentAt": "2026-11-30T01:00:00Z"})

    assert response.status_code == 200
    assert sorted(InboxEvent.objects.values_list("message_id", flat=True)) == ["m-1", "m-2", "m-3"]
    assert InboxEvent.objects.get(message_id="m-2").anonymous_id == "anon-9"


def test_analytics_js_one_letter_paths_with_the_key_in_the_body(
    post: Post, source_key: tuple[Source, str]
) -> None:
    key = source_key[1]
    page = {"type": "page", "anonymousId": "a-1", "name": "Home", "messageId": "p", "writeKey": key}
    batched = {"batch": [track("b-1"), track("b-2")], "writeKey": key}

    assert post("p", page, key="", content_type="text/plain").status_code == 200
    assert post("t", {**track("t"), "writeKey": key}, key="").status_code == 200
    assert post("b", batched, key="").status_code == 200

    kinds = dict(InboxEvent.objects.values_list("message_id", "kind"))
    assert kinds == {"p": "page", "t": "track", "b-1": "track", "b-2": "track"}
    assert not InboxEvent.objects.filter(payload__contains=key).exists()  # the key is not kept


def test_fields_of_the_inbox_row_follow_the_spec(post: Post) -> None:
    batch = [
        track("t", context={"groupId": "acme"}, properties={"feature": "export", "revenue": 12.5}),
        {"type": "page", "userId": "u-2", "name": "Pricing", "messageId": "p",
         "context": {"group_id": "beta"}, "properties": {"value": "not a number"}},
        track("q", properties={"groupId": "gamma", "feature": 7, "value": True}),
        {"type": "group", "userId": "u-3", "groupId": "delta", "messageId": "g",
         "context": {"groupId": "ignored"}},
        {"type": "identify", "userId": 42, "messageId": "i", "traits": {"email": "x@example.com"}},
    ]  # fmt: skip

    assert post("batch", {"batch": batch}).status_code == 200

    rows = {row.message_id: row for row in InboxEvent.objects.all()}
    assert (rows["t"].account_key, rows["t"].feature, rows["t"].event_value) == (
        "acme",
        "export",
        12.5,
    )
    assert (rows["p"].event_type, rows["p"].account_key, rows["p"].event_value) == (
        "page",
        "beta",
        None,
    )
    assert orjson.loads(rows["p"].payload)["properties"]["name"] == "Pricing"
    assert (rows["q"].account_key, rows["q"].feature, rows["q"].event_value) == ("gamma", "", None)
    assert rows["g"].account_key == "delta"  # a group call's own groupId wins
    assert rows["i"].user_id == "42"  # numeric ids are accepted as text
    assert orjson.loads(rows["i"].payload)["traits"] == {"email": "x@example.com"}


def test_the_batch_context_applies_to_messages_that_lack_their_own(post: Post) -> None:
    batch = [track("a"), track("b", context={"groupId": "own"})]

    post("batch", {"batch": batch, "context": {"groupId": "shared", "library": {"name": "x"}}})

    rows = {row.message_id: row for row in InboxEvent.objects.all()}
    assert (rows["a"].account_key, rows["b"].account_key) == ("shared", "own")
    assert orjson.loads(rows["b"].payload)["context"] == {
        "groupId": "own",
        "library": {"name": "x"},
    }


def test_a_message_without_message_id_gets_one(post: Post) -> None:
    message = track()
    del message["messageId"]

    assert post("track", message).status_code == 200

    row = InboxEvent.objects.get()
    assert len(row.message_id) == 36
    assert orjson.loads(row.payload)["messageId"] == row.message_id


# --- clock skew --------------------------------------------------------------------------------


def _received(monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
    monkeypatch.setattr(ingest.timezone, "now", lambda: at)


def test_event_time_corrects_the_client_clock_with_sent_at(
    post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The device clock runs 1 h 30 min fast: it stamped the event at 12:00:00 and sent it at
    # 12:00:10 by its clock; the server received it at 10:30:12 (2 s in flight).
    # timestamp = receivedAt − (sentAt − timestamp) = 10:30:12 − 10 s = 10:30:02.
    _received(monkeypatch, datetime(2026, 11, 30, 10, 30, 12, tzinfo=UTC))
    batch = [
        track("skewed", timestamp="2026-11-30T12:00:00Z"),
        track("own-sent-at", timestamp="2026-11-30T21:00:00+09:00", sentAt="2026-11-30T12:01:00Z"),
        track("original", timestamp=None, originalTimestamp="2026-11-30T11:59:00Z"),
    ]

    post("batch", {"batch": batch, "sentAt": "2026-11-30T12:00:10Z"})

    times = {row.message_id: row.event_time for row in InboxEvent.objects.all()}
    assert times["skewed"] == datetime(2026, 11, 30, 10, 30, 2, tzinfo=UTC)
    # 21:00+09:00 = 12:00Z, sent 12:01Z by its own sentAt → 60 s before receipt = 10:29:12.
    assert times["own-sent-at"] == datetime(2026, 11, 30, 10, 29, 12, tzinfo=UTC)
    # originalTimestamp stands in: 11:59:00 is 70 s before the batch's sentAt → 10:29:02.
    assert times["original"] == datetime(2026, 11, 30, 10, 29, 2, tzinfo=UTC)
    assert {row.received_at for row in InboxEvent.objects.all()} == {
        datetime(2026, 11, 30, 10, 30, 12, tzinfo=UTC)
    }


def test_without_sent_at_the_timestamp_is_kept_and_without_it_receipt_time_is_used(
    post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    _received(monkeypatch, datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC))
    no_time = track("none")
    del no_time["timestamp"]

    post("batch", {"batch": [track("kept", timestamp="2026-11-29T08:15:00"), no_time]})

    times = {row.message_id: row.event_time for row in InboxEvent.objects.all()}
    assert times["kept"] == datetime(2026, 11, 29, 8, 15, tzinfo=UTC)  # no offset: UTC
    assert times["none"] == datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


# --- auth --------------------------------------------------------------------------------------


def test_requests_without_a_valid_write_key_get_401_json(
    post: Post, source_key: tuple[Source, str]
) -> None:
    missing = post("track", track(), key="")
    unknown = post("track", track(), key="kzw_not-a-key")

    for response in (missing, unknown):
        assert response.status_code == 401
        assert response["Content-Type"] == "application/json"
        assert response.json()["success"] is False
    assert InboxEvent.objects.count() == 0
    assert "unknown write key" in IngestRejection.objects.get(detail__startswith="unknown").detail


def test_a_revoked_key_is_refused_and_the_refusal_names_the_source(
    post: Post, source_key: tuple[Source, str]
) -> None:
    assert post("track", track("before")).status_code == 200
    sources.revoke_source(name="web")

    response = post("track", track("after"))

    assert response.status_code == 401
    assert response.json()["message"] == "this write key has been revoked"
    assert list(InboxEvent.objects.values_list("message_id", flat=True)) == ["before"]
    assert recent_rejections(source_key[0])[0].reason == "auth"


def test_revocation_in_another_process_takes_effect_within_the_cache_time(
    post: Post, source_key: tuple[Source, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(sources.time, "monotonic", lambda: clock[0])
    assert post("track", track("a")).status_code == 200
    # Another process revokes: this process's cache is not told.
    Source.objects.filter(name="web").update(revoked_at=datetime(2026, 11, 30, tzinfo=UTC))

    clock[0] += sources.KEY_CACHE_SECONDS + 0.1

    assert post("track", track("b")).status_code == 401


def test_the_write_key_may_come_in_the_body_as_analytics_js_sends_it(
    post: Post, source_key: tuple[Source, str]
) -> None:
    response = post("batch", {"batch": [track()], "writeKey": source_key[1]}, key="")

    assert response.status_code == 200
    assert InboxEvent.objects.count() == 1


def test_a_write_key_opens_nothing_but_ingestion(
    source_key: tuple[Source, str], admin_client: Client
) -> None:
    _source, key = source_key
    client = Client()

    for headers in ({"HTTP_AUTHORIZATION": basic(key)}, {"HTTP_AUTHORIZATION": f"Bearer {key}"}):
        assert client.get("/api/v1/customers", **headers).status_code == 401
    assert client.get("/customers/", HTTP_AUTHORIZATION=basic(key)).status_code == 302  # login
    assert admin_client.get("/api/v1/customers").status_code == 200  # the API itself works


# --- limits and malformed input ----------------------------------------------------------------


def test_a_message_over_32kb_refuses_the_whole_batch_naming_its_index(post: Post) -> None:
    big = track("big", properties={"blob": "x" * (32 * 1024)})

    response = post("batch", {"batch": [track("ok"), big]})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "message_too_large"
    assert "message 1 exceeds 32KB" in body["message"]
    assert body["errors"][0]["index"] == 1
    assert InboxEvent.objects.count() == 0
    rejection = IngestRejection.objects.get()
    assert (rejection.reason, rejection.events) == ("message_too_large", 2)


def test_a_request_over_500kb_gets_413(post: Post) -> None:
    messages = [track(f"m-{n}", properties={"blob": "x" * 20_000}) for n in range(30)]

    response = post("batch", {"batch": messages})

    assert response.status_code == 413
    assert "exceeds 500KB" in response.json()["message"]
    assert InboxEvent.objects.count() == 0


def test_gzip_bodies_are_accepted_and_a_gzip_bomb_gets_413(post: Post) -> None:
    body = gzip.compress(orjson.dumps({"batch": [track("zipped")]}))
    bomb = gzip.compress(orjson.dumps({"batch": [], "pad": " " * 600_000}))

    assert post("batch", body, HTTP_CONTENT_ENCODING="gzip").status_code == 200
    assert post("batch", bomb, HTTP_CONTENT_ENCODING="gzip").status_code == 413
    assert post("batch", b"not gzip", HTTP_CONTENT_ENCODING="gzip").status_code == 400
    assert list(InboxEvent.objects.values_list("message_id", flat=True)) == ["zipped"]


def test_malformed_json_gets_400_naming_the_problem(post: Post) -> None:
    broken = post("batch", b'{"batch": [')
    not_object = post("batch", b"[1, 2]")

    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_json"
    assert "malformed JSON" in broken.json()["message"]
    assert not_object.json()["message"] == "the body must be a JSON object"
    assert event_stats()["rejected_by_reason"] == {"invalid_json": 2}


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ({"event": "x", "messageId": "a"}, "message 1: needs a userId or an anonymousId"),
        ({"event": "x", "userId": "u", "type": None}, "message 1: type is missing"),
        ({"userId": "u", "type": "purchase"}, "message 1: unknown type 'purchase'"),
        ({"userId": "u", "type": "track"}, "message 1: a track call needs an event name"),
        ({"userId": "u", "type": "group"}, "message 1: a group call needs a groupId"),
        ({"userId": "u", "type": "track", "event": "x", "properties": [1]}, "properties must be"),
        (
            {"userId": "u", "type": "track", "event": "x", "timestamp": "yesterday"},
            "is not ISO 8601",
        ),
        ({"userId": "u" * 201, "type": "track", "event": "x"}, "userId is longer than 200"),
        ({"userId": {"id": 1}, "type": "track", "event": "x"}, "userId must be a string"),
        ({"userId": "u\x00", "type": "track", "event": "x"}, "contains a NUL character"),
    ],
)
def test_an_invalid_message_refuses_the_batch_naming_the_message(
    post: Post, message: dict[str, Any], problem: str
) -> None:
    if "type" not in message:
        message = {"type": "track", **message}
    if message.get("type") is None:
        del message["type"]

    response = post("batch", {"batch": [track("fine"), message]})

    assert response.status_code == 400
    assert problem in response.json()["message"]
    assert response.json()["errors"][0]["index"] == 1
    assert InboxEvent.objects.count() == 0
    assert IngestRejection.objects.get().events == 2


def test_batch_must_be_a_list_and_its_envelope_well_formed(post: Post) -> None:
    response = post("batch", {"batch": {"type": "track"}})
    bad_sent_at = post("batch", {"batch": [track()], "sentAt": "now"})

    assert response.status_code == 400
    assert response.json()["message"] == "'batch' must be a list of messages"
    assert bad_sent_at.status_code == 400
    assert bad_sent_at.json()["errors"] == [
        {"index": None, "message": "the batch's sentAt is not an ISO 8601 date-time"}
    ]


# --- duplicates, method, CORS, busy database ---------------------------------------------------


def test_the_same_message_id_twice_is_stored_once_and_counted_as_duplicate(post: Post) -> None:
    assert post("batch", {"batch": [track("m-1"), track("m-2")]}).status_code == 200
    assert post("batch", {"batch": [track("m-2"), track("m-3")]}).status_code == 200  # a retry

    assert sorted(InboxEvent.objects.values_list("message_id", flat=True)) == ["m-1", "m-2", "m-3"]
    totals = event_stats()
    assert (totals["received"], totals["inbox"], totals["duplicates"]) == (4, 3, 1)
    assert totals["rejected"] == 0


def test_other_methods_get_405_and_preflight_gets_cors_headers(post: Post) -> None:
    client = Client()

    assert client.get("/v1/batch").status_code == 405
    preflight = client.options("/v1/batch")
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    assert post("track", track())["Access-Control-Allow-Origin"] == "*"


def test_ingestion_sets_no_cookie(post: Post) -> None:
    response = post("track", track())

    assert response.status_code == 200
    assert not response.cookies


def test_a_busy_database_answers_503_so_that_clients_retry(
    post: Post, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(*args: object) -> None:
        raise OperationalError("database is locked")

    monkeypatch.setattr(ingest, "_insert_sql", locked)

    response = post("track", track())

    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
