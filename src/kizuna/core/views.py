"""Home and settings pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html", {"area": "home"})


def settings_home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/settings.html", {"area": "settings"})
