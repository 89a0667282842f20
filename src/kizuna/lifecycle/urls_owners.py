"""Routes of this area (minimal pages until the area lands on this branch)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def _empty(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("")


urlpatterns = [
    path("portfolio/", _empty, name="portfolio"),
    path("teams/", _empty, name="teams"),
    path("customer-owners/<int:pk>/", _empty, name="customer-owners"),
]
