"""The Segment-compatible HTTP Tracking API (``/v1/track`` …), public with a write key."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
