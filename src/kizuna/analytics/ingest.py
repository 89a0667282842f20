"""The Segment HTTP Tracking API, minus HTTP: parse, validate and store messages in the inbox.

``accept()`` takes a request's raw body and headers and either stores every message of it in
the durable inbox (one ``INSERT … ON CONFLICT DO NOTHING`` in one transaction, committed before
it returns) or raises ``IngestError`` naming the problem; a request is never half-stored.

Decisions (Segment's spec where it has one):

- A request with any invalid message is refused whole (400) with one error per message index
  (0 for a single call). Segment's clients drop a batch on a 400, so the refusal is recorded as
  an ``IngestRejection`` (reason, detail, number of messages) for the operator.
- 32 KB per message (as compact JSON) → 400 "exceeds 32KB"; a request over 500 KB (before or
  after gzip) → 413.
- ``event_time`` corrects the client's clock: ``receivedAt − (sentAt − timestamp)`` when the
  message (or the batch) has ``sentAt``; else ``timestamp``; else ``receivedAt``.
  ``originalTimestamp`` stands in for a missing ``timestamp``.
- ``messageId`` de-duplicates per source. A message without one gets a random id, so it cannot
  be recognised when retried.
- Retries of a message still in the inbox are absorbed by the unique constraint and counted as
  duplicates (an ``IngestRejection`` row with reason ``duplicate``); retries of a message already
  in the lake are dropped by the lake flush (``DeliveredMessage``).
"""

import base64
import binascii
import contextlib
import logging
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from kizuna.analytics.models import InboxEvent, IngestRejection
from kizuna.analytics.sources import KeyLookup, lookup_write_key

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_FIELD_LENGTH = 200
MAX_ERRORS_LISTED = 20
MESSAGE_TYPES = ("track", "identify", "group", "page", "screen", "alias")
BATCH_ENDPOINTS = ("batch", "import")
# analytics.js (analytics-next) posts to one-letter paths: /v1/t, /v1/p … and /v1/b when batching.
SHORT_ENDPOINTS = {
    "t": "track", "i": "identify", "g": "group", "p": "page", "s": "screen", "a": "alias",
    "b": "batch",
}  # fmt: skip
ENDPOINTS = (*MESSAGE_TYPES, *BATCH_ENDPOINTS, *SHORT_ENDPOINTS)
# Refused requests without a valid key are recorded at most this often per process and key.
AUTH_REJECTION_INTERVAL_SECONDS = 60.0

InboxRow = tuple[Any, ...]


class Reason:
    """Why a request was refused (``IngestRejection.reason``)."""

    AUTH = "auth"
    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    MESSAGE_TOO_LARGE = "message_too_large"
    REQUEST_TOO_LARGE = "request_too_large"
    BAD_ENCODING = "bad_encoding"
    UNAVAILABLE = "unavailable"
    DUPLICATE = "duplicate"  # not a refusal: retries absorbed by the inbox, counted here


@dataclass(frozen=True)
class MessageError:
    index: int | None  # None: the batch envelope itself
    message: str


@dataclass
class IngestError(Exception):
    """A refused request: HTTP status, a machine-readable code and a sentence naming the problem.

    ``code``/``message`` are the fields Segment's clients read from an error body.
    """

    status: int
    code: str
    message: str
    errors: list[MessageError] = field(default_factory=list)
    events: int = 1

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": False, "code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = [{"index": e.index, "message": e.message} for e in self.errors]
        return body


@dataclass(frozen=True)
class Accepted:
    source_id: int
    received: int
    stored: int

    @property
    def duplicates(self) -> int:
        return self.received - self.stored


def accept(
    *, endpoint: str, body: bytes, content_encoding: str = "", authorization: str = ""
) -> Accepted:
    """Store every message of one request in the inbox, or refuse the whole request.

    Returns after the inbox transaction has committed. Raises ``IngestError`` (401, 400, 413,
    503) otherwise; refusals by an authenticated source are recorded as ``IngestRejection``.
    """
    if endpoint not in ENDPOINTS:
        raise IngestError(404, "not_found", f"unknown endpoint /v1/{endpoint}")
    endpoint = SHORT_ENDPOINTS.get(endpoint, endpoint)
    header_key = basic_auth_key(authorization)
    source: KeyLookup | None = None
    if header_key:
        source = _active_source(header_key)
    try:
        document = parse_body(body, content_encoding)
        if source is None:  # no Authorization header: analytics.js puts the key in the body
            body_key = document.get("writeKey")
            source = _active_source(body_key if isinstance(body_key, str) else "")
        received_at = timezone.now()
        rows = inbox_rows(endpoint, document, source_id=source.source_id, received_at=received_at)
        stored = store(source.source_id, rows)
    except IngestError as error:
        if source is not None and error.status != 401:
            record_rejection(source.source_id, error.code, _detail(error), error.events)
        raise
    return Accepted(source_id=source.source_id, received=len(rows), stored=stored)


def basic_auth_key(authorization: str) -> str:
    """The write key of an ``Authorization: Basic base64(key:)`` header ('' when absent)."""
    scheme, _space, credentials = authorization.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return ""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[0]


def _active_source(raw_key: str) -> KeyLookup:
    if not raw_key:
        _record_auth_failure(None, "no write key (HTTP Basic username or writeKey)")
        raise IngestError(401, "unauthorized", "a write key is required (HTTP Basic username)")
    found = lookup_write_key(raw_key)
    if found is None:
        _record_auth_failure(None, f"unknown write key {raw_key[:8]}…")
        raise IngestError(401, "unauthorized", "unknown write key")
    if not found.active:
        _record_auth_failure(found.source_id, f"revoked write key of source {found.name}")
        raise IngestError(401, "unauthorized", "this write key has been revoked")
    return found


def parse_body(body: bytes, content_encoding: str = "") -> dict[str, Any]:
    """The request's JSON object, gunzipped if needed, within the 500 KB limit."""
    if len(body) > MAX_REQUEST_BYTES:
        raise _too_large(len(body))
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        try:
            inflater = zlib.decompressobj(wbits=31)
            body = inflater.decompress(body, MAX_REQUEST_BYTES + 1)
        except zlib.error as exc:
            raise IngestError(
                400, Reason.BAD_ENCODING, f"the body is not valid gzip: {exc}"
            ) from None
        if len(body) > MAX_REQUEST_BYTES:
            raise _too_large(len(body), after_gzip=True)
    elif encoding not in ("", "identity"):
        raise IngestError(
            400, Reason.BAD_ENCODING, f"unsupported Content-Encoding {content_encoding!r}"
        )
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, Reason.INVALID_JSON, f"malformed JSON: {exc}") from None
    if not isinstance(document, dict):
        raise IngestError(400, Reason.INVALID_JSON, "the body must be a JSON object")
    return document


def _too_large(size: int, *, after_gzip: bool = False) -> IngestError:
    what = "the decompressed request" if after_gzip else "the request"
    return IngestError(
        413,
        Reason.REQUEST_TOO_LARGE,
        f"{what} exceeds 500KB ({size:,} bytes or more); send smaller batches",
    )


def inbox_rows(
    endpoint: str, document: dict[str, Any], *, source_id: int, received_at: datetime
) -> list[InboxRow]:
    """One inbox row per message, in ``INBOX_COLUMNS`` order; IngestError if any is invalid."""
    if endpoint in BATCH_ENDPOINTS:
        messages = document.get("batch")
        if not isinstance(messages, list):
            raise IngestError(
                400, Reason.INVALID_MESSAGE, "'batch' must be a list of messages", events=1
            )
        envelope_sent_at = document.get("sentAt")
        envelope_context = document.get("context")
        envelope_integrations = document.get("integrations")
        implied_type = None
    else:
        messages = [document]
        envelope_sent_at = envelope_context = envelope_integrations = None
        implied_type = endpoint

    errors: list[MessageError] = []
    rows: list[InboxRow] = []
    adapt = _sqlite_datetime if connection.vendor == "sqlite" else _aware_datetime
    received_db = adapt(received_at)
    batch_sent_at = None
    if envelope_sent_at is not None:
        batch_sent_at = _parse_time(envelope_sent_at)
        if batch_sent_at is None:
            errors.append(MessageError(None, "the batch's sentAt is not an ISO 8601 date-time"))
    if envelope_context is not None and not isinstance(envelope_context, dict):
        errors.append(MessageError(None, "the batch's context must be an object"))
        envelope_context = None

    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            errors.append(MessageError(index, f"message {index} is not a JSON object"))
            continue
        try:
            row = _row(
                index,
                message,
                implied_type=implied_type,
                source_id=source_id,
                received_at=received_at,
                received_db=received_db,
                batch_sent_at=batch_sent_at,
                envelope_context=envelope_context,
                envelope_integrations=envelope_integrations,
                adapt=adapt,
            )
        except _InvalidMessageError as invalid:
            errors.append(MessageError(index, str(invalid)))
            continue
        rows.append(row)

    if errors:
        too_large = [e for e in errors if "exceeds 32KB" in e.message]
        first = too_large[0] if too_large else errors[0]
        summary = first.message
        if len(errors) > 1:
            summary += f" (and {len(errors) - 1} more problems)"
        raise IngestError(
            400,
            Reason.MESSAGE_TOO_LARGE if too_large else Reason.INVALID_MESSAGE,
            summary,
            errors=errors[:MAX_ERRORS_LISTED],
            events=len(messages),
        )
    return rows


class _InvalidMessageError(Exception):
    """One message's problem; the text names the message index and the field."""


def _row(
    index: int,
    message: dict[str, Any],
    *,
    implied_type: str | None,
    source_id: int,
    received_at: datetime,
    received_db: Any,
    batch_sent_at: datetime | None,
    envelope_context: dict[str, Any] | None,
    envelope_integrations: Any,
    adapt: Any,
) -> InboxRow:
    where = _Where(index)
    if implied_type is None:
        named = message.get("type")
        if named is None:
            raise _InvalidMessageError(f"{where}: type is missing")
        if named not in MESSAGE_TYPES:
            raise _InvalidMessageError(
                f"{where}: unknown type {str(named)[:40]!r} (expected {', '.join(MESSAGE_TYPES)})"
            )
        kind: str = named
    else:
        kind = implied_type
        if message.get("type") not in (None, kind):
            message["type"] = kind  # the endpoint names the call

    user_id = _identifier(message.get("userId"), where, "userId")
    anonymous_id = _identifier(message.get("anonymousId"), where, "anonymousId")
    if kind == "alias":
        if not user_id or not _identifier(message.get("previousId"), where, "previousId"):
            raise _InvalidMessageError(f"{where}: alias needs userId and previousId")
    elif not user_id and not anonymous_id:
        raise _InvalidMessageError(f"{where}: needs a userId or an anonymousId")

    context = message.get("context")
    if context is not None and not isinstance(context, dict):
        raise _InvalidMessageError(f"{where}: context must be an object")
    payload_key = "traits" if kind in ("identify", "group") else "properties"
    details = message.get(payload_key)
    if details is None:
        details = {}
    elif not isinstance(details, dict):
        raise _InvalidMessageError(f"{where}: {payload_key} must be an object")

    if kind == "track":
        event = message.get("event")
        if not isinstance(event, str) or not event:
            raise _InvalidMessageError(f"{where}: a track call needs an event name (event)")
        event_type = _checked(event, where, "event")
    elif kind in ("page", "screen"):
        event_type = kind
        name = message.get("name")
        if isinstance(name, str) and name and "name" not in details:
            details["name"] = name
            message[payload_key] = details
    else:
        event_type = kind

    if kind == "group":
        group_id = _identifier(message.get("groupId"), where, "groupId")
        if not group_id:
            raise _InvalidMessageError(f"{where}: a group call needs a groupId")
        account_key = group_id
    else:
        account = None
        if context:
            account = context.get("groupId")
            if account is None:
                account = context.get("group_id")
        if account is None and payload_key == "properties":
            account = details.get("groupId")
        account_key = _identifier(account, where, "groupId")
        if not account_key and envelope_context:
            account_key = _identifier(envelope_context.get("groupId"), where, "context.groupId")

    message_id = message.get("messageId")
    if message_id is None or message_id == "":
        message_id = str(uuid.uuid4())  # cannot be de-duplicated when retried
        message["messageId"] = message_id
    else:
        message_id = _identifier(message_id, where, "messageId")

    timestamp = message.get("timestamp")
    if timestamp is None:
        timestamp = message.get("originalTimestamp")
    event_time = received_at
    if timestamp is not None:
        client_time = _parse_time(timestamp)
        if client_time is None:
            raise _InvalidMessageError(
                f"{where}: timestamp {str(timestamp)[:40]!r} is not ISO 8601"
            )
        sent_raw = message.get("sentAt")
        sent_at = batch_sent_at if sent_raw is None else _parse_time(sent_raw)
        if sent_raw is not None and sent_at is None:
            raise _InvalidMessageError(f"{where}: sentAt {str(sent_raw)[:40]!r} is not ISO 8601")
        try:
            event_time = client_time if sent_at is None else received_at - (sent_at - client_time)
        except OverflowError:
            raise _InvalidMessageError(f"{where}: timestamp and sentAt are too far apart") from None

    value = details.get("value")
    if value is None:
        value = details.get("revenue")
    event_value = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )
    feature = details.get("feature")
    feature = _checked(feature, where, "properties.feature") if isinstance(feature, str) else ""

    message.pop("writeKey", None)  # analytics.js repeats the key in every message: not kept
    payload = orjson.dumps(message)
    if len(payload) > MAX_MESSAGE_BYTES:
        raise _InvalidMessageError(f"{where} exceeds 32KB ({len(payload):,} bytes)")
    if envelope_context or envelope_integrations:
        # The batch's context and integrations apply to each message; the message's own win.
        if envelope_context:
            message["context"] = {**envelope_context, **(context or {})}
        if isinstance(envelope_integrations, dict) and envelope_integrations:
            own = message.get("integrations")
            message["integrations"] = {
                **envelope_integrations,
                **(own if isinstance(own, dict) else {}),
            }
        payload = orjson.dumps(message)

    return (
        source_id,
        message_id,
        kind,
        event_type,
        adapt(event_time),
        received_db,
        user_id,
        anonymous_id,
        account_key,
        event_value,
        feature,
        payload.decode(),
    )


class _Where:
    """``message N``, formatted only when a message turns out to be wrong."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __str__(self) -> str:
        return f"message {self.index}"


def _identifier(value: Any, where: _Where, name: str) -> str:
    """An id field as text ('' when absent); Segment allows strings and numbers."""
    if value is None:
        return ""
    if type(value) is str:
        if len(value) <= MAX_FIELD_LENGTH and "\x00" not in value:
            return value  # the common case, without another call
        return _checked(value, where, name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _InvalidMessageError(f"{where}: {name} must be a string or a number")


def _checked(value: str, where: _Where, name: str) -> str:
    if len(value) > MAX_FIELD_LENGTH:
        raise _InvalidMessageError(f"{where}: {name} is longer than {MAX_FIELD_LENGTH} characters")
    if "\x00" in value:
        raise _InvalidMessageError(f"{where}: {name} contains a NUL character")
    return value


def _sqlite_datetime(value: datetime) -> str:
    """What Django stores in SQLite for an aware datetime (naive UTC text), without its overhead."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ")


def _aware_datetime(value: datetime) -> datetime:
    return value


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 date-time as an aware datetime (UTC when it names no offset)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


INBOX_COLUMNS = (
    "source_id",
    "message_id",
    "kind",
    "event_type",
    "event_time",
    "received_at",
    "user_id",
    "anonymous_id",
    "account_key",
    "event_value",
    "feature",
    "payload",
)


_sqlite_writer = threading.Lock()

# PostgreSQL takes a request's rows as one array per column (one statement, one round trip).
POSTGRES_ARRAY_TYPES = ("bigint", "text", "text", "text", "timestamptz", "timestamptz",
                        "text", "text", "text", "float8", "text", "text")  # fmt: skip


def _insert_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in INBOX_COLUMNS)
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{kind}[]" for kind in POSTGRES_ARRAY_TYPES)
        values = f"SELECT * FROM unnest({arrays})"  # noqa: S608 - our names and types
    else:
        values = f"VALUES ({', '.join(['%s'] * len(INBOX_COLUMNS))})"
    return (
        f"INSERT INTO {quote(InboxEvent._meta.db_table)} ({columns}) {values} "
        f"ON CONFLICT ({quote('source_id')}, {quote('message_id')}) DO NOTHING"
    )


def store(source_id: int, rows: Sequence[InboxRow]) -> int:
    """Insert the rows in one transaction; return how many were new (the rest are retries).

    Retries absorbed by the unique ``(source, message_id)`` are counted, in the same
    transaction, as one ``IngestRejection`` with reason ``duplicate``.
    """
    if not rows:
        return 0
    # SQLite has one writer at a time and its busy handler polls with growing sleeps; the
    # server's threads take turns on a lock instead, so only processes contend for the file.
    turn = _sqlite_writer if connection.vendor == "sqlite" else contextlib.nullcontext()
    try:
        with turn, transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(_insert_sql(), [list(column) for column in zip(*rows, strict=True)])
            else:
                cursor.executemany(_insert_sql(), rows)
            inserted: int = cursor.rowcount
            if inserted is None or inserted < 0:  # a driver that cannot count: assume all new
                inserted = len(rows)
            if inserted < len(rows):
                duplicates = len(rows) - inserted
                IngestRejection.objects.create(
                    source_id=source_id,
                    reason=Reason.DUPLICATE,
                    detail=f"{duplicates} messages already in the inbox (retries)",
                    events=duplicates,
                )
    except DatabaseError as exc:
        # Busy (SQLite's lock timeout) or down: a 5xx makes Segment's clients retry later.
        logger.warning("inbox insert failed for source %s: %s", source_id, exc)
        raise IngestError(
            503, Reason.UNAVAILABLE, "the inbox is busy, retry later", events=len(rows)
        ) from exc
    return inserted


def record_rejection(source_id: int | None, reason: str, detail: str, events: int) -> None:
    """Remember a refused request for ``kizuna events stats`` and Settings → Sources."""
    try:
        IngestRejection.objects.create(
            source_id=source_id, reason=reason, detail=detail[:500], events=max(events, 0)
        )
    except DatabaseError:  # the refusal is answered either way
        logger.warning("could not record an ingestion rejection (%s: %s)", reason, detail)


_auth_failures: dict[tuple[int | None, str], float] = {}
_auth_lock = threading.Lock()


def _record_auth_failure(source_id: int | None, detail: str) -> None:
    """Record refused keys, throttled so that a misconfigured client cannot flood the table."""
    now = time.monotonic()
    key = (source_id, detail)
    with _auth_lock:
        if _auth_failures.get(key, 0.0) > now:
            return
        if len(_auth_failures) > 1000:
            _auth_failures.clear()
        _auth_failures[key] = now + AUTH_REJECTION_INTERVAL_SECONDS
    record_rejection(source_id, Reason.AUTH, detail, 1)


def _detail(error: IngestError) -> str:
    if not error.errors:
        return error.message
    return "; ".join(e.message for e in error.errors[:5])
