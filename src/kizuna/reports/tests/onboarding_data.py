"""A hand-made onboarding story for the onboarding KPIs in the catalog, CLI, API and Reports.

It extends the story of ``onboarding/tests/test_kpis.py`` (customers A–E on version 1) with a
second version of the same program (F, G in March, H in February). Judged on 2026-06-01.

Program ``std`` "Standard":
  v1, target 60 days: phase Setup: m1 "Account setup" due day 10 (required),
      m2 "Go-live" due day 59 (optional).
  v2, target 45 days: phase Start: k1 "Kickoff" due day 3; phase Setup: m1 "Account setup"
      due day 10, m2 "Go-live" due day 40 (all required).

customer  first start  touch model          owner (onboarding)  plan
A         03-02        high                 csm1                v1, completed 04-15 (target 05-01)
B         03-10        low, high from 03-15 csm1                v1, completed 05-20 (target 05-09)
C         03-20        high                 —                   v1, open (target 05-19)
D         03-25        low                  —                   only a cancelled v1 plan
E         04-05        high                 —                   v1, completed 04-20 (April cohort)
F         03-05        tech                 csm2                v2, completed 04-10 (target 04-19)
G         03-16        low                  csm2                v2, open (target 04-30)
H         02-10        low                  —                   v2, completed 03-20 (target 03-27)

Milestones (done on, days from the plan's start; due):
  A  m1 03-10 (8; due 03-12)       m2 04-15 (44; due 04-30)
  B  m1 03-25 (15; due 03-20 late) m2 05-20 (71; due 05-08 late)
  C  m1 open (due 03-30)           m2 skipped
  E  m1 04-10                      m2 04-20
  F  k1 03-06 (1; due 03-08)  m1 03-20 (15; due 03-15 late)  m2 04-10 (36; due 04-14)
  G  k1 03-18 (2; due 03-19)  m1 open (due 03-26)            m2 open (due 04-25)
  H  k1 02-11 (1)             m1 02-18 (8)                   m2 03-20 (38)

First success goals (achieved on, days from the first start; due):
  A 03-31 (29; due 04-30); a second goal of A (missed) is ignored.  B 05-10 (61; due 04-30:
  late).  C open, due 07-01.  F 03-25 (20; due 04-30).  G missed (due 05-15).  H 03-01 (19;
  due 03-31).  D and E set none.

The March 2026 cohort, judged on 06-01 (every target date has passed):
  completion rate: plans A B C F G (D's only plan is cancelled); on time A, F: 2 / 5; late B;
    not completed C, G. Day 30: 0 / 5; day 60 (starts up to 04-02): A 44, F 36: 2 / 5;
    day 90 (starts up to 03-03): A: 1 / 1.
    v1: A on time of A B C: 1 / 3. v2: F of F G: 1 / 2.
  initial usage (logins of ``write_logins``: A on 03-02, F on 03-08, G on 04-16 = its day 31):
    A, F of A B C D F G: 2 / 6. v2: F of F G: 1 / 2.
  initial outcome achievement: first goals of A B C F G; by their due date A, F: 2 / 5.
    v2: 1 / 2.
  time to first value: days 29 (A), 61 (B), 20 (F): median 29; 3 of 6 reached it.
    Onboarding completed: 44 (A), 71 (B), 36 (F): median 44. v1: 29, 61: median 45, 2 / 3.
  funnel v1 (3 plans): m1 2/3 done, median 11.5, overdue 2 (B late, C open); m2 2/3, median
    57.5, overdue 1 (B); C is stalled at m1 (its first open required milestone, past due).
  funnel v2 (2 plans): k1 2/2, median 1.5, overdue 0; m1 1/2, median 15, overdue 2 (F late,
    G open); m2 1/2, median 36, overdue 1 (G); G is stalled at m1.
  By touch model on 03-01: high A C: 1 / 2; low B D G (plans B G): 0 / 2; tech F: 1 / 1.
    Read on 03-20 instead, B is high: high 1 / 3, low 0 / 1.
  By owner: csm1 A B: 1 / 2; csm2 F G: 1 / 2; no owner C D: 0 / 1.
The February 2026 cohort: H, on time: 1 / 1; first value after 19 days.
"""

from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from kizuna.analytics.models import UsageSettings
from kizuna.core.models import User
from kizuna.customers.models import Customer
from kizuna.onboarding.models import (
    GoalKind,
    GoalStatus,
    Milestone,
    MilestoneStatus,
    OnboardingPlan,
    Phase,
    PlanMilestone,
    Program,
    ProgramVersion,
    SuccessGoal,
    VersionStatus,
)
from kizuna.onboarding.tests.test_kpis import write_logins as write_login_rows
from kizuna.reports.tests.contracts_data import set_state

JUDGED_ON = date(2026, 6, 1)
MARCH = (date(2026, 3, 1), date(2026, 4, 1))
MARCH_ARGS = ["--start", "2026-03-01", "--end", "2026-04-01"]
MARCH_QUERY = "start=2026-03-01&end=2026-04-01"
TOUCH_CHANGE = date(2026, 3, 15)


def d(text: str) -> date:
    return date.fromisoformat(text)


def _version(program: Program, number: int, target_days: int, status: str) -> ProgramVersion:
    return ProgramVersion.objects.create(
        program=program, number=number, target_days=target_days, status=status
    )


def _milestone(
    version: ProgramVersion,
    phase: Phase,
    key: str,
    name: str,
    due: int,
    position: int,
    *,
    required: bool = True,
) -> Milestone:
    return Milestone.objects.create(
        version=version,
        phase=phase,
        key=key,
        name=name,
        due_offset_days=due,
        position=position,
        required=required,
    )


def march_onboarding(csm1: User, csm2: User) -> dict[str, Any]:
    """The story above; returns the program, its versions and the customers by name."""
    program = Program.objects.create(key="std", name="Standard")
    v1 = _version(program, 1, 60, VersionStatus.RETIRED)
    v2 = _version(program, 2, 45, VersionStatus.PUBLISHED)
    setup1 = Phase.objects.create(version=v1, name="Setup", position=1)
    steps1 = {
        "m1": _milestone(v1, setup1, "m1", "Account setup", 10, 1),
        "m2": _milestone(v1, setup1, "m2", "Go-live", 59, 2, required=False),
    }
    start2 = Phase.objects.create(version=v2, name="Start", position=1)
    setup2 = Phase.objects.create(version=v2, name="Setup", position=2)
    steps2 = {
        "k1": _milestone(v2, start2, "k1", "Kickoff", 3, 1),
        "m1": _milestone(v2, setup2, "m1", "Account setup", 10, 1),
        "m2": _milestone(v2, setup2, "m2", "Go-live", 40, 2),
    }
    customers = {
        name: Customer.objects.create(name=name, external_id=name, first_start_date=d(start))
        for name, start in [
            ("A", "2026-03-02"),
            ("B", "2026-03-10"),
            ("C", "2026-03-20"),
            ("D", "2026-03-25"),
            ("E", "2026-04-05"),
            ("F", "2026-03-05"),
            ("G", "2026-03-16"),
            ("H", "2026-02-10"),
        ]
    }
    touch_models = ["high", "low", "high", "low", "high", "tech", "low", "low"]
    for name, touch in zip("ABCDEFGH", touch_models, strict=True):
        set_state(customers[name], touch_model=touch)
    set_state(customers["B"], on=TOUCH_CHANGE, touch_model="high")
    for name, owner in (("A", csm1), ("B", csm1), ("F", csm2), ("G", csm2)):
        set_state(customers[name], onboarding_owner=owner)

    def plan(
        name: str,
        version: ProgramVersion,
        completed: str | None,
        milestones: dict[str, tuple[str, str | None]],
    ) -> None:
        who = customers[name]
        start = who.first_start_date
        assert start is not None
        p = OnboardingPlan.objects.create(
            customer=who,
            version=version,
            start_date=start,
            target_date=start + timedelta(days=version.target_days),
            completed_on=d(completed) if completed else None,
        )
        steps = steps1 if version == v1 else steps2
        for key, (status, done) in milestones.items():
            PlanMilestone.objects.create(
                plan=p,
                milestone=steps[key],
                due_date=start + timedelta(days=steps[key].due_offset_days),
                status=status,
                completed_on=d(done) if done else None,
            )

    done, open_, skipped = (
        MilestoneStatus.DONE,
        MilestoneStatus.IN_PROGRESS,
        MilestoneStatus.SKIPPED,
    )
    plan("A", v1, "2026-04-15", {"m1": (done, "2026-03-10"), "m2": (done, "2026-04-15")})
    plan("B", v1, "2026-05-20", {"m1": (done, "2026-03-25"), "m2": (done, "2026-05-20")})
    plan("C", v1, None, {"m1": (open_, None), "m2": (skipped, None)})
    OnboardingPlan.objects.create(
        customer=customers["D"],
        version=v1,
        start_date=d("2026-03-25"),
        target_date=d("2026-05-24"),
        cancelled_at=timezone.now(),
    )
    plan("E", v1, "2026-04-20", {"m1": (done, "2026-04-10"), "m2": (done, "2026-04-20")})
    plan(
        "F",
        v2,
        "2026-04-10",
        {"k1": (done, "2026-03-06"), "m1": (done, "2026-03-20"), "m2": (done, "2026-04-10")},
    )
    plan("G", v2, None, {"k1": (done, "2026-03-18"), "m1": (open_, None), "m2": (open_, None)})
    plan(
        "H",
        v2,
        "2026-03-20",
        {"k1": (done, "2026-02-11"), "m1": (done, "2026-02-18"), "m2": (done, "2026-03-20")},
    )

    def goal(name: str, position: int, status: str, due: str, achieved: str | None) -> None:
        SuccessGoal.objects.create(
            customer=customers[name],
            title=f"goal {name}{position}",
            kind=GoalKind.CHECKLIST,
            checklist=[{"text": "x", "done": status == GoalStatus.ACHIEVED}],
            due_date=d(due),
            status=status,
            achieved_on=d(achieved) if achieved else None,
            position=position,
        )

    goal("A", 0, GoalStatus.ACHIEVED, "2026-04-30", "2026-03-31")
    goal("A", 1, GoalStatus.MISSED, "2026-04-10", None)
    goal("B", 0, GoalStatus.ACHIEVED, "2026-04-30", "2026-05-10")
    goal("C", 0, GoalStatus.OPEN, "2026-07-01", None)
    goal("F", 0, GoalStatus.ACHIEVED, "2026-04-30", "2026-03-25")
    goal("G", 0, GoalStatus.MISSED, "2026-05-15", None)
    goal("H", 0, GoalStatus.ACHIEVED, "2026-03-31", "2026-03-01")
    return {"program": program, "v1": v1, "v2": v2, "customers": customers}


def write_logins() -> None:
    """One login each: A on 03-02 (its day 0), F on 03-08 (day 3), G on 04-16 (day 31: too
    late); qualifying event: ``login``."""
    usage = UsageSettings.load()
    usage.qualifying_event_types = ["login"]
    usage.save()
    write_login_rows([("A", "2026-03-02"), ("F", "2026-03-08"), ("G", "2026-04-16")])
