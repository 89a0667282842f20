"""Plan links: signed tokens that open one plan's customer page until they expire or are revoked."""

from collections.abc import Callable
from datetime import date, timedelta
from itertools import count
from typing import Any

import pytest
from django.core import signing
from django.core.exceptions import ValidationError
from django.utils import timezone

from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer
from kizuna.onboarding import links
from kizuna.onboarding.links import LinkError, LinkErrorReason, TickError, TickErrorReason
from kizuna.onboarding.models import (
    CompletedVia,
    Milestone,
    MilestoneStatus,
    OnboardingPlan,
    OnboardingSettings,
    OwnerSide,
    Phase,
    PlanLink,
    PlanMilestone,
    Program,
    ProgramVersion,
    Resource,
    ResourceKind,
    VersionStatus,
)

pytestmark = pytest.mark.django_db

_numbers = count(1)


def make_plan(customer_name: str = "Acme", *, start: date | None = None) -> OnboardingPlan:
    """A plan made by hand: phase "Setup" (kickoff by the CSM, then "Invite your users" by the
    customer, which depends on the kickoff, and an optional customer "Upload your logo"), phase
    "Rollout" (admin training by the CSM, with a video). Due dates: start + 3, 7, 10 and 20 days.
    """
    n = next(_numbers)
    start = start or timezone.localdate() - timedelta(days=5)
    program = Program.objects.create(key=f"program-{n}", name=f"Program {n}")
    version = ProgramVersion.objects.create(
        program=program, number=1, status=VersionStatus.PUBLISHED, target_days=30
    )
    setup = Phase.objects.create(version=version, name="Setup", position=1)
    rollout = Phase.objects.create(version=version, name="Rollout", position=2)

    def milestone(
        phase: Phase, key: str, name: str, owner: str, due: int, **extra: object
    ) -> Milestone:
        return Milestone.objects.create(
            version=version,
            phase=phase,
            key=key,
            name=name,
            owner_side=owner,
            due_offset_days=due,
            position=due,
            **extra,
        )

    kickoff = milestone(setup, "kickoff", "Kickoff meeting", OwnerSide.CSM, 3)
    invite = milestone(setup, "invite", "Invite your users", OwnerSide.CUSTOMER, 7)
    invite.depends_on.add(kickoff)
    logo = milestone(setup, "logo", "Upload your logo", OwnerSide.CUSTOMER, 10, required=False)
    training = milestone(rollout, "training", "Admin training", OwnerSide.CSM, 20)
    Resource.objects.create(
        milestone=invite, kind=ResourceKind.MANUAL, title="ユーザー招待の手順",
        url="https://help.example.com/ja/invite", language="ja",
    )  # fmt: skip
    Resource.objects.create(
        milestone=invite, kind=ResourceKind.MANUAL, title="How to invite users",
        url="https://help.example.com/en/invite", language="en",
    )  # fmt: skip
    Resource.objects.create(
        milestone=training, kind=ResourceKind.VIDEO, title="Admin training video",
        url="https://help.example.com/training", language="",
    )  # fmt: skip
    customer = Customer.objects.create(name=customer_name)
    plan = OnboardingPlan.objects.create(
        customer=customer, version=version, start_date=start, target_date=start + timedelta(days=30)
    )
    for template in (kickoff, invite, logo, training):
        PlanMilestone.objects.create(
            plan=plan, milestone=template, due_date=start + timedelta(days=template.due_offset_days)
        )
    return plan


def step(plan: OnboardingPlan, key: str) -> PlanMilestone:
    return PlanMilestone.objects.select_related("milestone").get(plan=plan, milestone__key=key)


def mark_done(pm: PlanMilestone) -> None:
    PlanMilestone.objects.filter(pk=pm.pk).update(
        status=MilestoneStatus.DONE, completed_on=timezone.localdate(), completed_via="staff"
    )


@pytest.fixture
def csm(make_user: Callable[..., User]) -> User:
    return make_user(Role.ONBOARDING_CSM, username="csm", first_name="Naoto", last_name="Okamoto")


def test_a_token_opens_its_link_with_the_plan_and_customer(csm: User) -> None:
    plan = make_plan()
    link, token = links.create_link(plan, language="en", contact_name=" Ms Tanaka ", actor=csm)

    opened = links.resolve_token(token)

    assert opened.pk == link.pk
    assert opened.plan.customer.name == "Acme"
    assert (opened.language, opened.contact_name, opened.created_by) == ("en", "Ms Tanaka", csm)
    assert links.resolve_token(links.link_token(link)).pk == link.pk  # a re-issued token too


def test_links_expire_after_the_configured_days_unless_told_otherwise(csm: User) -> None:
    settings_row = OnboardingSettings.load()
    settings_row.link_days = 30
    settings_row.save()
    plan = make_plan()
    before = timezone.now()

    default, _token = links.create_link(plan, language="ja", contact_name="", actor=csm)
    short, _token = links.create_link(plan, language="ja", contact_name="", actor=csm, days=2)

    assert before + timedelta(days=30) <= default.expires_at <= timezone.now() + timedelta(days=30)
    assert before + timedelta(days=2) <= short.expires_at <= timezone.now() + timedelta(days=2)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"language": "fr"}, "language"),
        ({"days": 0}, "days"),
        ({"days": 367}, "days"),
        ({"contact_name": "x" * 201}, "contact_name"),
    ],
)
def test_bad_link_settings_are_refused_naming_the_field(
    csm: User, fields: dict[str, object], field: str
) -> None:
    plan = make_plan()
    arguments: dict[str, Any] = {"language": "ja", "contact_name": "Tanaka", **fields}
    with pytest.raises(ValidationError) as caught:
        links.create_link(plan, actor=csm, **arguments)
    assert field in caught.value.message_dict
    assert not PlanLink.objects.exists()


def test_a_cancelled_plan_cannot_be_shared_and_its_links_stop_working(csm: User) -> None:
    plan = make_plan()
    _link, token = links.create_link(plan, language="ja", contact_name="", actor=csm)
    OnboardingPlan.objects.filter(pk=plan.pk).update(cancelled_at=timezone.now())
    plan.refresh_from_db()

    with pytest.raises(LinkError) as caught:
        links.resolve_token(token)
    assert caught.value.reason is LinkErrorReason.REVOKED
    with pytest.raises(ValidationError):
        links.create_link(plan, language="ja", contact_name="", actor=csm)


def _tampered(token: str) -> list[str]:
    payload, _timestamp, signature = token.rsplit(":", 2)
    flip = {"A": "B", "B": "A"}
    changed_payload = "".join(flip.get(c, c) for c in payload[:4]) + payload[4:]
    changed_signature = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return [
        token.replace(payload, changed_payload, 1) if changed_payload != payload else "x" + token,
        token[: -len(signature)] + changed_signature,
        token[:-1],
        token + "a",
        "",
        "not-a-token",
        ":::",
    ]


def test_a_changed_or_truncated_token_is_refused_as_a_bad_signature(csm: User) -> None:
    plan = make_plan()
    _link, token = links.create_link(plan, language="ja", contact_name="", actor=csm)
    for bad in _tampered(token):
        with pytest.raises(LinkError) as caught:
            links.resolve_token(bad)
        assert caught.value.reason is LinkErrorReason.BAD_SIGNATURE, bad
        assert caught.value.status == 404


def test_a_token_signed_for_something_else_or_with_another_key_is_refused(csm: User) -> None:
    plan = make_plan()
    link, _token = links.create_link(plan, language="ja", contact_name="", actor=csm)
    payload = {"link": link.pk, "plan": plan.pk}
    other_salt = signing.dumps(payload, salt="kizuna.surveys.answer-link")
    default_salt = signing.dumps(payload)
    other_key = signing.dumps(payload, salt=links.SALT, key="another-secret-key-" * 3)
    for bad in (other_salt, default_salt, other_key):
        with pytest.raises(LinkError) as caught:
            links.resolve_token(bad)
        assert caught.value.reason is LinkErrorReason.BAD_SIGNATURE


def test_a_validly_signed_token_never_opens_another_plan_or_a_deleted_link(csm: User) -> None:
    plan_a, plan_b = make_plan("Acme"), make_plan("Globex")
    link_a, _token = links.create_link(plan_a, language="ja", contact_name="", actor=csm)
    links.create_link(plan_b, language="ja", contact_name="", actor=csm)
    # Even with the key (a token for link A claiming plan B), the row must agree with the token.
    crossed = signing.dumps({"link": link_a.pk, "plan": plan_b.pk}, salt=links.SALT)
    unknown = signing.dumps({"link": 99999, "plan": plan_a.pk}, salt=links.SALT)
    odd = signing.dumps({"link": str(link_a.pk), "plan": plan_a.pk}, salt=links.SALT)
    for token, reason in (
        (crossed, LinkErrorReason.UNKNOWN),
        (unknown, LinkErrorReason.UNKNOWN),
        (odd, LinkErrorReason.BAD_SIGNATURE),
    ):
        with pytest.raises(LinkError) as caught:
            links.resolve_token(token)
        assert caught.value.reason is reason
        assert caught.value.status == 404


def test_an_expired_link_is_gone(csm: User) -> None:
    plan = make_plan()
    link, token = links.create_link(plan, language="ja", contact_name="", actor=csm, days=1)

    assert links.resolve_token(token, now=link.expires_at - timedelta(seconds=1)).pk == link.pk
    with pytest.raises(LinkError) as caught:
        links.resolve_token(token, now=link.expires_at)
    assert caught.value.reason is LinkErrorReason.EXPIRED
    assert caught.value.status == 410
    PlanLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(LinkError):
        links.resolve_token(token)


def test_a_revoked_link_is_gone_at_once_and_revoking_again_changes_nothing(
    csm: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    plan = make_plan()
    link, token = links.create_link(plan, language="ja", contact_name="Tanaka", actor=csm)
    with django_capture_on_commit_callbacks(execute=True):
        links.revoke_link(link, actor=csm)
    first = PlanLink.objects.get(pk=link.pk).revoked_at
    with django_capture_on_commit_callbacks(execute=True):
        links.revoke_link(PlanLink.objects.get(pk=link.pk), actor=csm)

    with pytest.raises(LinkError) as caught:
        links.resolve_token(token)
    assert caught.value.reason is LinkErrorReason.REVOKED
    assert caught.value.status == 410
    assert first is not None
    assert PlanLink.objects.get(pk=link.pk).revoked_at == first
    assert (
        TimelineEntry.objects.filter(kind=links.LINK_REVOKED, customer=plan.customer).count() == 1
    )


def test_sharing_is_written_on_the_customer_timeline(
    csm: User, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    plan = make_plan()
    with django_capture_on_commit_callbacks(execute=True):
        link, _token = links.create_link(plan, language="en", contact_name="Tanaka", actor=csm)
    entry = TimelineEntry.objects.get(customer=plan.customer, kind=links.LINK_SHARED)
    assert entry.actor == csm
    assert "Tanaka" in entry.title
    assert entry.payload == {"plan_id": plan.pk, "link_id": link.pk, "language": "en"}


def test_links_for_plan_lists_each_link_with_its_state(csm: User) -> None:
    plan = make_plan()
    links.create_link(plan, language="ja", contact_name="A", actor=csm)
    expired, _t = links.create_link(plan, language="ja", contact_name="B", actor=csm)
    revoked, _t = links.create_link(plan, language="ja", contact_name="C", actor=csm)
    PlanLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    links.revoke_link(revoked, actor=csm)
    links.create_link(make_plan("Other"), language="ja", contact_name="D", actor=csm)

    rows = links.links_for_plan(plan)

    assert {(row.link.contact_name, row.state) for row in rows} == {
        ("A", links.LinkState.ACTIVE),
        ("B", links.LinkState.EXPIRED),
        ("C", links.LinkState.REVOKED),
    }


def test_the_customer_ticks_their_own_milestone_once_its_dependency_is_done(csm: User) -> None:
    plan = make_plan()
    link, _token = links.create_link(plan, language="ja", contact_name="", actor=csm)
    invite = step(plan, "invite")

    with pytest.raises(TickError) as caught:
        links.tick_milestone(link, invite.pk)  # the kickoff comes first
    assert caught.value.reason is TickErrorReason.NOT_READY
    assert caught.value.status == 409
    mark_done(step(plan, "kickoff"))

    links.tick_milestone(link, invite.pk)

    invite.refresh_from_db()
    assert invite.status == MilestoneStatus.DONE
    assert invite.completed_via == CompletedVia.CUSTOMER
    assert invite.completed_by is None
    links.tick_milestone(link, invite.pk)  # ticking again changes nothing
    assert PlanMilestone.objects.get(pk=invite.pk).completed_on == invite.completed_on


def test_the_customer_cannot_tick_a_csm_milestone_or_a_blocked_one(csm: User) -> None:
    plan = make_plan()
    link, _token = links.create_link(plan, language="ja", contact_name="", actor=csm)
    kickoff, logo = step(plan, "kickoff"), step(plan, "logo")
    PlanMilestone.objects.filter(pk=logo.pk).update(
        status=MilestoneStatus.BLOCKED, blocked_reason="waiting for brand guide"
    )

    with pytest.raises(TickError) as caught:
        links.tick_milestone(link, kickoff.pk)
    assert caught.value.reason is TickErrorReason.NOT_CUSTOMER_OWNED
    assert caught.value.status == 403
    with pytest.raises(TickError) as caught:
        links.tick_milestone(link, logo.pk)
    assert caught.value.reason is TickErrorReason.NOT_READY
    assert PlanMilestone.objects.get(pk=kickoff.pk).status == MilestoneStatus.NOT_STARTED
    assert PlanMilestone.objects.get(pk=logo.pk).status == MilestoneStatus.BLOCKED


def test_a_link_never_reaches_a_milestone_of_another_plan(csm: User) -> None:
    plan_a, plan_b = make_plan("Acme"), make_plan("Globex")
    link_a, _token = links.create_link(plan_a, language="ja", contact_name="", actor=csm)
    logo_b = step(plan_b, "logo")  # customer-owned, open, no dependency: tickable in plan B

    with pytest.raises(TickError) as caught:
        links.tick_milestone(link_a, logo_b.pk)

    assert caught.value.reason is TickErrorReason.NOT_IN_PLAN
    assert caught.value.status == 404
    assert PlanMilestone.objects.get(pk=logo_b.pk).status == MilestoneStatus.NOT_STARTED
