"""Staff roles and what each may do. The one place that says who can do what."""

from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Administrator")
    CS_MANAGER = "cs_manager", _("CS manager")
    ONBOARDING_CSM = "onboarding_csm", _("Onboarding CSM")
    ADOPTION_CSM = "adoption_csm", _("Adoption CSM")
    EXPANSION_CSM = "expansion_csm", _("Expansion CSM")
    VIEWER = "viewer", _("Viewer")


class Capability(StrEnum):
    VIEW = "view"
    EDIT_CUSTOMERS = "edit_customers"
    WRITE_TIMELINE = "write_timeline"
    IMPORT_DATA = "import_data"
    MANAGE_CATALOG = "manage_catalog"
    MANAGE_USERS = "manage_users"
    MANAGE_SOURCES = "manage_sources"
    MANAGE_METRICS = "manage_metrics"
    MANAGE_LIFECYCLE = "manage_lifecycle"
    ASSIGN_OWNERS = "assign_owners"
    MANAGE_PROGRAMS = "manage_programs"
    MANAGE_HEALTH = "manage_health"
    MANAGE_PLAYBOOKS = "manage_playbooks"
    MANAGE_TASKS = "manage_tasks"


_CSM = frozenset({Capability.VIEW, Capability.EDIT_CUSTOMERS, Capability.WRITE_TIMELINE})

ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.ADMIN: frozenset(Capability),
    Role.CS_MANAGER: _CSM
    | {
        Capability.IMPORT_DATA,
        Capability.MANAGE_CATALOG,
        Capability.MANAGE_METRICS,
        Capability.MANAGE_LIFECYCLE,
        Capability.ASSIGN_OWNERS,
        Capability.MANAGE_PROGRAMS,
        Capability.MANAGE_HEALTH,
        Capability.MANAGE_PLAYBOOKS,
        Capability.MANAGE_TASKS,
    },
    Role.ONBOARDING_CSM: _CSM | {Capability.MANAGE_PROGRAMS},
    Role.ADOPTION_CSM: _CSM,
    Role.EXPANSION_CSM: _CSM,
    Role.VIEWER: frozenset({Capability.VIEW}),
}

CSM_ROLES = (Role.ONBOARDING_CSM, Role.ADOPTION_CSM, Role.EXPANSION_CSM, Role.CS_MANAGER)
