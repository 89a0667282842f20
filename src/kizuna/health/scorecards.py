"""Scorecards and their versions: create, edit the draft, publish, copy into a new version.

A scorecard says which customers it scores (touch model and/or segment, first match by
priority); each version holds the measures and band limits. Only a draft is edited;
publishing freezes it and retires the previously published version, so stored scores keep
pointing at the version that produced them. Services raise ``ScorecardError(field, message)``
with a translated message naming the field at fault.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core.models import User
from kizuna.customers.models import TouchModel
from kizuna.health.models import (
    Mapping,
    Measure,
    MeasureSource,
    Scorecard,
    ScorecardVersion,
    VersionStatus,
)

MAX_MEASURES = 30
MAX_THRESHOLDS = 20


class ScorecardError(ValueError):
    """A scorecard input that cannot be used; ``field`` names it (``measures[2].weight``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, kw_only=True)
class MeasureInput:
    """One measure of a draft as people enter it.

    ``thresholds``: ``[(value, points), …]`` ascending by value, points in 0..100, for the
    thresholds mapping (interpolated linearly, clamped outside). ``higher_is_better`` flips
    the percentile mapping (a low value ranks high).
    """

    key: str
    label: str
    source: str
    metric_key: str = ""
    weight: float = 1.0
    mapping: str = Mapping.THRESHOLDS
    thresholds: Sequence[Sequence[float]] = field(default_factory=list)
    higher_is_better: bool = True


# ---------------------------------------------------------------------------------------
# Defaults

_COMMON_MEASURES: tuple[MeasureInput, ...] = (
    MeasureInput(
        key="active_users_trend",
        label="Active users vs previous 28 days",
        source=MeasureSource.METRIC,
        metric_key="active_users_28d_change",
        weight=2,
        thresholds=[(-0.5, 0), (-0.2, 40), (0, 70), (0.1, 100)],
    ),
    MeasureInput(
        key="usage_trend",
        label="Events vs previous 28 days",
        source=MeasureSource.METRIC,
        metric_key="events_28d_change",
        weight=2,
        thresholds=[(-0.5, 0), (-0.2, 40), (0, 70), (0.2, 100)],
    ),
    MeasureInput(
        key="seat_utilisation",
        label="Seat utilisation (28 days)",
        source=MeasureSource.METRIC,
        metric_key="seat_utilisation_28d",
        weight=2,
        thresholds=[(0.1, 0), (0.4, 50), (0.8, 100)],
    ),
    MeasureInput(
        key="active_days",
        label="Active days (28 days)",
        source=MeasureSource.METRIC,
        metric_key="active_days_28d",
        weight=1,
        thresholds=[(0, 0), (8, 50), (20, 100)],
    ),
    MeasureInput(
        key="feature_breadth",
        label="Features used (28 days)",
        source=MeasureSource.METRIC,
        metric_key="feature_breadth_28d",
        weight=1,
        mapping=Mapping.PERCENTILE,
    ),
    MeasureInput(
        key="onboarding",
        label="Onboarding progress",
        source=MeasureSource.ONBOARDING_PROGRESS,
        weight=1,
        thresholds=[(0, 0), (1, 100)],
    ),
    MeasureInput(
        key="nps",
        label="Latest NPS answers",
        source=MeasureSource.NPS,
        weight=1,
        thresholds=[(0, 0), (6, 30), (8, 70), (10, 100)],
    ),
    MeasureInput(
        key="open_signals",
        label="Open risk signals",
        source=MeasureSource.OPEN_SIGNALS,
        weight=2,
        thresholds=[(0, 100), (1, 60), (3, 0)],
    ),
)

_TOUCH_MEASURES: tuple[MeasureInput, ...] = (
    MeasureInput(
        key="days_since_touch",
        label="Days since the last CSM touch",
        source=MeasureSource.DAYS_SINCE_TOUCH,
        weight=1,
        thresholds=[(0, 100), (30, 70), (90, 0)],
    ),
    MeasureInput(
        key="sentiment",
        label="CSM sentiment",
        source=MeasureSource.SENTIMENT,
        weight=1,
        thresholds=[(1, 0), (3, 50), (5, 100)],
    ),
)

DEFAULT_SCORECARDS: tuple[dict[str, Any], ...] = (
    {
        "name": "Standard",
        "description": "Usage, adoption, relationship and risk for every customer.",
        "touch_model": "",
        "priority": 100,
        "measures": (*_COMMON_MEASURES, *_TOUCH_MEASURES),
    },
    {
        "name": "Tech touch",
        "description": "Usage and risk only: no CSM touches or sentiment to judge by.",
        "touch_model": TouchModel.TECH,
        "priority": 50,
        "measures": _COMMON_MEASURES,
    },
)


def ensure_default_scorecards() -> int:
    """Create the default scorecards (published v1) that do not exist yet, by name.

    Returns how many were created; existing scorecards, edited or not, are left alone.
    """
    existing = set(Scorecard.objects.values_list("name", flat=True))
    created = 0
    for spec in DEFAULT_SCORECARDS:
        if spec["name"] in existing:
            continue
        with transaction.atomic():
            card = Scorecard.objects.create(
                name=spec["name"],
                description=spec["description"],
                touch_model=spec["touch_model"],
                priority=spec["priority"],
            )
            version = ScorecardVersion.objects.create(
                scorecard=card,
                number=1,
                status=VersionStatus.PUBLISHED,
                good_from=70.0,
                watch_from=40.0,
                change_note="Default scorecard",
                published_at=timezone.now(),
            )
            _write_measures(version, _checked_measures(spec["measures"], check_metrics=False))
        created += 1
    return created


# ---------------------------------------------------------------------------------------
# Validation


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScorecardError(field, _("Enter a number."))
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ScorecardError(field, _("Enter a finite number."))
    return number


def _checked_thresholds(raw: Sequence[Sequence[float]], field: str) -> list[list[float]]:
    pairs: list[list[float]] = []
    if len(raw) > MAX_THRESHOLDS:
        raise ScorecardError(field, _("At most {count} thresholds.").format(count=MAX_THRESHOLDS))
    for index, pair in enumerate(raw):
        where = f"{field}[{index}]"
        if isinstance(pair, str | bytes) or len(pair) != 2:
            raise ScorecardError(where, _("Each threshold is a pair: value and points."))
        value = _number(pair[0], where)
        points = _number(pair[1], where)
        if not 0 <= points <= 100:
            raise ScorecardError(where, _("Points must be between 0 and 100."))
        if pairs and value <= pairs[-1][0]:
            raise ScorecardError(
                where, _("Threshold values must be in ascending order, each larger than the last.")
            )
        pairs.append([value, points])
    if len(pairs) < 2:
        raise ScorecardError(
            field, _("Give at least two thresholds (value:points), e.g. 0:0, 0.8:100.")
        )
    return pairs


def _checked_measures(
    measures: Sequence[MeasureInput], *, check_metrics: bool = True
) -> list[MeasureInput]:
    from kizuna.analytics.models import MetricDefinition

    if not measures:
        raise ScorecardError("measures", _("Add at least one measure."))
    if len(measures) > MAX_MEASURES:
        raise ScorecardError("measures", _("At most {count} measures.").format(count=MAX_MEASURES))
    known_metrics = (
        set(MetricDefinition.objects.values_list("key", flat=True)) if check_metrics else None
    )
    seen: set[str] = set()
    checked: list[MeasureInput] = []
    for index, measure in enumerate(measures):
        where = f"measures[{index}]"
        key = (measure.key or "").strip()
        if not key or not key.replace("_", "").replace("-", "").isalnum() or not key.isascii():
            raise ScorecardError(
                f"{where}.key", _("Use letters, digits, hyphens and underscores only.")
            )
        if key in seen:
            raise ScorecardError(
                f"{where}.key", _("The key '{key}' is used twice.").format(key=key)
            )
        seen.add(key)
        label = (measure.label or "").strip() or key
        if measure.source not in MeasureSource.values:
            raise ScorecardError(
                f"{where}.source",
                _("Unknown source '{source}'; use one of {choices}.").format(
                    source=measure.source, choices=", ".join(MeasureSource.values)
                ),
            )
        metric_key = (measure.metric_key or "").strip()
        if measure.source == MeasureSource.METRIC:
            if not metric_key:
                raise ScorecardError(f"{where}.metric_key", _("Choose a metric."))
            if known_metrics is not None and metric_key not in known_metrics:
                raise ScorecardError(
                    f"{where}.metric_key",
                    _("There is no metric '{key}'.").format(key=metric_key),
                )
        else:
            metric_key = ""
        weight = _number(measure.weight, f"{where}.weight")
        if weight <= 0:
            raise ScorecardError(f"{where}.weight", _("The weight must be greater than 0."))
        if measure.mapping not in Mapping.values:
            raise ScorecardError(
                f"{where}.mapping",
                _("Unknown mapping '{mapping}'; use one of {choices}.").format(
                    mapping=measure.mapping, choices=", ".join(Mapping.values)
                ),
            )
        thresholds: list[list[float]] = []
        if measure.mapping == Mapping.THRESHOLDS:
            thresholds = _checked_thresholds(list(measure.thresholds), f"{where}.thresholds")
        checked.append(
            MeasureInput(
                key=key,
                label=label[:200],
                source=measure.source,
                metric_key=metric_key,
                weight=weight,
                mapping=measure.mapping,
                thresholds=thresholds,
                higher_is_better=bool(measure.higher_is_better),
            )
        )
    return checked


def _write_measures(version: ScorecardVersion, measures: Sequence[MeasureInput]) -> None:
    Measure.objects.filter(version=version).delete()
    Measure.objects.bulk_create(
        [
            Measure(
                version=version,
                key=m.key,
                label=m.label,
                source=m.source,
                metric_key=m.metric_key,
                weight=float(m.weight),
                mapping=m.mapping,
                thresholds=[[float(v), float(p)] for v, p in m.thresholds],
                higher_is_better=m.higher_is_better,
                position=position,
            )
            for position, m in enumerate(measures)
        ]
    )


def measure_inputs(version: ScorecardVersion) -> list[MeasureInput]:
    """The version's measures as ``MeasureInput`` (what a form starts from)."""
    return [
        MeasureInput(
            key=m.key,
            label=m.label,
            source=m.source,
            metric_key=m.metric_key,
            weight=m.weight,
            mapping=m.mapping,
            thresholds=[tuple(pair) for pair in m.thresholds],
            higher_is_better=m.higher_is_better,
        )
        for m in version.measures.order_by("position", "id")
    ]


# ---------------------------------------------------------------------------------------
# Services


def _checked_scope(touch_model: str, segment: str, priority: int) -> tuple[str, str, int]:
    touch_model = (touch_model or "").strip()
    if touch_model and touch_model not in TouchModel.values:
        raise ScorecardError(
            "touch_model",
            _("Unknown touch model '{value}'; use one of {choices} or leave it empty.").format(
                value=touch_model, choices=", ".join(TouchModel.values)
            ),
        )
    segment = (segment or "").strip()
    if len(segment) > 100:
        raise ScorecardError("segment", _("At most 100 characters."))
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise ScorecardError("priority", _("The priority must be a whole number, 0 or more."))
    return touch_model, segment, priority


@transaction.atomic
def create_scorecard(
    *,
    name: str,
    touch_model: str = "",
    segment: str = "",
    priority: int = 100,
    description: str = "",
    user: User | None = None,
) -> Scorecard:
    """A new scorecard with an empty draft version 1 (``user`` is kept for the audit trail)."""
    name = (name or "").strip()
    if not name:
        raise ScorecardError("name", _("Enter a name."))
    if len(name) > 200:
        raise ScorecardError("name", _("At most 200 characters."))
    touch_model, segment, priority = _checked_scope(touch_model, segment, priority)
    card = Scorecard.objects.create(
        name=name,
        description=description or "",
        touch_model=touch_model,
        segment=segment,
        priority=priority,
    )
    ScorecardVersion.objects.create(scorecard=card, number=1)
    return card


def update_scorecard(
    *,
    scorecard_id: int,
    name: str,
    touch_model: str = "",
    segment: str = "",
    priority: int = 100,
    description: str = "",
    is_active: bool = True,
) -> Scorecard:
    """Change who the scorecard scores (applies from the next scoring run)."""
    card = Scorecard.objects.get(pk=scorecard_id)
    name = (name or "").strip()
    if not name:
        raise ScorecardError("name", _("Enter a name."))
    card.name = name[:200]
    card.touch_model, card.segment, card.priority = _checked_scope(touch_model, segment, priority)
    card.description = description or ""
    card.is_active = is_active
    card.save()
    return card


def _draft(version_id: int) -> ScorecardVersion:
    try:
        version = ScorecardVersion.objects.select_for_update().get(pk=version_id)
    except ScorecardVersion.DoesNotExist:
        raise ScorecardError("version_id", _("There is no such scorecard version.")) from None
    if version.status != VersionStatus.DRAFT:
        raise ScorecardError(
            "version_id",
            _("Version {number} is {status}: only a draft can be changed.").format(
                number=version.number, status=version.get_status_display()
            ),
        )
    return version


@transaction.atomic
def save_draft(
    *,
    version_id: int,
    good_from: float,
    watch_from: float,
    measures: Sequence[MeasureInput],
    change_note: str | None = None,
) -> ScorecardVersion:
    """Replace the draft's band limits and measures after checking them all.

    Bands: good from ``good_from``, watch from ``watch_from`` (below: at risk), with
    0 <= watch_from < good_from <= 100.
    """
    version = _draft(version_id)
    good = _number(good_from, "good_from")
    watch = _number(watch_from, "watch_from")
    if not 0 <= good <= 100:
        raise ScorecardError("good_from", _("Must be between 0 and 100."))
    if not 0 <= watch <= 100:
        raise ScorecardError("watch_from", _("Must be between 0 and 100."))
    if good <= watch:
        raise ScorecardError("good_from", _("'Good from' must be above 'watch from'."))
    checked = _checked_measures(measures)
    version.good_from = good
    version.watch_from = watch
    fields = ["good_from", "watch_from"]
    if change_note is not None:
        version.change_note = change_note[:500]
        fields.append("change_note")
    version.save(update_fields=fields)
    _write_measures(version, checked)
    return version


@transaction.atomic
def publish_version(*, version_id: int, user: User | None = None) -> ScorecardVersion:
    """Publish the draft (it must have measures); the published version before it retires."""
    version = _draft(version_id)
    if not version.measures.exists():
        raise ScorecardError("measures", _("Add at least one measure before publishing."))
    ScorecardVersion.objects.filter(
        scorecard_id=version.scorecard_id, status=VersionStatus.PUBLISHED
    ).update(status=VersionStatus.RETIRED)
    version.status = VersionStatus.PUBLISHED
    version.published_at = timezone.now()
    version.published_by = user
    version.save(update_fields=["status", "published_at", "published_by"])
    return version


@transaction.atomic
def new_version(
    *, scorecard_id: int, change_note: str = "", user: User | None = None
) -> ScorecardVersion:
    """A draft copy (band limits and measures) of the latest version, numbered next.

    When the scorecard already has a draft, that draft is returned (its change note updated
    when one is given): there is at most one version being edited.
    """
    card = Scorecard.objects.select_for_update().filter(pk=scorecard_id).first()
    if card is None:
        raise ScorecardError("scorecard_id", _("There is no such scorecard."))
    draft = card.versions.filter(status=VersionStatus.DRAFT).first()
    if draft is not None:
        if change_note:
            draft.change_note = change_note[:500]
            draft.save(update_fields=["change_note"])
        return draft
    latest = card.versions.order_by("-number").first()
    number = (card.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    draft = ScorecardVersion.objects.create(
        scorecard=card,
        number=number,
        good_from=latest.good_from if latest else 70.0,
        watch_from=latest.watch_from if latest else 40.0,
        change_note=(change_note or "")[:500],
    )
    if latest is not None:
        _write_measures(draft, measure_inputs(latest))
    return draft


def published_version(scorecard_id: int) -> ScorecardVersion | None:
    """The scorecard's published version, if any."""
    return (
        ScorecardVersion.objects.filter(scorecard_id=scorecard_id, status=VersionStatus.PUBLISHED)
        .select_related("scorecard")
        .first()
    )
