"""Settings → Health scorecards and Settings → Risk signals.

Only a draft scorecard version is edited (band limits and measures); publishing freezes it and
changing it means a new version with a change note. "Recompute history" re-scores a date range
under the published version (synchronously, up to a year; the CLI for more). The scorecard's
page shows, from history, the churn that followed each band: the score proves itself.
"""

import re
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.db.models import Count, Max, Q
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from kizuna.analytics.models import MetricDefinition
from kizuna.core.access import requires
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.health.forms import (
    BandLimitsForm,
    MeasureFormSet,
    NewVersionForm,
    RecomputeForm,
    ScorecardForm,
    SignalRuleForm,
    format_thresholds,
)
from kizuna.health.models import (
    Scorecard,
    ScorecardVersion,
    SignalKind,
    SignalRule,
    VersionStatus,
)
from kizuna.health.presentation import percent


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _metrics() -> list[tuple[str, str]]:
    return [
        (key, f"{name} ({key})")
        for key, name in MetricDefinition.objects.order_by("position", "key").values_list(
            "key", "name"
        )
    ]


def _put_error(form: BaseForm, field: str, message: str) -> None:
    form.add_error(field if field in form.fields else None, message)


# --- Scorecards ----------------------------------------------------------------------------------


def _scorecards_page(
    request: HttpRequest, form: ScorecardForm | None = None, *, status: int = 200
) -> HttpResponse:
    rows = Scorecard.objects.annotate(
        published_number=Max(
            "versions__number", filter=Q(versions__status=VersionStatus.PUBLISHED)
        ),
        draft_number=Max("versions__number", filter=Q(versions__status=VersionStatus.DRAFT)),
        scored=Count("versions__scores__customer", distinct=True),
    ).order_by("priority", "id")
    context = {
        "area": "settings",
        "tab": "health-scorecards",
        "scorecards": rows,
        "form": form or ScorecardForm(),
        "form_open": form is not None,
    }
    return render(request, "health/scorecards.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_HEALTH)
def scorecards(request: HttpRequest) -> HttpResponse:
    """The scorecards (who each scores, its published version); POST creates one."""
    from kizuna.health.scorecards import ScorecardError, create_scorecard

    if request.method == "GET":
        return _scorecards_page(request)
    form = ScorecardForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            scorecard = create_scorecard(
                name=data["name"],
                touch_model=data["touch_model"] or "",
                segment=data["segment"] or "",
                priority=data["priority"],
                description=data["description"],
                user=_user(request),
            )
        except ScorecardError as exc:
            _put_error(form, exc.field, exc.message)
        else:
            messages.success(request, _("Scorecard “{name}” created.").format(name=scorecard.name))
            draft = scorecard.versions.filter(status=VersionStatus.DRAFT).first()
            if draft is not None:
                return redirect("health:version", draft.pk)
            return redirect("health:scorecard", scorecard.pk)
    return _scorecards_page(request, form, status=400)


def _outcome_rows(scorecard: Scorecard) -> list[dict[str, Any]]:
    from kizuna.health.selectors import band_outcomes

    rows: list[dict[str, Any]] = []
    for outcome in band_outcomes(scorecard_id=scorecard.pk):
        band, rate = outcome.band, outcome.rate
        rows.append(
            {
                "band": band,
                "label": outcome.label,
                "numerator": outcome.churned,
                "denominator": outcome.snapshots,
                "pending": outcome.pending,
                "rate": percent(rate, 1),
                "width": 0 if rate is None else round(100 * rate, 1),
            }
        )
    top = max((float(row["width"]) for row in rows), default=0.0) or 1.0
    for row in rows:
        row["bar"] = round(100 * row["width"] / top, 1)
    return rows


def _scorecard_page(
    request: HttpRequest,
    scorecard: Scorecard,
    *,
    status: int = 200,
    **forms: BaseForm,
) -> HttpResponse:
    versions = scorecard.versions.annotate(measures_count=Count("measures")).select_related(
        "published_by"
    )
    published = next((v for v in versions if v.status == VersionStatus.PUBLISHED), None)
    today = timezone.localdate()
    context = {
        "area": "settings",
        "tab": "health-scorecards",
        "scorecard": scorecard,
        "versions": versions,
        "published": published,
        "has_draft": any(v.status == VersionStatus.DRAFT for v in versions),
        "outcomes": _outcome_rows(scorecard),
        "settings_form": forms.get("settings_form") or ScorecardForm(instance=scorecard),
        "version_form": forms.get("version_form") or NewVersionForm(),
        "recompute_form": forms.get("recompute_form")
        or RecomputeForm(initial={"start": today - timedelta(days=90), "end": today}),
    }
    return render(request, "health/scorecard.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_HEALTH)
def scorecard_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A scorecard's versions, the churn that followed each band; POST saves who it is for."""
    scorecard = get_object_or_404(Scorecard, pk=pk)
    if request.method == "GET":
        return _scorecard_page(request, scorecard)
    from kizuna.health.scorecards import ScorecardError, update_scorecard

    form = ScorecardForm(request.POST, instance=scorecard)
    if form.is_valid():
        data = form.cleaned_data
        try:
            update_scorecard(
                scorecard_id=scorecard.pk,
                name=data["name"],
                touch_model=data["touch_model"] or "",
                segment=data["segment"] or "",
                priority=data["priority"],
                description=data["description"],
                is_active=data["is_active"],
            )
        except ScorecardError as exc:
            _put_error(form, exc.field, exc.message)
        else:
            messages.success(request, _("Scorecard saved."))
            return redirect("health:scorecard", scorecard.pk)
    return _scorecard_page(request, Scorecard.objects.get(pk=pk), settings_form=form, status=400)


@require_POST
@requires(Capability.MANAGE_HEALTH)
def version_new(request: HttpRequest, pk: int) -> HttpResponse:
    """A new draft copied from the latest version, with what changes."""
    from kizuna.health.scorecards import ScorecardError, new_version

    scorecard = get_object_or_404(Scorecard, pk=pk)
    form = NewVersionForm(request.POST)
    if form.is_valid():
        try:
            draft = new_version(
                scorecard_id=scorecard.pk,
                change_note=form.cleaned_data["change_note"],
                user=_user(request),
            )
        except ScorecardError as exc:
            _put_error(form, exc.field, exc.message)
        else:
            messages.success(
                request, _("Draft version {number} created.").format(number=draft.number)
            )
            return redirect("health:version", draft.pk)
    return _scorecard_page(request, scorecard, version_form=form, status=400)


@require_POST
@requires(Capability.MANAGE_HEALTH)
def recompute(request: HttpRequest, pk: int) -> HttpResponse:
    """Re-score a date range of history under the published version (up to a year here)."""
    from kizuna.health.scorecards import ScorecardError
    from kizuna.health.scoring import recompute_history

    scorecard = get_object_or_404(Scorecard, pk=pk)
    form = RecomputeForm(request.POST)
    if form.is_valid():
        start: date = form.cleaned_data["start"]
        end: date = form.cleaned_data["end"]
        try:
            result = recompute_history(scorecard_id=scorecard.pk, start=start, end=end)
        except ScorecardError as exc:
            _put_error(form, exc.field, exc.message)
        else:
            scored = getattr(result, "scored", None)
            messages.success(
                request,
                _("History from {start} to {end} recomputed ({scored} scores).").format(
                    start=start.isoformat(), end=end.isoformat(), scored=scored
                ),
            )
            return redirect("health:scorecard", scorecard.pk)
    return _scorecard_page(request, scorecard, recompute_form=form, status=400)


# The version editor


def _version(pk: int) -> ScorecardVersion:
    return get_object_or_404(
        ScorecardVersion.objects.select_related("scorecard", "published_by"), pk=pk
    )


def _measure_initial(version: ScorecardVersion) -> list[dict[str, Any]]:
    return [
        {
            "key": m.key,
            "label": m.label,
            "source": m.source,
            "metric_key": m.metric_key,
            "weight": m.weight,
            "mapping": m.mapping,
            "thresholds": format_thresholds(m.thresholds),
            "higher_is_better": m.higher_is_better,
        }
        for m in version.measures.order_by("position", "id")
    ]


def _version_page(
    request: HttpRequest,
    version: ScorecardVersion,
    *,
    limits_form: BandLimitsForm | None = None,
    formset: Any = None,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    editable = version.status == VersionStatus.DRAFT
    context: dict[str, Any] = {
        "area": "settings",
        "tab": "health-scorecards",
        "version": version,
        "scorecard": version.scorecard,
        "editable": editable,
        "measures": [
            (measure, format_thresholds(measure.thresholds))
            for measure in version.measures.order_by("position", "id")
        ],
        **extra,
    }
    if editable:
        context["limits_form"] = limits_form or BandLimitsForm(
            initial={"good_from": version.good_from, "watch_from": version.watch_from}
        )
        context["formset"] = formset or MeasureFormSet(
            initial=_measure_initial(version),
            metrics=_metrics(),  # type: ignore[call-arg] # BaseMeasureFormSet's own argument
            prefix="measures",
        )
    return render(request, "health/version.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_HEALTH)
def version_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The editor of a draft (POST saves limits and measures), or a read-only version."""
    from kizuna.health.scorecards import MeasureInput, ScorecardError, save_draft

    version = _version(pk)
    if request.method == "GET":
        return _version_page(request, version)
    if version.status != VersionStatus.DRAFT:
        messages.error(request, _("Only a draft can be changed: make a new version."))
        return _version_page(request, version, status=409)
    limits = BandLimitsForm(request.POST)
    formset = MeasureFormSet(request.POST, metrics=_metrics(), prefix="measures")  # type: ignore[call-arg] # BaseMeasureFormSet's own argument
    if limits.is_valid() and formset.is_valid():
        deleted = formset.deleted_forms
        kept = [form for form in formset.forms if form.cleaned_data and form not in deleted]
        measures = [
            MeasureInput(
                key=form.cleaned_data["key"],
                label=form.cleaned_data["label"],
                source=form.cleaned_data["source"],
                metric_key=form.cleaned_data["metric_key"] or "",
                weight=form.cleaned_data["weight"],
                mapping=form.cleaned_data["mapping"],
                thresholds=form.cleaned_data["thresholds"],
                higher_is_better=form.cleaned_data["higher_is_better"],
            )
            for form in kept
        ]
        try:
            save_draft(
                version_id=version.pk,
                good_from=limits.cleaned_data["good_from"],
                watch_from=limits.cleaned_data["watch_from"],
                measures=measures,
            )
        except ScorecardError as exc:
            _scorecard_error(exc, limits, kept)
        else:
            messages.success(request, _("Draft saved."))
            return redirect("health:version", version.pk)
    return _version_page(request, version, limits_form=limits, formset=formset, status=400)


def _scorecard_error(exc: Any, limits: BandLimitsForm, measure_forms: list[Any]) -> None:
    """Put a service error on the field it names: ``good_from`` or ``measures[2].weight``."""
    field = str(exc.field)
    if field in limits.fields:
        limits.add_error(field, exc.message)
        return
    match = re.match(r"^measures\[(\d+)\](?:\.(\w+))?", field)
    if match and int(match.group(1)) < len(measure_forms):
        form = measure_forms[int(match.group(1))]
        name = match.group(2) or ""
        form.add_error(name if name in form.fields else None, exc.message)
        return
    limits.add_error(None, exc.message)


@require_POST
@requires(Capability.MANAGE_HEALTH)
def version_publish(request: HttpRequest, pk: int) -> HttpResponse:
    """Publish the draft: new scores use it from the next run."""
    from kizuna.health.scorecards import ScorecardError, publish_version

    version = _version(pk)
    try:
        publish_version(version_id=version.pk, user=_user(request))
    except ScorecardError as exc:
        return _version_page(request, version, status=400, publish_errors=[exc.message])
    messages.success(
        request,
        _("Version {number} is published: scores use it from the next run.").format(
            number=version.number
        ),
    )
    return redirect("health:scorecard", version.scorecard_id)


# --- Risk signal rules ---------------------------------------------------------------------------


def _rule_forms(bound: SignalRuleForm | None = None) -> list[SignalRuleForm]:
    from kizuna.health.signals import DEFAULT_RULES, ensure_default_rules

    ensure_default_rules()
    rules = {rule.kind: rule for rule in SignalRule.objects.all()}
    metrics = _metrics()
    forms = []
    for kind in SignalKind:
        if bound is not None and bound.kind == kind:
            forms.append(bound)
            continue
        severity, defaults = DEFAULT_RULES[kind]
        rule = rules.get(kind)
        params = {**defaults, **(rule.params if rule else {})}
        initial = {
            "enabled": rule.enabled if rule else True,
            "severity": rule.severity if rule else severity,
            **params,
        }
        forms.append(SignalRuleForm(kind=kind, defaults=defaults, metrics=metrics, initial=initial))
    return forms


def _rules_page(
    request: HttpRequest, bound: SignalRuleForm | None = None, *, status: int = 200
) -> HttpResponse:
    context = {
        "area": "settings",
        "tab": "health-signals",
        "rows": [
            {"form": form, "label": SignalKind(form.kind).label, "kind": form.kind}
            for form in _rule_forms(bound)
        ],
    }
    return render(request, "health/signal_rules.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_HEALTH)
def signal_rules(request: HttpRequest) -> HttpResponse:
    """A row per kind of risk signal; POST (with ``kind``) saves one row."""
    from kizuna.health.signals import DEFAULT_RULES, SignalRuleError, validate_params

    if request.method == "GET":
        return _rules_page(request)
    kind = request.POST.get("kind", "")
    if kind not in SignalKind.values:
        messages.error(request, _("Unknown kind of signal."))
        return _rules_page(request, status=400)
    _severity, defaults = DEFAULT_RULES[SignalKind(kind)]
    form = SignalRuleForm(request.POST, kind=kind, defaults=defaults, metrics=_metrics())
    if form.is_valid():
        rule = SignalRule.objects.filter(kind=kind).first()
        kept = {
            key: value
            for key, value in (rule.params if rule else {}).items()
            if key not in form.param_names
        }
        try:
            params = validate_params(SignalKind(kind), {**defaults, **kept, **form.params()})
        except SignalRuleError as exc:
            _put_error(form, exc.field, exc.message)
        else:
            SignalRule.objects.update_or_create(
                kind=kind,
                defaults={
                    "enabled": form.cleaned_data["enabled"],
                    "severity": form.cleaned_data["severity"],
                    "params": params,
                    "updated_by": _user(request),
                },
            )
            messages.success(request, _("Rule “{kind}” saved.").format(kind=SignalKind(kind).label))
            return redirect(reverse("health:signal-rules") + f"#rule-{kind}")
    return _rules_page(request, form, status=400)
