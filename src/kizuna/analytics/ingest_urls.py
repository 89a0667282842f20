"""The Segment-compatible HTTP Tracking API (``/v1/track`` …), public with a write key.

``/v1/import`` is the same as ``/v1/batch`` (some SDKs post batches there); analytics.js posts
to the one-letter paths ``/v1/t``, ``/v1/i``, ``/v1/g``, ``/v1/p``, ``/v1/s``, ``/v1/a`` and, when
batching, ``/v1/b``.
"""

from django.urls import URLPattern, path

from kizuna.analytics import http
from kizuna.analytics.ingest import ENDPOINTS

urlpatterns: list[URLPattern] = [
    path(endpoint, http.receive, {"endpoint": endpoint}, name=f"ingest-{endpoint}")
    for endpoint in ENDPOINTS
]
