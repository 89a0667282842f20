"""Import pages: upload, preview and column mapping, confirm, report."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def upload(request: HttpRequest) -> HttpResponse:
    return render(request, "customers/import_upload.html", {"area": "customers"})
