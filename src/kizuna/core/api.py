"""REST endpoints of this context (mounted under /api/v1 by kizuna.config.api).

Who am I, and my own API tokens: list them, create one (its secret is shown once), revoke one.
"""

from datetime import datetime
from typing import Annotated, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema
from ninja.responses import Status
from pydantic import AfterValidator, ConfigDict, StringConstraints

from kizuna.core import staff
from kizuna.core.models import ApiToken, User
from kizuna.core.roles import Capability

router = Router(tags=["me"])


class ErrorOut(Schema):
    detail: Any


class MeOut(Schema):
    id: int
    username: str
    name: str
    email: str
    role: str
    is_superuser: bool
    capabilities: list[str] = Field(description="What the role allows, e.g. edit_customers.")
    language: str = Field(description="The user's language, or the installation's default.")


class TokenOut(Schema):
    id: int
    name: str
    hint: str = Field(description="The first characters of the token, to recognise it.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret: shown this once, never stored.")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(_("Text cannot contain NUL characters."))
    return value


class TokenIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        AfterValidator(_no_nul),
    ] = Field(description="What the token is for, e.g. CRM sync.")


def _caller(request: HttpRequest) -> User:
    """The authenticated user; an inactive one never gets here (the auth classes refuse it)."""
    if not isinstance(request.user, User) or not request.user.is_active:
        raise PermissionDenied("not signed in")
    return request.user


@router.get("/me", response={200: MeOut, 403: ErrorOut}, summary="The caller: role and rights")
def me(request: HttpRequest) -> dict[str, Any]:
    user = _caller(request)
    return {
        "id": user.pk,
        "username": user.username,
        "name": user.display_name,
        "email": user.email,
        "role": user.role,
        "is_superuser": user.is_superuser,
        "capabilities": [str(capability) for capability in Capability if user.can(capability)],
        "language": user.language or settings.LANGUAGE_CODE,
    }


@router.get(
    "/tokens",
    response={200: list[TokenOut], 403: ErrorOut},
    summary="The caller's API tokens, active first",
)
def list_tokens(request: HttpRequest) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=_caller(request)).order_by(
        F("revoked_at").asc(nulls_first=True), "-created_at", "-id"
    )


@router.post(
    "/tokens",
    response={201: NewTokenOut, 400: ErrorOut, 403: ErrorOut},
    summary="Create an API token for the caller; the answer holds its secret, once",
)
def create_token(request: HttpRequest, payload: TokenIn) -> Status[dict[str, Any]]:
    token, raw = staff.issue_api_token(user=_caller(request), name=payload.name)
    return Status(
        201,
        {
            "id": token.pk,
            "name": token.name,
            "hint": token.hint,
            "created_at": token.created_at,
            "last_used_at": token.last_used_at,
            "revoked_at": token.revoked_at,
            "token": raw,
        },
    )


@router.delete(
    "/tokens/{token_id}",
    response={204: None, 403: ErrorOut, 404: ErrorOut},
    summary="Revoke one of the caller's tokens (it stops working at once)",
)
def revoke_token(request: HttpRequest, token_id: int) -> Status[None]:
    """Someone else's token is answered like a missing one: 404, and nothing changes."""
    user = _caller(request)
    if not ApiToken.objects.filter(pk=token_id, user=user).exists():
        raise Http404("no such token")
    staff.revoke_api_token(user=user, token_id=token_id)
    return Status(204, None)
