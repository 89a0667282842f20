"""The Segment-compatible ingestion endpoints: plain Django views, public with a write key.

Kept off django-ninja on purpose: this is the hot path (orjson in, one INSERT, orjson out) and
its errors follow Segment's shape (``{"success": false, "code": …, "message": …}``), not the
REST API's. No session, no CSRF, no login: the write key is the only credential, and it opens
nothing but these endpoints. CORS is open so that analytics.js can post from any web page.
"""

import orjson
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from kizuna.analytics import ingest

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}
SUCCESS = orjson.dumps({"success": True})


def _json(body: bytes, status: int = 200) -> HttpResponse:
    response = HttpResponse(body, status=status, content_type="application/json")
    response["Access-Control-Allow-Origin"] = "*"
    return response


@csrf_exempt
@login_not_required
def receive(request: HttpRequest, endpoint: str) -> HttpResponse:
    """``POST /v1/<endpoint>``: 200 ``{"success": true}`` once every message is committed."""
    if request.method == "OPTIONS":
        response = HttpResponse(status=204)
        for name, value in CORS_HEADERS.items():
            response[name] = value
        return response
    if request.method != "POST":
        error = ingest.IngestError(405, "method_not_allowed", "use POST")
        response = _json(orjson.dumps(error.as_json()), 405)
        response["Allow"] = "POST, OPTIONS"
        return response
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    try:
        if length > ingest.MAX_REQUEST_BYTES:
            raise ingest.IngestError(
                413,
                ingest.Reason.REQUEST_TOO_LARGE,
                f"the request exceeds 500KB ({length:,} bytes); send smaller batches",
            )
        ingest.accept(
            endpoint=endpoint,
            body=request.body,
            content_encoding=request.META.get("HTTP_CONTENT_ENCODING", ""),
            authorization=request.META.get("HTTP_AUTHORIZATION", ""),
        )
    except ingest.IngestError as error:
        return _json(orjson.dumps(error.as_json()), error.status)
    return _json(SUCCESS)
