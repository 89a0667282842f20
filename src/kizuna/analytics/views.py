"""Thin views over analytics services and selectors."""

from django.http import HttpRequest, HttpResponse


def sources(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def metrics(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError


def customer_usage(request: HttpRequest, pk: int) -> HttpResponse:
    raise NotImplementedError
