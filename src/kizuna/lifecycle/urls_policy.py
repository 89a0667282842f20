"""Routes of this area (minimal pages until the area lands on this branch)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def _empty(request: HttpRequest, pk: int = 0) -> HttpResponse:
    return HttpResponse("")


urlpatterns = [
    path("touch-policy/", _empty, name="touch-policy"),
    path("stage-settings/", _empty, name="stage-settings"),
    path("customer-lifecycle/<int:pk>/", _empty, name="customer-lifecycle"),
]
