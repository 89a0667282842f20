"""Writes of Settings → Metrics: metric definitions and the company's usage settings.

Changes take effect at the next metrics run (``kizuna metrics run``); nothing here recomputes.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from kizuna.analytics.models import MetricDefinition, UsageSettings


@transaction.atomic
def save_metric_definition(
    *, definition: MetricDefinition | None, fields: dict[str, Any]
) -> MetricDefinition:
    """Create a definition (``definition`` None) or change one; the key of an existing one stays."""
    if definition is None:
        definition = MetricDefinition(**fields)
    else:
        fields = {name: value for name, value in fields.items() if name != "key"}
        for name, value in fields.items():
            setattr(definition, name, value)
    definition.full_clean()
    definition.save()
    return definition


@transaction.atomic
def set_metric_active(*, metric_id: int, active: bool) -> MetricDefinition:
    """Switch a definition on or off; a base of an active change metric cannot be switched off."""
    definition = MetricDefinition.objects.select_for_update().get(pk=metric_id)
    if not active:
        dependants = list(
            MetricDefinition.objects.filter(base_metric=definition, is_active=True).values_list(
                "key", flat=True
            )
        )
        if dependants:
            raise ValidationError(
                _(
                    "%(key)s is the base of the active metric(s) %(dependants)s: deactivate them first."
                )
                % {"key": definition.key, "dependants": ", ".join(sorted(dependants))}
            )
    elif definition.base_metric is not None and not definition.base_metric.is_active:
        raise ValidationError(
            _("Activate its base metric %(base)s first.") % {"base": definition.base_metric.key}
        )
    definition.is_active = active
    definition.save(update_fields=["is_active", "updated_at"])
    return definition


@transaction.atomic
def save_usage_settings(
    *,
    qualifying_event_types: list[str],
    key_features: list[str],
    external_connection: str,
    external_table: str,
    external_columns: dict[str, str],
) -> UsageSettings:
    """Replace the company's usage settings (the single ``UsageSettings`` row)."""
    usage = UsageSettings.load()
    usage.qualifying_event_types = qualifying_event_types
    usage.key_features = key_features
    usage.external_connection = external_connection
    usage.external_table = external_table
    usage.external_columns = external_columns
    usage.full_clean()
    usage.save()
    return usage
