"""Customer pages."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def customer_list(request: HttpRequest) -> HttpResponse:
    return render(request, "customers/list.html", {"area": "customers"})
