"""Scorecards: defaults, drafts, validation naming the field, publishing and new versions."""

from typing import Any

import pytest
from django.utils import translation

from kizuna.health.models import Mapping, MeasureSource, Scorecard, ScorecardVersion
from kizuna.health.scorecards import (
    DEFAULT_SCORECARDS,
    MeasureInput,
    ScorecardError,
    _checked_measures,
    create_scorecard,
    ensure_default_scorecards,
    new_version,
    publish_version,
    save_draft,
)

pytestmark = pytest.mark.django_db

SEATS = MeasureInput(
    key="seats",
    label="Seats",
    source=MeasureSource.METRIC,
    metric_key="seat_utilisation_28d",
    weight=2,
    thresholds=[(0, 0), (0.8, 100)],
)


def draft_of(card: Scorecard) -> ScorecardVersion:
    return ScorecardVersion.objects.get(scorecard=card, status="draft")


def test_default_scorecards_are_published_once_with_their_measures() -> None:
    assert ensure_default_scorecards() == 2
    assert ensure_default_scorecards() == 0
    standard = ScorecardVersion.objects.get(scorecard__name="Standard")
    tech = ScorecardVersion.objects.get(scorecard__name="Tech touch")
    assert (standard.status, tech.status) == ("published", "published")
    assert tech.scorecard.touch_model == "tech"
    assert tech.scorecard.priority < standard.scorecard.priority  # tried first
    standard_keys = set(standard.measures.values_list("key", flat=True))
    tech_keys = set(tech.measures.values_list("key", flat=True))
    assert {"days_since_touch", "sentiment"} <= standard_keys
    assert not {"days_since_touch", "sentiment"} & tech_keys
    assert tech_keys < standard_keys
    # Every default would pass the editor's checks (metric keys exist by default).
    for spec in DEFAULT_SCORECARDS:
        assert len(_checked_measures(spec["measures"])) == len(spec["measures"])


def test_a_new_scorecard_has_an_empty_draft_that_cannot_be_published_empty() -> None:
    card = create_scorecard(name="Enterprise", segment="enterprise", priority=10)
    draft = draft_of(card)
    assert (draft.number, draft.measures.count()) == (1, 0)
    with pytest.raises(ScorecardError) as error:
        publish_version(version_id=draft.pk)
    assert error.value.field == "measures"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"weight": 0}, "measures[0].weight", "greater than 0"),
        ({"weight": -1}, "measures[0].weight", "greater than 0"),
        ({"thresholds": [(0.8, 100), (0, 0)]}, "measures[0].thresholds[1]", "ascending"),
        ({"thresholds": [(0, 0), (0.8, 120)]}, "measures[0].thresholds[1]", "between 0 and 100"),
        ({"thresholds": [(0, 0)]}, "measures[0].thresholds", "at least two"),
        ({"metric_key": "seat_utilization_28d"}, "measures[0].metric_key", "no metric"),
        ({"metric_key": ""}, "measures[0].metric_key", "Choose a metric"),
        ({"source": "gut_feeling"}, "measures[0].source", "Unknown source"),
        ({"key": "a b"}, "measures[0].key", "letters, digits"),
        ({"mapping": "rank"}, "measures[0].mapping", "Unknown mapping"),
    ],
)
def test_a_bad_measure_is_refused_naming_its_field(
    change: dict[str, Any], field: str, message: str
) -> None:
    card = create_scorecard(name="X")
    bad = MeasureInput(**{**SEATS.__dict__, **change})
    with translation.override("en"), pytest.raises(ScorecardError) as error:
        save_draft(version_id=draft_of(card).pk, good_from=70, watch_from=40, measures=[bad])
    assert error.value.field == field
    assert message in error.value.message


def test_band_limits_and_duplicate_keys_are_checked() -> None:
    card = create_scorecard(name="X")
    draft = draft_of(card)
    with translation.override("en"), pytest.raises(ScorecardError) as error:
        save_draft(version_id=draft.pk, good_from=40, watch_from=40, measures=[SEATS])
    assert error.value.field == "good_from"
    with pytest.raises(ScorecardError) as error:
        save_draft(version_id=draft.pk, good_from=70, watch_from=40, measures=[SEATS, SEATS])
    assert error.value.field == "measures[1].key"
    with pytest.raises(ScorecardError) as error:
        create_scorecard(name="Y", touch_model="medium")
    assert error.value.field == "touch_model"


def test_a_percentile_measure_needs_no_thresholds() -> None:
    card = create_scorecard(name="X")
    breadth = MeasureInput(
        key="breadth",
        label="Breadth",
        source=MeasureSource.METRIC,
        metric_key="feature_breadth_28d",
        mapping=Mapping.PERCENTILE,
        higher_is_better=False,
    )
    version = save_draft(
        version_id=draft_of(card).pk, good_from=70, watch_from=40, measures=[breadth]
    )
    measure = version.measures.get()
    assert (measure.mapping, measure.thresholds, measure.higher_is_better) == (
        "percentile",
        [],
        False,
    )


def test_publishing_freezes_the_version_and_a_new_version_copies_it() -> None:
    card = create_scorecard(name="X")
    first = save_draft(version_id=draft_of(card).pk, good_from=75, watch_from=45, measures=[SEATS])
    publish_version(version_id=first.pk)
    with pytest.raises(ScorecardError) as error:
        save_draft(version_id=first.pk, good_from=70, watch_from=40, measures=[SEATS])
    assert error.value.field == "version_id"
    second = new_version(scorecard_id=card.pk, change_note="heavier seats")
    assert (second.number, second.status, second.change_note) == (2, "draft", "heavier seats")
    assert (second.good_from, second.watch_from) == (75, 45)
    copied = second.measures.get()
    assert (copied.key, copied.weight, copied.thresholds) == ("seats", 2, [[0, 0], [0.8, 100]])
    assert new_version(scorecard_id=card.pk).pk == second.pk  # one draft at a time
    publish_version(version_id=second.pk)
    statuses = dict(ScorecardVersion.objects.filter(scorecard=card).values_list("number", "status"))
    assert statuses == {1: "retired", 2: "published"}
