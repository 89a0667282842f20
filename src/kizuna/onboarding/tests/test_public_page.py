"""The customer's plan page over HTTP: no login, the link's language, no staff data, safe links,
ticking off customer milestones; and the staff panel that creates and revokes the links."""

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from django.core import signing
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Contact
from kizuna.onboarding import links
from kizuna.onboarding.models import (
    CompletedVia,
    MilestoneStatus,
    OnboardingPlan,
    PlanLink,
    PlanMilestone,
    PlanTask,
    SuccessGoal,
)
from kizuna.onboarding.plans import complete_milestone
from kizuna.onboarding.tests.test_links import make_plan, mark_done, step

pytestmark = pytest.mark.django_db


def _url(token: str) -> str:
    return reverse("onboarding:public-plan", args=[token])


def _tick_url(token: str, pm: PlanMilestone) -> str:
    return reverse("onboarding:public-milestone-done", args=[token, pm.pk])


def _ja_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


@pytest.fixture
def csm(make_user: Callable[..., User]) -> User:
    user = make_user(
        Role.ONBOARDING_CSM, username="nokamoto", first_name="Naoto", last_name="Okamoto"
    )
    user.email = "naoto.okamoto@vendor.example"
    user.save()
    return user


def _shared_plan(
    csm: User, *, language: str = "en", name: str = "Acme"
) -> tuple[OnboardingPlan, str]:
    """A plan whose kickoff is done: next are the customer's "Invite your users" and "Upload your
    logo" (optional); required: kickoff, invite, training, so progress is 1/3 = 33%."""
    plan = make_plan(name)
    plan.customer.onboarding_owner = csm
    plan.customer.save()
    mark_done(step(plan, "kickoff"))
    _link, token = links.create_link(plan, language=language, contact_name="Ms Tanaka", actor=csm)
    return plan, token


def test_the_page_opens_without_login_in_the_links_language_with_staged_next_steps(
    csm: User,
) -> None:
    plan, token = _shared_plan(csm, language="en")
    invite, logo, kickoff = step(plan, "invite"), step(plan, "logo"), step(plan, "kickoff")

    response = Client().get(_url(token))

    assert response.status_code == 200
    assert response["Content-Language"] == "en"
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "Acme" in html
    assert "Prepared for Ms Tanaka." in html
    assert "Naoto Okamoto" in html
    assert 'id="progress-percent">33%<' in html
    assert "1 of 3 required steps done." in html
    # Next steps: the current phase's open milestones, with resources in the link's language.
    assert f'id="step-{invite.pk}"' in html
    assert f'id="step-{logo.pk}"' in html
    assert "How to invite users" in html
    assert "ユーザー招待の手順" not in html
    # The customer ticks their own open milestones, never the CSM's.
    assert f'data-tick="{invite.pk}"' in html
    assert f'data-tick="{logo.pk}"' in html
    assert f'data-tick="{kickoff.pk}"' not in html
    # The later phase is a title only: neither its milestones nor their resources.
    assert "Rollout" in html
    assert "Admin training" not in html
    # Dates in English, and the visit is remembered.
    assert _ja_date(invite.due_date) not in html
    assert PlanLink.objects.get(plan=plan).last_opened_at is not None


def test_the_language_follows_the_link_and_can_be_switched_for_the_page_only(csm: User) -> None:
    plan, token = _shared_plan(csm, language="ja")
    invite = step(plan, "invite")
    client = Client()

    japanese = client.get(_url(token)).content.decode()
    english = client.get(_url(token), {"lang": "en"})

    assert '<html lang="ja">' in japanese
    assert "ユーザー招待の手順" in japanese
    assert "How to invite users" not in japanese
    assert _ja_date(invite.due_date) in japanese
    assert english["Content-Language"] == "en"
    assert "How to invite users" in english.content.decode()
    assert "kizuna_language" not in english.cookies  # the visitor's own language is untouched
    # An unknown language falls back to the link's.
    assert '<html lang="ja">' in client.get(_url(token), {"lang": "fr"}).content.decode()


def test_the_page_is_private_uncached_unindexed_and_scriptless(csm: User) -> None:
    _plan, token = _shared_plan(csm)

    response = Client().get(_url(token))

    # Never the address (and its token) to another site; same-origin keeps the form posts'
    # Origin header, which no-referrer would turn into "null" and CSRF would refuse.
    assert response["Referrer-Policy"] == "same-origin"
    assert '<meta name="referrer" content="same-origin">' in response.content.decode()
    assert "noindex" in response["X-Robots-Tag"]
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
    assert "Content-Security-Policy" in response
    assert "<script" not in response.content.decode()
    assert 'rel="noopener noreferrer"' in response.content.decode()


def test_no_staff_only_data_reaches_the_customer(csm: User) -> None:
    plan, token = _shared_plan(csm)
    OnboardingPlan.objects.filter(pk=plan.pk).update(
        kickoff_notes="SECRET-KICKOFF-NOTES",
        desired_outcomes="SECRET-OUTCOMES",
        current_issues="SECRET-ISSUES",
        stakeholders="SECRET-STAKEHOLDERS",
    )
    PlanMilestone.objects.filter(pk=step(plan, "invite").pk).update(note="SECRET-MILESTONE-NOTE")
    PlanMilestone.objects.filter(pk=step(plan, "logo").pk).update(
        status=MilestoneStatus.BLOCKED, blocked_reason="SECRET-BLOCKED-REASON"
    )
    PlanTask.objects.create(plan=plan, title="SECRET-FOLLOW-UP", due_date=timezone.localdate())
    plan.version.program.name = "SECRET-PROGRAM-NAME"
    plan.version.program.save()
    SuccessGoal.objects.create(
        customer=plan.customer,
        plan=plan,
        title="Every store records attendance",
        kind="checklist",
        checklist=[{"text": "Store A live", "done": True}, {"text": "Store B live", "done": False}],
        due_date=timezone.localdate() + timedelta(days=30),
    )

    html = Client().get(_url(token)).content.decode()

    for secret in (
        "SECRET-KICKOFF-NOTES",
        "SECRET-OUTCOMES",
        "SECRET-ISSUES",
        "SECRET-STAKEHOLDERS",
        "SECRET-MILESTONE-NOTE",
        "SECRET-BLOCKED-REASON",
        "SECRET-FOLLOW-UP",
        "SECRET-PROGRAM-NAME",
        "naoto.okamoto@vendor.example",
        "nokamoto",  # the CSM's username
    ):
        assert secret not in html, secret
    assert "Naoto Okamoto" in html
    assert "Every store records attendance" in html
    assert "Store B live" in html
    assert f'data-tick="{step(plan, "logo").pk}"' not in html  # blocked: not tickable


@pytest.mark.parametrize("damage", ["tamper", "foreign", "expire", "revoke"])
def test_a_bad_link_shows_a_friendly_page_in_both_languages_and_no_plan(
    csm: User, damage: str
) -> None:
    plan, token = _shared_plan(csm)
    link = PlanLink.objects.get(plan=plan)
    expected = 404
    if damage == "tamper":
        token = token[:-2] + ("xy" if not token.endswith("xy") else "yz")
    elif damage == "foreign":
        token = signing.dumps({"link": link.pk, "plan": plan.pk}, salt="another.purpose")
    elif damage == "expire":
        PlanLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(hours=1))
        expected = 410
    else:
        links.revoke_link(link, actor=csm)
        expected = 410

    response = Client().get(_url(token))

    assert response.status_code == expected
    html = response.content.decode()
    assert 'lang="ja"' in html
    assert 'lang="en"' in html
    assert "Acme" not in html
    assert "Invite your users" not in html
    assert response["Referrer-Policy"] == "same-origin"
    assert "no-store" in response["Cache-Control"]
    assert PlanLink.objects.get(pk=link.pk).last_opened_at is None


def _csrf_client(token: str) -> tuple[Client, str]:
    """A browser-like client that enforces CSRF, holding the page's CSRF cookie."""
    client = Client(enforce_csrf_checks=True)
    client.get(_url(token))
    return client, client.cookies["csrftoken"].value


def test_the_customer_ticks_off_their_milestone_and_sees_thanks(csm: User) -> None:
    plan, token = _shared_plan(csm)
    invite = step(plan, "invite")
    client, csrf = _csrf_client(token)

    response = client.post(_tick_url(token, invite), {"csrfmiddlewaretoken": csrf}, follow=True)

    assert response.redirect_chain[0][0] == (
        f"{_url(token)}?lang=en&done={invite.pk}#step-{invite.pk}"
    )
    invite.refresh_from_db()
    assert invite.status == MilestoneStatus.DONE
    assert invite.completed_via == CompletedVia.CUSTOMER
    html = response.content.decode()
    assert "Thank you! “Invite your users” is marked as done." in html
    assert 'id="progress-percent">67%<' in html
    assert f'data-tick="{invite.pk}"' not in html


def test_a_tick_without_the_csrf_token_is_refused(csm: User) -> None:
    plan, token = _shared_plan(csm)
    invite = step(plan, "invite")
    client, _csrf = _csrf_client(token)

    response = client.post(_tick_url(token, invite))

    assert response.status_code == 403
    assert PlanMilestone.objects.get(pk=invite.pk).status == MilestoneStatus.NOT_STARTED


def test_a_token_for_one_plan_never_ticks_a_milestone_of_another(csm: User) -> None:
    _plan_a, token_a = _shared_plan(csm, name="Acme")
    plan_b, _token_b = _shared_plan(csm, name="Globex")
    invite_b = step(plan_b, "invite")  # open, customer-owned, its dependency done
    client, csrf = _csrf_client(token_a)

    response = client.post(_tick_url(token_a, invite_b), {"csrfmiddlewaretoken": csrf})

    assert response.status_code == 404
    assert "Globex" not in response.content.decode()
    assert PlanMilestone.objects.get(pk=invite_b.pk).status == MilestoneStatus.NOT_STARTED
    assert not PlanMilestone.objects.filter(plan=plan_b, completed_via=CompletedVia.CUSTOMER)


def test_the_customer_cannot_tick_a_csm_milestone(csm: User) -> None:
    plan = make_plan()
    _link, token = links.create_link(plan, language="en", contact_name="", actor=csm)
    kickoff = step(plan, "kickoff")
    client, csrf = _csrf_client(token)

    response = client.post(_tick_url(token, kickoff), {"csrfmiddlewaretoken": csrf})

    assert response.status_code == 403
    assert "This step is completed by our team" in response.content.decode()
    assert PlanMilestone.objects.get(pk=kickoff.pk).status == MilestoneStatus.NOT_STARTED


def test_an_expired_or_revoked_link_ticks_nothing(csm: User) -> None:
    plan, token = _shared_plan(csm)
    invite = step(plan, "invite")
    client, csrf = _csrf_client(token)
    links.revoke_link(PlanLink.objects.get(plan=plan), actor=csm)

    response = client.post(_tick_url(token, invite), {"csrfmiddlewaretoken": csrf})

    assert response.status_code == 410
    assert PlanMilestone.objects.get(pk=invite.pk).status == MilestoneStatus.NOT_STARTED


def test_a_completed_plan_says_so(csm: User) -> None:
    plan, token = _shared_plan(csm)
    complete_milestone(step(plan, "invite"), via=CompletedVia.STAFF, actor=csm)
    complete_milestone(step(plan, "training"), via=CompletedVia.STAFF, actor=csm)

    html = Client().get(_url(token)).content.decode()

    assert 'id="progress-percent">100%<' in html
    assert 'id="completed-banner"' in html
    assert 'id="plan-completed"' in html


# --- The staff panel -----------------------------------------------------------------------------


HTMX = {"HX-Request": "true"}


def test_the_plan_page_includes_a_panel_that_loads_itself(csm: User) -> None:
    plan = make_plan()
    html = render_to_string("onboarding/public_links_panel.html", {"plan": plan})
    assert f'hx-get="{reverse("onboarding:plan-links", args=[plan.pk])}"' in html


def test_a_csm_creates_a_link_and_sees_its_address_once_created(csm: User) -> None:
    plan = make_plan()
    Contact.objects.create(customer=plan.customer, name="Yui Tanaka", language="en")
    client = Client()
    client.force_login(csm)

    panel = client.get(reverse("onboarding:plan-links", args=[plan.pk])).content.decode()
    assert 'id="create-plan-link"' in panel
    assert 'value="Yui Tanaka"' in panel  # proposed from the customer's contacts
    response = client.post(
        reverse("onboarding:plan-link-create", args=[plan.pk]),
        {"contact_name": "Yui Tanaka", "language": "en", "days": "14"},
        headers=HTMX,
    )

    assert response.status_code == 200
    link = PlanLink.objects.get(plan=plan)
    assert (link.contact_name, link.language, link.created_by) == ("Yui Tanaka", "en", csm)
    assert timedelta(days=13) < link.expires_at - timezone.now() <= timedelta(days=14)
    html = response.content.decode()
    start = html.index('id="plan-link-url">') + len('id="plan-link-url">')
    url = html[start : html.index("<", start)]
    assert url.startswith("http://testserver/onboarding/p/")
    token = url.removeprefix("http://testserver").split("/")[3]
    assert links.resolve_token(token).pk == link.pk
    assert f'id="plan-link-{link.pk}" data-link-state="active"' in html


def test_bad_link_input_is_shown_beside_the_field(csm: User) -> None:
    plan = make_plan()
    client = Client()
    client.force_login(csm)

    response = client.post(
        reverse("onboarding:plan-link-create", args=[plan.pk]),
        {"contact_name": "", "language": "fr", "days": "0"},
        headers=HTMX,
    )

    assert response.status_code == 200  # htmx swaps the panel with the errors in place
    html = response.content.decode()
    assert html.count('class="errorlist') == 2
    assert not PlanLink.objects.exists()


def test_a_viewer_sees_the_links_but_cannot_create_show_or_revoke_them(
    csm: User, make_user: Callable[..., User]
) -> None:
    plan = make_plan()
    link, _token = links.create_link(plan, language="ja", contact_name="Tanaka", actor=csm)
    viewer = Client()
    viewer.force_login(make_user(Role.VIEWER))

    panel = viewer.get(reverse("onboarding:plan-links", args=[plan.pk])).content.decode()
    create = viewer.post(reverse("onboarding:plan-link-create", args=[plan.pk]), {"language": "ja"})
    show = viewer.get(reverse("onboarding:plan-link-url", args=[link.pk]))
    revoke = viewer.post(reverse("onboarding:plan-link-revoke", args=[link.pk]))

    assert "Tanaka" in panel
    assert 'id="create-plan-link"' not in panel
    assert "/revoke/" not in panel
    assert (create.status_code, show.status_code, revoke.status_code) == (403, 403, 403)
    assert PlanLink.objects.count() == 1
    assert PlanLink.objects.get(pk=link.pk).revoked_at is None


def test_a_csm_shows_a_link_again_and_revokes_it(csm: User) -> None:
    plan = make_plan()
    link, _token = links.create_link(plan, language="ja", contact_name="Tanaka", actor=csm)
    client = Client()
    client.force_login(csm)

    shown = client.get(reverse("onboarding:plan-link-url", args=[link.pk])).content.decode()
    token = shown.split('value="http://testserver/onboarding/p/', 1)[1].split("/", 1)[0]
    assert Client().get(_url(token)).status_code == 200
    revoked = client.post(reverse("onboarding:plan-link-revoke", args=[link.pk]), headers=HTMX)

    assert revoked.status_code == 200
    assert f'id="plan-link-{link.pk}" data-link-state="revoked"' in revoked.content.decode()
    assert Client().get(_url(token)).status_code == 410


def test_anonymous_visitors_cannot_reach_the_staff_link_routes(csm: User) -> None:
    plan = make_plan()
    link, _token = links.create_link(plan, language="ja", contact_name="", actor=csm)

    for response in (
        Client().get(reverse("onboarding:plan-links", args=[plan.pk])),
        Client().post(reverse("onboarding:plan-link-create", args=[plan.pk]), {"language": "ja"}),
        Client().get(reverse("onboarding:plan-link-url", args=[link.pk])),
        Client().post(reverse("onboarding:plan-link-revoke", args=[link.pk])),
    ):
        assert response.status_code == 302
        assert reverse("core:login") in response["Location"]
    assert PlanLink.objects.count() == 1


def test_without_htmx_the_new_link_gets_a_page_and_a_revoke_returns_to_the_plan(
    csm: User,
) -> None:
    plan = make_plan()
    client = Client()
    client.force_login(csm)

    created = client.post(
        reverse("onboarding:plan-link-create", args=[plan.pk]),
        {"contact_name": "Tanaka", "language": "ja", "days": ""},
    )
    link = PlanLink.objects.get(plan=plan)
    revoked = client.post(reverse("onboarding:plan-link-revoke", args=[link.pk]))

    assert created.status_code == 200
    html = created.content.decode()
    assert 'id="plan-link-url">http://testserver/onboarding/p/' in html
    assert f'href="{reverse("onboarding:plan", args=[plan.pk])}"' in html
    assert created["Cache-Control"] == "no-store"
    assert revoked.status_code == 302
    assert revoked["Location"] == reverse("onboarding:plan", args=[plan.pk])
    assert PlanLink.objects.get(pk=link.pk).revoked_at is not None
