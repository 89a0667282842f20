"""Report pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "reports/dashboard.html", {"area": "reports"})
