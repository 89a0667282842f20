"""Posting to webhook endpoints: signed JSON for other systems, ``{"text"}`` for Slack/Teams.

Every request carries ``X-Kizuna-Timestamp`` (Unix seconds) and, when the endpoint has a
secret, ``X-Kizuna-Signature: sha256=<hex>``, the HMAC-SHA256 with the secret of
``"<timestamp>.<body>"``. A receiver recomputes it over the raw body it got, compares in
constant time and rejects old timestamps (replays). Every attempt is recorded as a
``WebhookDelivery`` (status code or error), and a failed one raises ``DeliveryError`` so the
runner retries it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.playbooks.models import ActionExecution, WebhookDelivery, WebhookEndpoint

__all__ = ["TIMEOUT_SECONDS", "DeliveryError", "post_webhook", "sign", "verify"]

TIMEOUT_SECONDS = 10
SIGNATURE_HEADER = "X-Kizuna-Signature"
TIMESTAMP_HEADER = "X-Kizuna-Timestamp"
_KEPT_BODY = 10_000


class DeliveryError(Exception):
    """A post that did not get a 2xx answer (``delivery`` is the recorded attempt)."""

    def __init__(self, message: str, delivery: WebhookDelivery) -> None:
        self.delivery = delivery
        super().__init__(message)


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_seconds: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does: the signature header matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((now if now is not None else time.time()) - sent) > tolerance_seconds:
        return False
    expected = "sha256=" + sign(secret, sent, body)
    return hmac.compare_digest(expected, signature)


def post_webhook(
    endpoint: WebhookEndpoint,
    payload: dict[str, Any],
    *,
    execution: ActionExecution | None = None,
) -> WebhookDelivery:
    """POST ``payload`` as JSON to the endpoint, record the attempt and return it.

    Raises ``DeliveryError`` (after recording) on a non-2xx answer or a network error.
    """
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Kizuna-Webhook/1",
        TIMESTAMP_HEADER: str(timestamp),
    }
    if endpoint.secret:
        headers[SIGNATURE_HEADER] = "sha256=" + sign(endpoint.secret, timestamp, body)
    status: int | None = None
    error = ""
    if urlsplit(endpoint.url).scheme not in ("http", "https"):
        error = _("Only http:// and https:// addresses can be posted to.")
    else:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            endpoint.url, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            error = str(reason) or exc.__class__.__name__
    if status is not None and not 200 <= status < 300:
        error = _("The endpoint answered {status}.").format(status=status)
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        execution=execution if execution is not None and execution.pk else None,
        status_code=status,
        error=error[:500],
        body=body.decode()[:_KEPT_BODY],
        sent_at=timezone.now(),
    )
    if error:
        raise DeliveryError(f"{endpoint.name}: {error}", delivery)
    return delivery
