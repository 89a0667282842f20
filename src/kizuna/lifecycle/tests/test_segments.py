"""Segments: ordered evaluation kept as history, the services behind Settings → Segments, its
pages with the live preview, and the REST API."""

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from kizuna.core.models import ApiToken, TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, Product, Subscription
from kizuna.lifecycle import conditions, segments
from kizuna.lifecycle.models import ChangeSource, Dimension, Segment, StateHistory

AS_OF = dt.date(2026, 6, 15)


@pytest.fixture(autouse=True)
def _english(settings: Any) -> Iterator[None]:
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


def _customer(name: str, employees: int | None = None, segment: str = "", arr: int = 0) -> Customer:
    customer = Customer.objects.create(
        name=name, external_id=name, employee_count=employees, segment=segment
    )
    if arr:
        product, _created = Product.objects.get_or_create(code="core", defaults={"name": "Core"})
        Subscription.objects.create(
            customer=customer,
            product=product,
            mrr=Decimal(arr) / 12,
            start_date=dt.date(2020, 1, 1),
        )
    return customer


@pytest.fixture
def company(db: None) -> dict[str, Customer]:
    """Five customers; ARR from an open-ended subscription started in 2020.

    Alpha 2000 employees, ARR 12M · Beta 300, ARR 12M · Gamma 300 · Delta 40 · Echo unknown.
    Beta and Delta came with imported segments ("ent", "smb").
    """
    made = [
        _customer("Alpha", 2000, arr=12_000_000),
        _customer("Beta", 300, segment="ent", arr=12_000_000),
        _customer("Gamma", 300),
        _customer("Delta", 40, segment="smb"),
        _customer("Echo"),
    ]
    return {customer.name: customer for customer in made}


def _segment_of(customers: dict[str, Customer]) -> dict[str, str]:
    current = dict(Customer.objects.values_list("name", "segment"))
    return {name: current[name] for name in customers}


def _make(key: str, expression: str, **fields: Any) -> Segment:
    saved = segments.save_segment(
        name=key.title(), key=key, expression=expression, as_of=AS_OF, **fields
    )
    return saved.segment


# ---------------------------------------------------------------------------------------
# Evaluation


def test_customers_belong_to_the_first_active_segment_they_match(
    company: dict[str, Customer],
) -> None:
    for key, expression, position in [
        ("enterprise", "arr >= 10000000 or employees >= 1000", 1),
        ("mid", "employees >= 100", 2),
        ("inactive", "true", 3),
    ]:
        Segment.objects.create(
            key=key, name=key, expression=expression, rule=conditions.parse(expression),
            position=position, is_active=key != "inactive",
        )  # fmt: skip
    moved = segments.evaluate_segments(AS_OF)
    assert _segment_of(company) == {
        "Alpha": "enterprise",
        "Beta": "enterprise",  # also matches "mid": the first segment wins
        "Gamma": "mid",
        "Delta": "",  # matches no active segment: its imported "smb" is replaced
        "Echo": "",
    }
    assert moved == 4  # Echo had no segment and still has none
    assert segments.evaluate_segments(AS_OF) == 0


def test_membership_changes_are_kept_as_history_with_the_rule_as_reason(
    company: dict[str, Customer],
) -> None:
    _make("enterprise", "arr >= 10000000")
    beta = company["Beta"]
    rows = list(
        StateHistory.objects.filter(customer=beta, dimension=Dimension.SEGMENT).order_by("id")
    )
    assert [(row.value, row.valid_from, row.valid_to) for row in rows] == [
        ("ent", None, AS_OF),
        ("enterprise", AS_OF, None),
    ]
    assert rows[1].source == ChangeSource.RULE
    assert rows[1].reason == "Matches the rule of segment “Enterprise”"
    delta = StateHistory.objects.get(
        customer=company["Delta"], dimension=Dimension.SEGMENT, valid_to__isnull=True
    )
    assert (delta.value, delta.reason) == ("", "Matches no segment rule")
    entry = TimelineEntry.objects.get(customer=beta, kind=TimelineKind.SEGMENT_CHANGED)
    assert entry.payload["from"] == "ent"
    assert entry.payload["to"] == "enterprise"


def test_without_any_active_segment_imported_values_are_left_alone(
    company: dict[str, Customer],
) -> None:
    assert segments.evaluate_segments(AS_OF) == 0
    assert _segment_of(company)["Beta"] == "ent"
    # A draft (inactive) segment does not wipe the imported values either.
    _make("draft", "employees >= 1", is_active=False)
    assert _segment_of(company) == {
        "Alpha": "", "Beta": "ent", "Gamma": "", "Delta": "smb", "Echo": "",
    }  # fmt: skip


def test_evaluation_is_set_based(db: None) -> None:
    """The same number of queries for 6 customers as for 60."""

    def queries(customers: int) -> int:
        Customer.objects.all().delete()
        Segment.objects.all().delete()
        for number in range(customers):  # a third each: big, mid, none; all move from "old"
            big, mid = number % 3 == 0, number % 3 == 1
            _customer(f"C{number:03}", employees=500 if mid else 10, segment="old",
                      arr=20_000_000 if big else 1_000_000)  # fmt: skip
        for key, expression in [("big", "arr >= 10000000"), ("mid", "employees >= 100")]:
            Segment.objects.create(
                key=key, name=key, expression=expression,
                rule=conditions.parse(expression),
            )  # fmt: skip
        with CaptureQueriesContext(connection) as captured:
            moved = segments.evaluate_segments(AS_OF)
        assert moved == customers
        return len(captured.captured_queries)

    assert queries(6) == queries(60)


# ---------------------------------------------------------------------------------------
# Saving, deleting, ordering


def test_saving_a_segment_makes_a_key_puts_it_last_and_applies_it_at_once(
    company: dict[str, Customer], make_user: Callable[..., User]
) -> None:
    manager = make_user(Role.CS_MANAGER)
    first = segments.save_segment(
        name="Enterprise", expression="arr >= 10000000", actor=manager, as_of=AS_OF
    )
    assert first.segment.key == "enterprise"
    assert first.moved == 3  # Alpha and Beta in, Delta out of its imported "smb"
    second = segments.save_segment(name="Enterprise", expression="employees >= 100", as_of=AS_OF)
    assert second.segment.key == "enterprise-2"
    assert second.segment.position > first.segment.position
    japanese = segments.save_segment(name="中堅", expression="false", as_of=AS_OF)
    assert japanese.segment.key == "segment"
    assert _segment_of(company)["Gamma"] == "enterprise-2"
    assert (
        StateHistory.objects.get(
            customer=company["Alpha"], valid_to__isnull=True, dimension=Dimension.SEGMENT
        ).actor
        == manager
    )
    assert first.segment.rule == {"field": "arr", "op": ">=", "value": 10000000}


def test_editing_a_segment_keeps_its_key_and_re_evaluates(company: dict[str, Customer]) -> None:
    segment = _make("big", "employees >= 1000")
    assert _segment_of(company)["Gamma"] == ""
    saved = segments.save_segment(
        segment=segment, name="Bigger", key="ignored", expression="employees >= 300", as_of=AS_OF
    )
    assert saved.segment.key == "big"
    assert saved.moved == 2  # Beta and Gamma
    assert _segment_of(company)["Gamma"] == "big"
    segment.refresh_from_db()
    assert (segment.name, segment.expression) == ("Bigger", "employees >= 300")


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"name": "", "expression": "true"}, "name", "a segment needs a name"),
        ({"name": "X", "expression": "emploees > 1"}, "expression", "position 1: unknown field"),
        ({"name": "X", "expression": ""}, "expression", "the rule is empty"),
        ({"name": "X", "key": "Big Ones", "expression": "true"}, "key", "lower-case letters"),
        ({"name": "X", "key": "taken", "expression": "true"}, "key", "with the key “taken” exists"),
    ],
)
def test_invalid_segments_are_refused_naming_the_field(
    db: None, fields: dict[str, Any], field: str, message: str
) -> None:
    Segment.objects.create(key="taken", name="Taken", expression="true", rule={})
    with pytest.raises(segments.SegmentError) as caught:
        segments.save_segment(as_of=AS_OF, **fields)
    assert caught.value.field == field
    assert message in caught.value.message
    assert Segment.objects.count() == 1


def test_a_rule_error_keeps_its_position(db: None) -> None:
    with pytest.raises(segments.SegmentError) as caught:
        segments.save_segment(name="X", expression="arr >= 1 or emploees >= 2", as_of=AS_OF)
    assert caught.value.position == 12


def test_deleting_a_segment_moves_its_members_to_the_next_match_or_none(
    company: dict[str, Customer],
) -> None:
    _make("enterprise", "arr >= 10000000")
    _make("mid", "employees >= 300")
    assert _segment_of(company)["Beta"] == "enterprise"
    moved = segments.delete_segment(key="enterprise", as_of=AS_OF)
    assert moved == 2
    assert _segment_of(company) == {"Alpha": "mid", "Beta": "mid", "Gamma": "mid",
                                    "Delta": "", "Echo": ""}  # fmt: skip
    # Deleting the last segment empties its members instead of leaving a dead key.
    assert segments.delete_segment(key="mid", as_of=AS_OF) == 3
    assert set(_segment_of(company).values()) == {""}
    with pytest.raises(segments.SegmentError):
        segments.delete_segment(key="mid", as_of=AS_OF)


def test_deactivating_the_only_segment_empties_it(company: dict[str, Customer]) -> None:
    segment = _make("big", "employees >= 1000")
    assert _segment_of(company)["Alpha"] == "big"
    segments.save_segment(
        segment=segment, name="Big", expression="employees >= 1000", is_active=False, as_of=AS_OF
    )
    assert _segment_of(company)["Alpha"] == ""


def test_order_decides_membership(company: dict[str, Customer]) -> None:
    _make("enterprise", "arr >= 10000000")
    _make("mid", "employees >= 300")
    assert _segment_of(company)["Beta"] == "enterprise"
    assert segments.move_segment(key="mid", offset=-1, as_of=AS_OF) == 2  # Alpha and Beta
    assert list(Segment.objects.values_list("key", flat=True)) == ["mid", "enterprise"]
    assert _segment_of(company)["Beta"] == "mid"
    assert segments.move_segment(key="mid", offset=-1, as_of=AS_OF) == 0  # already first
    assert segments.reorder(keys=["enterprise"], as_of=AS_OF) == 2
    assert list(Segment.objects.values_list("key", flat=True)) == ["enterprise", "mid"]
    with pytest.raises(segments.SegmentError, match="nope"):
        segments.reorder(keys=["nope"], as_of=AS_OF)


def test_segment_counts_come_from_the_customers(company: dict[str, Customer]) -> None:
    assert segments.segment_counts() == {"": 3, "ent": 1, "smb": 1}
    _make("mid", "employees >= 300")
    assert segments.segment_counts() == {"": 2, "mid": 3}


# ---------------------------------------------------------------------------------------
# Preview


def test_preview_counts_matches_members_and_moves(company: dict[str, Customer]) -> None:
    enterprise = _make("enterprise", "arr >= 10000000")
    # A new, last segment: Beta and Gamma match, but Beta stays in the earlier "enterprise".
    result = segments.preview("employees >= 300 and employees < 1000", as_of=AS_OF)
    assert (result.count, result.total, result.members) == (2, 5, 1)
    assert (result.moving_in, result.moving_out) == (1, 0)
    assert [c.name for c in result.sample] == ["Beta", "Gamma"]
    assert [c.name for c in result.moving_in_sample] == ["Gamma"]
    assert result.ok
    # Editing "enterprise" itself: Alpha stays, Beta leaves, Gamma joins.
    result = segments.preview("employees >= 1000 or employees = 300", segment=enterprise)
    assert (result.count, result.members, result.moving_in, result.moving_out) == (3, 3, 1, 0)
    result = segments.preview("employees >= 1000", segment=enterprise, as_of=AS_OF)
    assert (result.count, result.moving_in, result.moving_out) == (1, 0, 1)
    assert [c.name for c in result.moving_out_sample] == ["Beta"]


def test_preview_shows_at_most_twenty_matches_by_name(db: None) -> None:
    for number in range(25):
        _customer(f"Customer {number:02}", employees=number)
    result = segments.preview("employees >= 3", as_of=AS_OF)
    assert (result.count, result.total) == (22, 25)
    assert len(result.sample) == 20
    assert result.sample[0].name == "Customer 03"


def test_preview_of_a_broken_rule_gives_the_error_and_its_position(
    company: dict[str, Customer],
) -> None:
    result = segments.preview("arr >= 10000000 or emploees >= 1000")
    assert not result.ok
    assert result.position == 19
    assert result.error.startswith("position 20: unknown field 'emploees'")
    assert result.total == 5


# ---------------------------------------------------------------------------------------
# Pages


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def manager(make_user: Callable[..., User]) -> Client:
    return _client(make_user(Role.CS_MANAGER))


@pytest.mark.parametrize("role", [Role.ADOPTION_CSM, Role.VIEWER])
def test_only_those_who_manage_the_lifecycle_see_and_change_segments(
    company: dict[str, Customer], make_user: Callable[..., User], role: str
) -> None:
    segment = _make("big", "employees >= 1000")
    client = _client(make_user(role))
    for method, url, data in [
        ("get", reverse("lifecycle:segments"), {}),
        ("get", reverse("lifecycle:segment-create"), {}),
        ("post", reverse("lifecycle:segment-create"), {"name": "X", "expression": "true"}),
        ("get", reverse("lifecycle:segment-edit", args=[segment.pk]), {}),
        ("post", reverse("lifecycle:segment-preview"), {"expression": "true"}),
        ("post", reverse("lifecycle:segment-move", args=[segment.pk]), {"direction": "up"}),
        ("post", reverse("lifecycle:segment-delete", args=[segment.pk]), {}),
    ]:
        response = getattr(client, method)(url, data)
        assert response.status_code == 403, url
    assert Segment.objects.count() == 1


def test_the_list_shows_order_rules_and_members(
    company: dict[str, Customer], manager: Client
) -> None:
    _make("enterprise", "arr >= 10000000 or employees >= 1000")
    _make("mid", "employees >= 100")
    page = manager.get(reverse("lifecycle:segments")).content.decode()
    assert page.index('id="segment-enterprise"') < page.index('id="segment-mid"')
    assert "arr &gt;= 10000000 or employees &gt;= 1000" in page
    enterprise_row = page[page.index('id="segment-enterprise"') :]
    assert '<td class="members">2</td>' in enterprise_row[: enterprise_row.index("</tr>")]
    mid_row = page[page.index('id="segment-mid"') :]
    assert '<td class="members">1</td>' in mid_row[: mid_row.index("</tr>")]
    none_row = page[page.index('id="segment-none"') :]
    assert '<td class="members">2</td>' in none_row[: none_row.index("</tr>")]
    assert reverse("lifecycle:segments") in page  # the Settings tab


def test_an_empty_list_says_imported_values_are_kept(
    company: dict[str, Customer], manager: Client
) -> None:
    page = manager.get(reverse("lifecycle:segments")).content.decode()
    assert "No segment is defined yet. The 5 customers keep the segment" in page


def test_creating_a_segment_applies_it_and_reports_the_moves(
    company: dict[str, Customer], manager: Client
) -> None:
    response = manager.post(
        reverse("lifecycle:segment-create"),
        {
            "name": "Enterprise",
            "key": "",
            "expression": "arr >= 10000000 or employees >= 1000",
            "description": "Large accounts",
            "is_active": "on",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("lifecycle:segments")
    page = response.content.decode()
    assert "Segment “Enterprise” saved. 3 customers changed segment." in page
    segment = Segment.objects.get()
    assert (segment.key, segment.description, segment.is_active) == (
        "enterprise",
        "Large accounts",
        True,
    )
    assert _segment_of(company)["Beta"] == "enterprise"


def test_the_editor_shows_rule_errors_inline_with_their_position(
    company: dict[str, Customer], manager: Client
) -> None:
    response = manager.post(
        reverse("lifecycle:segment-create"),
        {"name": "Enterprise", "expression": "arr >= 10000000 or emploees >= 1000"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert (
        "position 20: unknown field &#x27;emploees&#x27; (did you mean &#x27;employees&#x27;?)"
        in page
    )
    assert "<mark>e</mark>mploees" in page  # the preview marks where
    assert not Segment.objects.exists()


def test_the_editor_of_a_segment_fixes_its_key(
    company: dict[str, Customer], manager: Client
) -> None:
    segment = _make("big", "employees >= 1000")
    url = reverse("lifecycle:segment-edit", args=[segment.pk])
    page = manager.get(url).content.decode()
    assert 'name="key"' in page
    assert "disabled" in page
    assert "employees &gt;= 1000</textarea>" in page
    assert 'id="preview-count"><strong>1</strong> of 5 customers match' in page
    response = manager.post(
        url, {"name": "Big", "key": "other", "expression": "employees >= 300", "is_active": "on"}
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert (segment.key, segment.expression) == ("big", "employees >= 300")


def test_the_live_preview_fragment(company: dict[str, Customer], manager: Client) -> None:
    url = reverse("lifecycle:segment-preview")
    fragment = manager.post(url, {"expression": "employees >= 300"}).content.decode()
    assert fragment.startswith('<div id="segment-preview"')
    assert "<strong>3</strong> of 5 customers match this rule." in fragment
    assert "3 move in" in fragment
    for name in ("Alpha", "Beta", "Gamma"):
        assert f'">{name}</a>' in fragment
    assert reverse("customers:detail", args=[company["Alpha"].pk]) in fragment
    assert "Delta" not in fragment
    broken = manager.post(url, {"expression": "employees >= "}).content.decode()
    assert 'id="preview-error"' in broken
    assert "position 14: expected a value" in broken
    empty = manager.post(url, {"expression": " "}).content.decode()
    assert "Write a rule to see which customers match. 5 customers in all." in empty


def test_the_preview_of_a_segment_being_edited_counts_who_moves_out(
    company: dict[str, Customer], manager: Client
) -> None:
    segment = _make("big", "employees >= 300")
    fragment = manager.post(
        reverse("lifecycle:segment-preview"),
        {"expression": "employees >= 1000", "segment": str(segment.pk)},
    ).content.decode()
    assert "<strong>1</strong> of 5 customers match" in fragment
    assert "0 move in" in fragment
    assert "2 move out" in fragment


def test_moving_and_deleting_from_the_list(company: dict[str, Customer], manager: Client) -> None:
    _make("enterprise", "arr >= 10000000")
    mid = _make("mid", "employees >= 300")
    response = manager.post(reverse("lifecycle:segment-move", args=[mid.pk]), {"direction": "up"})
    assert response.status_code == 302
    assert list(Segment.objects.values_list("key", flat=True)) == ["mid", "enterprise"]
    assert _segment_of(company)["Beta"] == "mid"
    confirm = manager.get(reverse("lifecycle:segment-delete", args=[mid.pk])).content.decode()
    assert "Its 3 customers will move to the next segment" in confirm
    response = manager.post(reverse("lifecycle:segment-delete", args=[mid.pk]), follow=True)
    assert "Segment “mid” deleted." not in response.content.decode()  # names, not keys
    assert "Segment “Mid” deleted. 3 customers changed segment." in response.content.decode()
    assert _segment_of(company)["Beta"] == "enterprise"


def test_the_field_reference_is_on_the_editor(manager: Client) -> None:
    page = manager.get(reverse("lifecycle:segment-create")).content.decode()
    for field in ("arr", "employees", "days_to_renewal", "revenue_to_date", "metric.&lt;key&gt;"):
        assert f"<code>{field}</code>" in page
    assert "<code>health</code>" in page
    assert 'hx-post="' + reverse("lifecycle:segment-preview") + '"' in page
    assert 'hx-trigger="keyup changed delay:400ms' in page


# ---------------------------------------------------------------------------------------
# API (through /api/v1 once mounted; until then through the same router on a local API)


@pytest.fixture
def api(settings: Any, db: None) -> Callable[[str], Client]:
    """A token client of the given role; the segments API is reachable at /api/v1/segments."""

    def make(role: str = Role.CS_MANAGER) -> Client:
        user = User.objects.create_user(username=f"api-{role}-{User.objects.count()}", role=role)
        _token, raw = ApiToken.issue(user=user, name="tests")
        return Client(headers={"Authorization": f"Bearer {raw}"})

    return make


def test_api_creates_lists_reads_updates_and_deletes_segments(
    company: dict[str, Customer], api: Callable[[str], Client]
) -> None:
    client = api(Role.CS_MANAGER)
    created = client.post(
        "/api/v1/segments",
        {"name": "Enterprise", "expression": "arr >= 1e7 or employees >= 1000"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["key"] == "enterprise"
    assert body["rule"] == {
        "any": [
            {"field": "arr", "op": ">=", "value": 10000000},
            {"field": "employees", "op": ">=", "value": 1000},
        ]
    }
    assert (body["members"], body["moved"]) == (2, 3)
    tree = client.post(
        "/api/v1/segments",
        {"name": "Mid", "key": "mid", "rule": {"field": "employees", "op": ">=", "value": 100}},
        content_type="application/json",
    )
    assert tree.status_code == 201
    assert tree.json()["expression"] == "employees >= 100"
    listed = api(Role.VIEWER).get("/api/v1/segments").json()
    assert [(s["key"], s["members"]) for s in listed] == [("enterprise", 2), ("mid", 1)]
    assert client.get("/api/v1/segments/mid").json()["name"] == "Mid"
    assert client.get("/api/v1/segments/nope").status_code == 404
    updated = client.put(
        "/api/v1/segments/mid",
        {"name": "Mid-market", "expression": "employees >= 40", "description": "d"},
        content_type="application/json",
    )
    assert updated.status_code == 200
    assert (updated.json()["members"], updated.json()["moved"]) == (2, 1)
    deleted = client.delete("/api/v1/segments/mid")
    assert deleted.json() == {"key": "mid", "moved": 2}
    assert not Segment.objects.filter(key="mid").exists()


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"name": "X", "expression": "arr >= 1 or emploees >= 2"}, "expression",
         "position 13: unknown field 'emploees' (did you mean 'employees'?)"),
        ({"name": "X", "rule": {"all": [{"field": "arr", "op": "like", "value": 1}]}}, "rule",
         "all[0].op: unknown operator 'like'"),
        ({"name": "X", "expression": "true", "rule": {}}, "rule", "either expression or rule"),
        ({"name": "X"}, "expression", "a rule is needed"),
        ({"name": "X", "key": "Not A Slug", "expression": "true"}, "key", "lower-case letters"),
        ({"name": " ", "expression": "true"}, "name", "a segment needs a name"),
        ({"name": "a\x00", "expression": "true"}, "name", "cannot contain NUL"),
    ],
)  # fmt: skip
def test_api_refuses_bad_segments_naming_the_field(
    db: None, api: Callable[[str], Client], payload: dict[str, Any], field: str, message: str
) -> None:
    response = api(Role.CS_MANAGER).post(
        "/api/v1/segments", payload, content_type="application/json"
    )
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert list(detail) == [field]
    assert message in detail[field][0]


def test_api_preview(company: dict[str, Customer], api: Callable[[str], Client]) -> None:
    client = api(Role.CS_MANAGER)
    response = client.post(
        "/api/v1/segments/preview",
        {"expression": "employees >= 300", "as_of": "2026-06-15"},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["total"], body["moving_in"], body["moving_out"]) == (3, 5, 3, 0)
    assert [c["name"] for c in body["sample"]] == ["Alpha", "Beta", "Gamma"]
    assert body["sample"][1]["segment"] == "ent"
    by_tree = client.post(
        "/api/v1/segments/preview",
        {"rule": {"not": {"field": "employees", "op": "is empty"}}},
        content_type="application/json",
    ).json()
    assert by_tree["count"] == 4
    assert by_tree["expression"] == "not (employees is empty)"
    bad = client.post(
        "/api/v1/segments/preview", {"expression": "stage = 'adoptoin'"},
        content_type="application/json",
    )  # fmt: skip
    assert bad.status_code == 400
    assert "did you mean 'adoption'" in bad.json()["detail"]["expression"][0]
    unknown = client.post(
        "/api/v1/segments/preview", {"expression": "true", "segment": "nope"},
        content_type="application/json",
    )  # fmt: skip
    assert unknown.status_code == 400
    assert list(unknown.json()["detail"]) == ["segment"]


@pytest.mark.parametrize("role", [Role.ADOPTION_CSM, Role.VIEWER])
def test_api_writes_need_the_lifecycle_permission(
    company: dict[str, Customer], api: Callable[[str], Client], role: str
) -> None:
    _make("big", "employees >= 1000")
    client = api(role)
    assert client.get("/api/v1/segments").status_code == 200
    for method, url, payload in [
        ("post", "/api/v1/segments", {"name": "X", "expression": "true"}),
        ("put", "/api/v1/segments/big", {"name": "X", "expression": "true"}),
        ("delete", "/api/v1/segments/big", None),
        ("post", "/api/v1/segments/preview", {"expression": "true"}),
    ]:
        kwargs = {"content_type": "application/json"} if payload is not None else {}
        args = (url, payload) if payload is not None else (url,)
        assert getattr(client, method)(*args, **kwargs).status_code == 403, (method, url)
    assert Segment.objects.get().name == "Big"


def test_evaluation_uses_today_by_default(company: dict[str, Customer]) -> None:
    segments.save_segment(name="Big", expression="employees >= 1000")
    row = StateHistory.objects.get(customer=company["Alpha"], valid_to__isnull=True,
                                   dimension=Dimension.SEGMENT)  # fmt: skip
    assert row.valid_from == timezone.localdate()
