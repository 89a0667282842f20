"""Permission checks written once and used by views, the API and the CLI."""

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError
from django.http import HttpRequest

from kizuna.core.models import User
from kizuna.core.roles import Capability

P = ParamSpec("P")
R = TypeVar("R")


def user_can(user: User | AnonymousUser | Any, capability: Capability) -> bool:
    return isinstance(user, User) and user.can(capability)


def require(user: User | AnonymousUser | Any, capability: Capability) -> None:
    """Raise PermissionDenied (403 in views and the API) unless the user has the capability."""
    if not user_can(user, capability):
        raise PermissionDenied(f"requires the '{capability}' permission")


def requires(capability: Capability) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """View decorator: the request's user must have the capability."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            request = args[0]
            assert isinstance(request, HttpRequest)
            require(request.user, capability)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def cli_user(username: str | None, capability: Capability) -> User | None:
    """The user a management command acts as, checked for the capability.

    Without ``--user`` a command runs as the operator of the installation (shell access
    already means database access) and records no actor.
    """
    if not username:
        return None
    user_model = get_user_model()
    try:
        user = user_model.objects.get(username=username)
    except user_model.DoesNotExist:
        raise CommandError(f"--user: no user named '{username}'") from None
    assert isinstance(user, User)
    if not user.can(capability):
        raise CommandError(f"--user: '{username}' ({user.role}) may not {capability}")
    return user
