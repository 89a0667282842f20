"""Routes of this area (minimal pages until the area lands on this branch)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def _empty(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("")


urlpatterns = [
    path("segments/", _empty, name="segments"),
]
