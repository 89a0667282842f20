"""Staff users and their API tokens: the writes behind the settings pages."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core.models import ApiToken, User
from kizuna.core.roles import Role


@transaction.atomic
def create_staff_user(
    *,
    username: str,
    password: str,
    role: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    language: str = "",
) -> User:
    """Create an active staff user with a role; the password is stored hashed (Argon2)."""
    if role not in Role.values:
        raise ValidationError({"role": _("Choose one of the roles.")})
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": _("A user with that username already exists.")})
    return User.objects.create_user(
        username=username,
        password=password,
        email=email,
        first_name=first_name,
        last_name=last_name,
        role=role,
        language=language,
    )


def _would_leave_no_admin(user: User) -> bool:
    others = User.objects.filter(is_active=True, role=Role.ADMIN).exclude(pk=user.pk)
    return user.role == Role.ADMIN and not others.exists()


@transaction.atomic
def update_staff_user(
    *,
    user: User,
    actor: User,
    role: str,
    is_active: bool,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Change a user's role, name, email or active flag.

    Refuses to take the last active administrator's role away or to deactivate oneself,
    so the installation always keeps someone who can manage users.
    """
    if role not in Role.values:
        raise ValidationError({"role": _("Choose one of the roles.")})
    if not is_active and user.pk == actor.pk:
        raise ValidationError({"is_active": _("You cannot deactivate yourself.")})
    if (role != Role.ADMIN or not is_active) and _would_leave_no_admin(user):
        raise ValidationError({"role": _("Keep at least one active administrator.")})
    user.role = role
    user.is_active = is_active
    user.email = email
    user.first_name = first_name
    user.last_name = last_name
    user.full_clean(exclude=["password"])
    user.save()
    return user


@transaction.atomic
def deactivate_staff_user(*, user: User, actor: User) -> User:
    """Deactivate a user: they can no longer sign in and their API tokens stop working."""
    return update_staff_user(
        user=user,
        actor=actor,
        role=user.role,
        is_active=False,
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
    )


def issue_api_token(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create an API token for the user; returns it with the raw secret, shown only once."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": _("Give the token a name.")})
    if len(name) > 100:
        raise ValidationError({"name": _("Keep the name under 100 characters.")})
    return ApiToken.issue(user=user, name=name)


def revoke_api_token(*, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens (revoking twice keeps the first time)."""
    token = ApiToken.objects.filter(pk=token_id).first()
    if token is None or token.user_id != user.pk:
        raise PermissionDenied("not your token")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
