"""REST API authentication: per-user bearer tokens (``Authorization: Bearer kzn_…``)."""

from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from kizuna.core.models import ApiToken


class ApiTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        api_token = ApiToken.find_active(token)
        if api_token is None:
            return None
        now = timezone.now()
        # Touch at most once a minute so that a busy script does not write on every call.
        if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        request.user = api_token.user
        return api_token.user
