"""Login throttling: repeated failures for a username or address are refused for a while."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone

from kizuna.core.models import LoginFailure


def client_address(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR", ""))


def login_is_throttled(*, username: str, ip_address: str) -> bool:
    """True when the username or the address failed too often within the window."""
    since = timezone.now() - timedelta(seconds=settings.KIZUNA_LOGIN_FAILURE_WINDOW_SECONDS)
    recent = LoginFailure.objects.filter(failed_at__gte=since)
    limit = settings.KIZUNA_LOGIN_MAX_FAILURES
    if recent.filter(username=username.lower()).count() >= limit:
        return True
    # An address gets more room than a username: an office shares one address.
    return bool(ip_address) and recent.filter(ip_address=ip_address).count() >= limit * 4


class ThrottledModelBackend(ModelBackend):
    """Django's model backend that refuses to check passwords while a login is throttled.

    Raising PermissionDenied stops Django from trying other backends and makes the
    login form show its generic error, so a throttled login does not reveal whether
    the password was right.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if username is None or password is None:
            return None
        ip_address = client_address(request)
        if login_is_throttled(username=username, ip_address=ip_address):
            raise PermissionDenied("login throttled")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            LoginFailure.objects.create(username=username.lower(), ip_address=ip_address)
        else:
            LoginFailure.objects.filter(username=username.lower()).delete()
        return user
