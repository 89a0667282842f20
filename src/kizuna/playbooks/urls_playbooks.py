"""Playbook pages: list, editor, simulation, runs, effect; webhook endpoints."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
