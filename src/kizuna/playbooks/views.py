"""Task and playbook pages (thin: parse, check access, call one selector or service, render)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def my_day(request: HttpRequest) -> HttpResponse:
    return render(request, "playbooks/my_day.html", {"area": "tasks"})
