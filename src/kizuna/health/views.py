"""Health pages (thin: parse, check access, call one selector or service, render)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "health/overview.html", {"area": "health"})
