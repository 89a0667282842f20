"""Placeholder routes until the area lands."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
