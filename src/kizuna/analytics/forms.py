"""Forms of Settings → Sources and Settings → Metrics: they parse and validate, services write."""

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from kizuna.analytics import external
from kizuna.analytics.models import (
    MetricDefinition,
    MetricKind,
    Source,
    UsageSettings,
    WindowKind,
)

MAX_WINDOW_DAYS = 366
# Event types and feature names: what SDKs send ("Report Exported", "login", "billing.view").
NAME_PATTERN = re.compile(r"^[^\x00-\x1f,]{1,200}$")
# Columns of the lake an external table can fill (``target=column`` lines), and their aliases.
EXTERNAL_TARGETS = external.TARGETS
MASK = "********"


def _label(model: type[models.Model], field: str) -> str:
    """The model field's verbose name as a form label (capitalised, still translatable)."""
    model_field = model._meta.get_field(field)
    assert isinstance(model_field, models.Field)
    return capfirst(model_field.verbose_name)  # type: ignore[return-value] # lazy text is a str


def split_list(value: str) -> list[str]:
    """``"login, export ,"`` → ``["login", "export"]``: order kept, blanks and repeats dropped."""
    items: list[str] = []
    for item in value.replace("\n", ",").split(","):
        item = item.strip()
        if item and item not in items:
            items.append(item)
    return items


class NameListField(forms.CharField):
    """A comma-separated list of event types or feature names, cleaned to a list of str."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 5000)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override] # a list, not a str
        items = split_list(super().to_python(value) or "")
        for item in items:
            if not NAME_PATTERN.match(item):
                raise ValidationError(
                    _(
                        "“%(item)s” is not a valid name (at most 200 characters, no control characters)."
                    ),
                    params={"item": item[:50]},
                )
        return items


class SourceForm(forms.Form):
    name = forms.CharField(label=_label(Source, "name"), max_length=100)
    group_id_trait = forms.CharField(
        label=_label(Source, "group_id_trait"),
        max_length=100,
        required=False,
        help_text=Source._meta.get_field("group_id_trait").help_text,
    )

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Give the source a name."))
        if Source.objects.filter(name=name).exists():
            raise ValidationError(_("A source with this name already exists."))
        return name

    def clean_group_id_trait(self) -> str:
        trait: str = self.cleaned_data["group_id_trait"].strip()
        if trait and not re.fullmatch(r"[A-Za-z0-9_.$-]+", trait):
            raise ValidationError(
                _("Use the trait's name as sent by the SDK: letters, digits, _ . - or $.")
            )
        return trait


class MetricDefinitionForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    """Create or edit a metric definition. The key is fixed once the metric exists."""

    event_types = NameListField(
        label=_label(MetricDefinition, "event_types"),
        help_text=_("Comma-separated, e.g. login, report_exported. Empty means every event."),
    )
    window_days = forms.IntegerField(
        label=_label(MetricDefinition, "window_days"),
        required=False,
        initial=28,
        help_text=_(
            "1 to 366 days for a rolling window and for a change metric (the days between the "
            "two values compared); not used for a calendar month."
        ),
    )

    class Meta:
        model = MetricDefinition
        fields = (
            "key",
            "name",
            "name_ja",
            "kind",
            "event_types",
            "window_kind",
            "window_days",
            "base_metric",
            "position",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bases = MetricDefinition.objects.exclude(kind=MetricKind.WINDOW_CHANGE)
        if self.instance.pk:
            bases = bases.exclude(pk=self.instance.pk)
            self.fields["key"].disabled = True
            self.fields["key"].help_text = _(
                "The key names the metric's history and cannot change."
            )
        else:
            self.fields["key"].help_text = _(
                "Lower-case letters, digits, - and _, e.g. logins_28d."
            )
        self.fields["base_metric"].queryset = bases  # type: ignore[attr-defined] # ModelChoiceField

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"]
        if key != key.lower():
            raise ValidationError(_("Use lower-case letters in the key."))
        return key

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        kind = cleaned.get("kind")
        base = cleaned.get("base_metric")
        days = cleaned.get("window_days")
        uses_days = (
            kind == MetricKind.WINDOW_CHANGE or cleaned.get("window_kind") == WindowKind.ROLLING
        )
        if not uses_days:
            cleaned["window_days"] = 0  # a calendar month has no fixed number of days
        elif "window_days" in cleaned and (days is None or not 1 <= days <= MAX_WINDOW_DAYS):
            self.add_error(
                "window_days",
                _("Give the window in days, from 1 to %(most)d.") % {"most": MAX_WINDOW_DAYS},
            )
        if kind == MetricKind.WINDOW_CHANGE and base is None:
            self.add_error("base_metric", _("A change metric compares a base metric: choose one."))
        elif kind and kind != MetricKind.WINDOW_CHANGE and base is not None:
            self.add_error(
                "base_metric", _("Only a change metric (vs the previous window) has a base metric.")
            )
        return cleaned


class UsageSettingsForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    """What makes a user active, the key features, and the optional external events table."""

    qualifying_event_types = NameListField(
        label=_label(UsageSettings, "qualifying_event_types"),
        help_text=_("Comma-separated. Empty: any event makes a user active that day."),
    )
    key_features = NameListField(
        label=_label(UsageSettings, "key_features"),
        help_text=_("Comma-separated features counted by the feature usage rate."),
    )
    external_columns = forms.CharField(
        label=_label(UsageSettings, "external_columns"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_(
            "One “target=column” per line, e.g. event_time=occurred_at. Targets: %(targets)s."
        )
        % {"targets": ", ".join(EXTERNAL_TARGETS)},
    )

    class Meta:
        model = UsageSettings
        fields = (
            "qualifying_event_types",
            "key_features",
            "external_connection",
            "external_table",
            "external_columns",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The connection string may hold a password: never send it back to the browser.
        self.stored_connection = self.instance.external_connection
        if not self.is_bound:
            self.initial["external_connection"] = mask_connection(self.stored_connection)
            self.initial["external_columns"] = "\n".join(
                f"{target}={column}"
                for target, column in (self.instance.external_columns or {}).items()
            )

    def clean_external_connection(self) -> str:
        connection: str = self.cleaned_data["external_connection"].strip()
        if connection and connection == mask_connection(self.stored_connection):
            return str(self.stored_connection)
        if connection and "://" not in connection:
            raise ValidationError(
                _("Give an Ibis connection string such as postgres://user:password@host/db.")
            )
        return connection

    def clean_external_columns(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for number, raw_line in enumerate(self.cleaned_data["external_columns"].splitlines(), 1):
            line = raw_line.strip()
            if not line:
                continue
            target, separator, column = (part.strip() for part in line.partition("="))
            target = external.ALIASES.get(target, target)
            if not separator or not target or not column:
                raise ValidationError(
                    _("Line %(line)d: write target=column, e.g. event_time=occurred_at."),
                    params={"line": number},
                )
            if target not in EXTERNAL_TARGETS:
                raise ValidationError(
                    _("Line %(line)d: unknown target “%(target)s”; use one of %(targets)s."),
                    params={
                        "line": number,
                        "target": target,
                        "targets": ", ".join(EXTERNAL_TARGETS),
                    },
                )
            if target in mapping:
                raise ValidationError(
                    _("Line %(line)d: “%(target)s” is mapped twice."),
                    params={"line": number, "target": target},
                )
            mapping[target] = column
        return mapping

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        connection = cleaned.get("external_connection")
        if connection and not cleaned.get("external_table"):
            self.add_error("external_table", _("Name the table that holds the events."))
        elif connection and "external_columns" in cleaned:
            config = external.ExternalConfig(
                connection, cleaned["external_table"], cleaned["external_columns"]
            )
            for problem in external.mapping_problems(config):
                self.add_error("external_columns", problem)
        return cleaned


def mask_connection(connection: str) -> str:
    """The connection string with its password replaced by asterisks (for showing it)."""
    if not connection:
        return ""
    parts = urlsplit(connection)
    if parts.password is None:
        return connection
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
