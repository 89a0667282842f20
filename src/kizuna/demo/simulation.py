"""The demo company's customers, simulated one at a time with cause and effect (see config.py).

``Simulator(config, seed=…, today=…, customers=…).customers()`` yields one ``SimulatedCustomer``
after another: the company, its contacts, its contract rows, what happened to it (the timeline
entries a CS team would write, and the hidden happenings only the ground truth knows) and its
weekly hidden state (engagement, provisioned users, seats). Nothing here touches the database,
so the same customers feed ``demo load`` (through the import and ingestion services) and
``demo build`` (files for the benchmarks). The same seed, day and size give the same customers.

Time runs in weeks from each customer's first contract start: a week's engagement is the
customer's state on each of its seven days, and departures, trainings and expansion checks
happen on a week's first day. Contract rows keep exact calendar dates (renewals on the same day
of the month).
"""

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from kizuna.demo import names
from kizuna.demo.config import ANALYTICS, CONNECT, SUPPORT, DemoConfig, ProductSpec, SegmentSpec

# Kinds of timeline entry the demo writes (core's TimelineKind values, plus NPS answers, which
# have no surveys app to live in yet: ``nps.answered`` entries with payload {"score": n}).
NOTE, MEETING, TRAINING, REVIEW = "note", "meeting", "training", "review_meeting"
HANDOFF = "handoff.recorded"
NPS_ANSWERED = "nps.answered"
# Written by the onboarding context once it exists; until then the demo writes it (payload
# {"days": n}). Its date is when the customer passes from onboarding to adoption.
ONBOARDING_COMPLETED = "onboarding.completed"
# What an onboarding plans ahead; none of it happens once the customer has left.
ONBOARDING_STORY = frozenset(
    {"kickoff", "onboarding_training", "milestone", "onboarding_stalled", "onboarding_completed"}
)

CHAMPION, ADMIN, DECISION_MAKER, BILLING, END_USER = (
    "champion", "admin", "decision_maker", "billing", "end_user",
)  # fmt: skip


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


@dataclass
class ContractRow:
    """One contract period of one product (a subscription row)."""

    product: ProductSpec
    rank: int
    quantity: int
    start: date
    end: date
    bill_months: int
    discount: Decimal
    status: str = "active"

    @property
    def mrr(self) -> Decimal:
        gross = self.product.plan(self.rank).unit_price * self.quantity
        return (gross * (1 - self.discount)).quantize(Decimal(1))


@dataclass
class Person:
    """A contact; ``slot`` is the product seat they use (None: not a product user)."""

    name: str
    email: str
    role: str
    language: str
    job_title: str
    phone: str
    product_user_id: str
    started_on: date
    ended_on: date | None = None


@dataclass
class Identity:
    """A product user id, the seat (slot) it occupies, and when."""

    user_id: str
    slot: int
    since: date
    until: date | None
    habit: float  # how active this person is, relative to the customer's engagement


@dataclass
class Happening:
    """Something that happened to the customer.

    ``timeline_kind`` is the timeline entry the CS team wrote about it, or None when only the
    ground truth knows (an administrator change nobody told the CSM about, a renewal decision).
    """

    day: date
    kind: str
    timeline_kind: str | None
    title: str = ""
    body: str = ""
    actor: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimulatedCustomer:
    number: int
    external_id: str
    name: str
    domain: str
    industry: str
    employees: int
    region: str
    segment: str
    language: str
    touch_model: str
    owners: tuple[str, str, str | None]  # onboarding, adoption, expansion CSM usernames
    first_start: date
    stage: str = "onboarding"
    churn_date: date | None = None
    churn_reason: str = ""
    churn_cause: str = ""
    rows: list[ContractRow] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    identities: list[Identity] = field(default_factory=list)
    happenings: list[Happening] = field(default_factory=list)
    handoff: dict[str, Any] | None = None
    # Hidden weekly state; week w covers first_start + 7w … + 6.
    engagement: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    seats: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    fit: float = 0.0
    onboarding_days: int = 0
    script: str = ""

    def kinds(self) -> set[str]:
        return {h.kind for h in self.happenings}

    @property
    def account_key(self) -> str:
        return self.external_id


@dataclass(frozen=True)
class Profile:
    """What is drawn for every customer before any is simulated: number, start, segment."""

    index: int
    start: date
    segment: SegmentSpec


@dataclass(frozen=True)
class Script:
    """A story the demo must show, imposed on one customer on top of chance (``showcase``)."""

    name: str
    fit: float | None = None
    onboarding_days: int | None = None
    demand_share: float | None = None  # initial seat demand / seats
    stays: bool = False  # never leaves
    expands: bool = True  # may buy seats or move up
    departures: tuple[tuple[int, str, int | None], ...] = ()  # (days ago, role, training weeks)
    random_departures: bool = True


class _Namer:
    """Unique company names and per-customer unique people, from one generator in order."""

    def __init__(self, rng: random.Random, *, overseas_share: float) -> None:
        self.rng = rng
        self.overseas_share = overseas_share
        self.taken_names: set[str] = set()
        self.taken_domains: set[str] = set()
        self.serial = 1

    def company(self) -> tuple[str, str, str, str, bool]:
        """(name, domain, industry, region, overseas), unique within the company.

        Plain names first; once they get crowded, a qualifier ("ホールディングス", "Group"), and
        then a serial number, so that any number of customers can be drawn quickly.
        """
        rng = self.rng
        overseas = rng.random() < self.overseas_share
        attempt = 0
        while True:
            qualifier_ja, qualifier_en = (
                rng.choice(names.COMPANY_QUALIFIERS) if attempt >= 30 else ("", "")
            )
            number = ""
            if attempt >= 60:  # a crowded name space: a serial number makes it unique
                self.serial += 1
                number = str(self.serial)
            if overseas:
                region, suffix, tld = rng.choice(names.OVERSEAS)
                stem = rng.choice(names.ENGLISH_STEMS)
                kind, industry = rng.choice(names.ENGLISH_KINDS)
                english = " ".join(w for w in (stem, kind, qualifier_en.title(), number) if w)
                name = f"{english} {suffix}"
                domain = f"{stem}{kind}{qualifier_en}{number}.{tld}".lower()
            elif rng.random() < 0.15:
                region = rng.choice(names.DOMESTIC_REGIONS)
                stem = rng.choice(names.ENGLISH_STEMS)
                kind, industry = rng.choice(names.ENGLISH_KINDS)
                english = " ".join(w for w in (stem, kind, qualifier_en.title(), number) if w)
                name = f"株式会社{english}"
                domain = f"{stem}-{kind}{qualifier_en}{number}.co.jp".lower()
            else:
                region = rng.choice(names.DOMESTIC_REGIONS)
                stem_ja, stem_en = rng.choice(names.COMPANY_STEMS)
                kind_ja, kind_en, industry = rng.choice(names.COMPANY_KINDS)
                core = f"{stem_ja}{kind_ja}{qualifier_ja}{number}"
                name = f"株式会社{core}" if rng.random() < 0.5 else f"{core}株式会社"
                domain = f"{stem_en}-{kind_en}{qualifier_en}{number}.co.jp"
            attempt += 1
            if name not in self.taken_names and domain not in self.taken_domains:
                self.taken_names.add(name)
                self.taken_domains.add(domain)
                return name, domain, industry, region, overseas

    def person(self, *, language: str, domain: str, taken: set[str]) -> tuple[str, str]:
        """A (name, email) whose email is not in ``taken`` (which it joins)."""
        rng = self.rng
        attempt = 0
        while True:
            if language == "en":
                given = rng.choice(names.ENGLISH_GIVEN_NAMES)
                family = rng.choice(names.ENGLISH_FAMILY_NAMES)
                name, local = f"{given} {family}", f"{given}.{family}".lower()
            else:
                family_ja, family_en = rng.choice(names.FAMILY_NAMES)
                given_ja, given_en = rng.choice(names.GIVEN_NAMES)
                name, local = f"{family_ja} {given_ja}", f"{given_en}.{family_en}"
            if attempt >= 20:
                local = f"{local}{attempt}"
            email = f"{local}@{domain}"
            attempt += 1
            if email not in taken:
                taken.add(email)
                return name, email

    def phone(self, *, overseas: bool) -> str:
        rng = self.rng
        if overseas:
            return f"+65 {rng.randint(6000, 6999)} {rng.randint(1000, 9999)}"
        area = rng.choice(("03", "06", "052", "092", "011"))
        return f"{area}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"


def plan_profiles(*, config: DemoConfig, seed: int, today: date, customers: int) -> list[Profile]:
    """Start dates (oldest first, so customer numbers follow them) and segments.

    New customers are spread evenly over ``start_spread_months`` (stratified, so that every month
    has some), a share of established ones over the ``established_months`` before that; 60%
    start on the first of a month.
    """
    rng = np.random.default_rng([seed, 0x5EED])
    spread = (today - add_months(today, -config.start_spread_months)).days
    established = (today - add_months(today, -config.established_months)).days
    old = rng.random(customers) < config.established_share
    new_count = int((~old).sum())
    offsets = np.empty(customers)
    offsets[~old] = (np.arange(new_count) + rng.random(new_count)) / max(1, new_count) * spread
    offsets[old] = spread + rng.random(int(old.sum())) * established
    on_first = rng.random(customers) < 0.6
    starts = []
    for offset, first in zip(offsets, on_first, strict=True):
        day = today - timedelta(days=int(offset))
        if first:
            day = day.replace(day=1)
        starts.append(day)
    starts.sort()
    shares = np.array([segment.share for segment in config.segments])
    picks = rng.choice(len(config.segments), size=customers, p=shares / shares.sum())
    return [
        Profile(index=i, start=start, segment=config.segments[int(pick)])
        for i, (start, pick) in enumerate(zip(starts, picks, strict=True))
    ]


def showcase_scripts(*, profiles: list[Profile], today: date) -> dict[int, Script]:
    """The customers that tell ``make demo``'s stories for sure (when the company is big enough).

    - an administrator changed three weeks ago and nobody has trained the newcomer yet: usage fell;
    - an administrator changed four months ago, was trained five weeks later, usage recovered;
    - an enterprise account whose seats are full and engagement high: ripe for upsell;
    - an onboarding stalled at the data-source milestone two months in.
    """
    scripts: dict[int, Script] = {}

    def pick(condition: Any) -> int | None:
        for profile in reversed(profiles):  # the most recent qualifying customer
            if profile.index not in scripts and condition(profile):
                return profile.index
        return None

    def age(profile: Profile) -> int:
        return (today - profile.start).days

    stories = (
        (
            lambda p: p.segment.touch_model == "low" and 400 <= age(p) <= 900,
            Script("admin_changed_recently", fit=0.75, stays=True, random_departures=False,
                   departures=((23, ADMIN, None),)),
        ),
        (
            lambda p: p.segment.touch_model == "high" and 400 <= age(p) <= 900,
            Script("admin_changed_and_trained", fit=0.8, stays=True, random_departures=False,
                   departures=((120, ADMIN, 5),)),
        ),
        (
            lambda p: p.segment.touch_model == "high" and 300 <= age(p) <= 900,
            Script("ripe_for_upsell", fit=0.9, demand_share=0.98, stays=True, expands=False,
                   random_departures=False, onboarding_days=25),
        ),
        (
            lambda p: p.segment.touch_model != "tech" and 55 <= age(p) <= 80,
            Script("onboarding_stalled", onboarding_days=130, stays=True,
                   random_departures=False),
        ),
    )  # fmt: skip
    for condition, script in stories:
        index = pick(condition)
        if index is not None:
            scripts[index] = script
    return scripts


class Simulator:
    """Simulates the customers of one company, in order (company names are unique across it)."""

    def __init__(self, *, config: DemoConfig, seed: int, today: date, customers: int) -> None:
        if customers < 1:
            raise ValueError("customers must be at least 1")
        self.config = config
        self.seed = seed
        self.today = today
        self.count = customers
        self.profiles = plan_profiles(config=config, seed=seed, today=today, customers=customers)
        self.scripts = (
            showcase_scripts(profiles=self.profiles, today=today) if config.showcase else {}
        )
        self.width = max(4, len(str(customers)))

    def customers(self) -> Iterator[SimulatedCustomer]:
        """Every customer, in order of first start."""
        namer = self._namer()
        for profile in self.profiles:
            yield _Life(self, profile, namer).run()

    def sample(self, count: int) -> list[SimulatedCustomer]:
        """About ``count`` customers spread over the whole company (names aside, each is the
        customer ``customers()`` yields: behaviour is drawn per customer)."""
        step = max(1, len(self.profiles) // max(1, count))
        namer = self._namer()
        return [_Life(self, profile, namer).run() for profile in self.profiles[::step]]

    def _namer(self) -> "_Namer":
        rng = random.Random(self.seed)  # noqa: S311 - a reproducible simulation, not a secret
        return _Namer(rng, overseas_share=self.config.overseas_share)


class _Life:
    """One customer's life, week by week, from its first contract start until today."""

    def __init__(self, simulator: Simulator, profile: Profile, namer: _Namer) -> None:
        self.sim = simulator
        self.config = simulator.config
        self.profile = profile
        self.namer = namer
        self.today = simulator.today
        self.script = simulator.scripts.get(profile.index, Script(""))
        seed = simulator.seed
        self.rng = random.Random(f"{seed}:{profile.index}")  # noqa: S311 - a reproducible simulation
        self.vector_rng = np.random.default_rng([seed, profile.index, 1])
        self.taken_emails: set[str] = set()

    # -- set-up ----------------------------------------------------------------------------

    def _customer(self) -> SimulatedCustomer:
        config, profile, rng = self.config, self.profile, self.rng
        segment = profile.segment
        name, domain, industry, region, overseas = self.namer.company()
        number = profile.index + 1
        expansion = rng.choice(config.expansion_csms) if segment.touch_model != "tech" else None
        return SimulatedCustomer(
            number=number,
            external_id=f"C-{number:0{self.sim.width}d}",
            name=name,
            domain=domain,
            industry=industry,
            employees=rng.randint(*segment.employees),
            region=region,
            segment=segment.key,
            language="en" if overseas else "ja",
            touch_model=segment.touch_model,
            owners=(
                rng.choice(config.onboarding_csms),
                rng.choice(config.adoption_csms),
                expansion,
            ),
            first_start=profile.start,
            script=self.script.name,
        )

    def _scaled(self, seats: float) -> int:
        return max(1, round(seats * self.config.seat_scale))

    def _people(self, customer: SimulatedCustomer) -> None:
        """Champion (seat 0), admin (1), decision maker (2), billing, named end users (3…)."""
        rng = self.rng
        end_users = {"enterprise": 5, "mid-market": 3}.get(customer.segment, rng.randint(1, 2))
        roles: list[tuple[str, int | None]] = [
            (CHAMPION, 0), (ADMIN, 1), (DECISION_MAKER, 2), (BILLING, None),
            *[(END_USER, 3 + n) for n in range(end_users)],
        ]  # fmt: skip
        for role, slot in roles:
            self._add_person(customer, role=role, slot=slot, since=customer.first_start)

    def _add_person(
        self, customer: SimulatedCustomer, *, role: str, slot: int | None, since: date
    ) -> Person:
        rng = self.rng
        language = customer.language
        if language == "ja" and role == END_USER and rng.random() < 0.05:
            language = "en"  # a colleague who prefers English
        name, email = self.namer.person(
            language=language, domain=customer.domain, taken=self.taken_emails
        )
        titles = names.ENGLISH_JOB_TITLES if language == "en" else names.JOB_TITLES
        user_id = ""
        if slot is not None:
            generation = sum(1 for i in customer.identities if i.slot == slot)
            user_id = f"{customer.external_id.lower()}-u{slot:04d}"
            if generation:
                user_id += f"-{generation + 1}"
            habit = {CHAMPION: (0.95, 1.25), ADMIN: (0.9, 1.2), DECISION_MAKER: (0.2, 0.5)}
            low, high = habit.get(role, (0.4, 1.4))
            customer.identities.append(
                Identity(user_id, slot, since, None, low + (high - low) * rng.random())
            )
        person = Person(
            name=name,
            email=email,
            role=role,
            language=language,
            job_title=rng.choice(titles[role]),
            phone=self.namer.phone(overseas=language == "en") if role in (CHAMPION, ADMIN) else "",
            product_user_id=user_id,
            started_on=since,
        )
        customer.people.append(person)
        return person

    # -- the weekly loop ------------------------------------------------------------------------

    def run(self) -> SimulatedCustomer:
        """Simulate every week from the first contract start to today; return the customer."""
        config, rng, script = self.config, self.rng, self.script
        segment = self.profile.segment
        c = self.c = self._customer()
        self._people(c)
        today = self.today
        start = self.profile.start
        weeks = (today - start).days // 7 + 1
        noise = self.vector_rng.normal(0.0, config.activity.noise, weeks)
        self.engagement = np.zeros(weeks, np.float32)
        self.users = np.zeros(weeks, np.int32)
        self.seats_by_week = np.zeros(weeks, np.int32)

        self.fit = c.fit = (
            script.fit if script.fit is not None else float(self.vector_rng.beta(*segment.fit))
        )
        # The first contract.
        self.bill = 12 if rng.random() < segment.annual_share else 1
        self.rank = 1 + _weighted(rng, segment.plan_weights)
        self.seats = self._scaled(rng.randint(*segment.seats))
        self.discount = Decimal(rng.choice(segment.discounts))
        share = script.demand_share if script.demand_share is not None else rng.uniform(0.55, 0.95)
        self.demand = self.seats * share
        self.has_support = rng.random() < segment.premium_support_share
        self.connect_start: date | None = None
        self.connect_rank, self.connectors = 1, 1
        self.rows: list[ContractRow] = []
        self._open_period(start)
        self.alive = True
        self.back_day: date | None = None
        self.reactivated = False
        self.last_expansion: date | None = None

        # The stint (a reactivation starts a new one) and its onboarding.
        self.stint_start = start
        self.onboarding_days = c.onboarding_days = self._onboarding_days(segment)
        self.onboarded = False
        self.target = self.fit
        self.level = config.onboarding.start_level
        self._onboarding_story(start, self.onboarding_days)

        # Departures and their dip.
        self.dip, self.dip_open = 1.0, False
        self.departed_on: date | None = None
        self.training_day: date | None = None
        self.trained_on: date | None = None
        self.next_departure = {
            ADMIN: self._next_departure(start, config.departures.admin_yearly),
            CHAMPION: self._next_departure(start, config.departures.champion_yearly),
        }
        self.forced = sorted(
            (today - timedelta(days=days), role, training)
            for days, role, training in script.departures
        )
        self.next_nps = add_months(start, config.nps.first_after_months)
        self.review_every = {"high": 3, "low": 6}.get(segment.touch_model)
        self.next_review = add_months(start, self.review_every) if self.review_every else None
        self.recent: list[float] = []

        for week in range(weeks):
            day = start + timedelta(days=7 * week)
            week_end = day + timedelta(days=7)
            if not self.alive:
                if self.back_day is None or self.back_day >= week_end:
                    continue
                self._reactivate(self.back_day)
            if not self.decided and self.decision_day < week_end:
                self._decide_renewal(max(self.decision_day, day))
            if self.period_end < week_end and self.period_end <= today:
                self._end_period()
                if not self.alive:
                    continue
            if not self.onboarded and (day - self.stint_start).days >= self.onboarding_days:
                self.onboarded = True
                self.target = self.fit + self._onboarding_effect(self.onboarding_days)
                if self.reactivated:
                    self._reonboarded()
            self._departures(day, week_end)
            self._training(day, week_end)
            if week % 4 == 0:
                self._midterm_seats(day)
            if week % 13 == 0:
                self._cross_sell(day)
            self._surveys_and_reviews(week_end)
            self._step(week, day, float(noise[week]))

        if self.alive:
            self.rows.append(self._period_row())
            self.rows += self._add_on_rows(stop=None, canceled=False)
        c.rows = sorted(self.rows, key=lambda r: (r.start, r.product.code))
        c.engagement, c.users, c.seats = self.engagement, self.users, self.seats_by_week
        c.stage = self._stage()
        c.handoff = None if self.reactivated else self._handoff(self.stint_start)
        self._notes()
        self._fill_identities(int(self.users.max()) if weeks else 0)
        left = self._first_churn()
        c.happenings = sorted(
            (
                h
                for h in c.happenings
                if h.day < today
                and not (
                    left is not None
                    and h.kind in ONBOARDING_STORY
                    and h.day >= left
                    and not h.payload.get("reactivated")
                )
            ),
            key=lambda h: (h.day, h.kind),
        )
        return c

    def _first_churn(self) -> date | None:
        return min((h.day for h in self.c.happenings if h.kind == "churn"), default=None)

    # -- the rules, one per method, in the order a week applies them -----------------------------

    def _open_period(self, start: date) -> None:
        self.period_start, self.period_end = start, add_months(start, self.bill)
        renewal = self.config.renewal
        notice = renewal.notice_weeks_annual if self.bill >= 12 else renewal.notice_weeks_monthly
        self.decision_day = self.period_end - timedelta(weeks=notice)
        self.decided, self.leaving = False, False
        self.pending: tuple[int, int] | None = None  # (seats, rank) of the next period
        self.cause = ""

    def _period_row(self, *, end: date | None = None, status: str = "active") -> ContractRow:
        return ContractRow(
            ANALYTICS, self.rank, self.seats, self.period_start, end or self.period_end,
            self.bill, self.discount, status,
        )  # fmt: skip

    def _reactivate(self, day: date) -> None:
        """A churned customer comes back: a smaller monthly contract and a new, shorter onboarding."""
        config, rng = self.config, self.rng
        self.alive, self.reactivated, self.back_day = True, True, None
        self.stint_start = day
        self.bill, self.discount = 1, Decimal(0)
        self.rank = max(1, self.rank - 1)
        self.seats = max(1, round(self.seats * config.reactivation.seat_share))
        self.demand = self.seats * rng.uniform(0.6, 0.9)
        self._open_period(day)
        self.onboarding_days = max(14, self.onboarding_days // 2)
        self.onboarded, self.target = False, self.fit
        self.level = config.onboarding.start_level
        self.dip, self.dip_open = 1.0, False
        self.connect_start, self.has_support = None, False
        c = self.c
        c.churn_date, c.churn_reason, c.churn_cause = None, "", ""
        self._event(day, "reactivation", NOTE, "再契約",
                    f"{ANALYTICS.name} {ANALYTICS.plan(self.rank).name}"
                    f"({self.seats}席、月額契約)で利用を再開。",
                    c.owners[0], {"seats": self.seats, "rank": self.rank})  # fmt: skip

    def _reonboarded(self) -> None:
        """A reactivated customer's shorter onboarding is done (its first one was planned)."""
        days = self.onboarding_days
        self._event(self.stint_start + timedelta(days=days), "onboarding_completed",
                    ONBOARDING_COMPLETED, "再オンボーディング完了",
                    f"再契約後の初期設定・利用再開の支援を完了(再開から{days}日)。",
                    self.c.owners[0], {"days": days, "reactivated": True})  # fmt: skip

    def _decide_renewal(self, day: date) -> None:
        """Ahead of the period's end: leave (more likely the lower engagement was) or renew."""
        self.decided = True
        window = self.recent[-13:] or [self.level]
        level = sum(window) / len(window)
        probability = self._churn_probability(level)
        utilisation = min(self.seats, max(1, round(self.demand))) / self.seats
        if not self.script.stays and self.rng.random() < probability:
            self.leaving = True
            self.cause = self._churn_cause(level)
            outcome = "churn"
        else:
            self.pending = self._renewal_terms(level=level, utilisation=utilisation)
            outcome = "renew"
        self._event(day, "renewal_decision", None, payload={
            "engagement": round(level, 4), "churn_probability": round(probability, 4),
            "utilisation": round(utilisation, 4), "outcome": outcome,
            "period_end": self.period_end.isoformat(),
        })  # fmt: skip

    def _end_period(self) -> None:
        """The period ends: the customer leaves, or the next period starts with its new terms."""
        c, rng, config = self.c, self.rng, self.config
        end = self.period_end
        if self.leaving:
            self.rows.append(self._period_row(status="canceled"))
            self.rows += self._add_on_rows(stop=end, canceled=True)
            self.alive = False
            c.churn_date, c.churn_cause = end, self.cause
            c.churn_reason = rng.choice(names.CHURN_REASONS[self.cause])
            self._event(end, "churn", NOTE, "解約", c.churn_reason, c.owners[1],
                        {"cause": self.cause})  # fmt: skip
            reactivation = config.reactivation
            chance = (
                reactivation.chance_external if self.cause == "external" else reactivation.chance
            )
            if rng.random() < chance:
                back = add_months(end, rng.randint(*reactivation.delay_months))
                self.back_day = back if back < self.today else None
            return
        self.rows.append(self._period_row())
        if self.pending is not None:
            seats, rank = self.pending
            self._contract_change(end, seats, rank)
        self._open_period(end)

    def _departures(self, day: date, week_end: date) -> None:
        """The administrator or champion leaves now and then (scripted stories at set days)."""
        departures = self.config.departures
        for role, yearly in (
            (ADMIN, departures.admin_yearly),
            (CHAMPION, departures.champion_yearly),
        ):
            if (
                self.script.random_departures
                and self.onboarded
                and self.next_departure[role] < week_end
            ):
                self.next_departure[role] = self._next_departure(week_end, yearly)
                if not self.leaving:
                    self._depart(day, role, None)
        while self.forced and self.forced[0][0] < week_end:
            _when, role, training_weeks = self.forced.pop(0)
            self._depart(day, role, training_weeks)

    def _depart(self, day: date, role: str, training_weeks: int | None) -> None:
        self.training_day = self._departure(day, role, training_weeks)
        self.dip, self.dip_open = self.config.departures.dip, True
        self.departed_on, self.trained_on = day, None
        self.level *= self.dip

    def _training(self, day: date, week_end: date) -> None:
        """A training for the newcomer starts the recovery from the dip."""
        departures = self.config.departures
        if self.training_day is not None and self.training_day < week_end:
            self.trained_on, self.training_day = day, None
            departed = self.departed_on.isoformat() if self.departed_on else None
            self._event(day, "training", TRAINING, "新任管理者・推進担当者向けトレーニング",
                        "管理画面の操作、ダッシュボードの共有方法、社内展開の進め方を説明。",
                        self.c.owners[0], {"after_departure_on": departed})  # fmt: skip
        if self.dip_open and self.trained_on is not None:
            recovered = (day - self.trained_on).days / (7 * departures.recovery_weeks)
            self.dip = min(1.0, departures.dip + (1 - departures.dip) * recovered)
            self.dip_open = self.dip < 1.0

    def _midterm_seats(self, day: date) -> None:
        """An annual customer whose demand outgrew its seats buys more before the renewal."""
        expansion = self.config.expansion
        if (
            self.onboarded and not self.decided and self.bill == 12 and self.script.expands
            and self.demand > self.seats * 1.02 and self.level >= expansion.upsell_engagement
            and day > self.period_start and self.rng.random() < expansion.midterm_chance
        ):  # fmt: skip
            seats = math.ceil(self.demand * self.rng.uniform(1.1, 1.3))
            self.rows.append(self._period_row(end=day))
            self._contract_change(day, seats, self.rank, midterm=True)
            self.period_start = day

    def _cross_sell(self, day: date) -> None:
        """A healthy customer buys the add-on (checked quarterly)."""
        expansion, rng, c = self.config.expansion, self.rng, self.c
        window = self.recent[-13:]
        health = sum(window) / len(window) if window else 0.0
        if (
            self.onboarded and not self.leaving and self.connect_start is None
            and not self.dip_open and health >= expansion.cross_sell_health
            and rng.random() < expansion.cross_sell_chance
        ):  # fmt: skip
            self.connect_start = self.last_expansion = day
            self.connect_rank = 1 if rng.random() < 0.7 else 2
            self.connectors = self._scaled(
                rng.randint(2, 5) if c.segment == "enterprise" else rng.randint(1, 2)
            )
            self._event(day, "cross_sell", NOTE,
                        f"クロスセル: {CONNECT.name} {CONNECT.plan(self.connect_rank).name} 契約開始",
                        f"コネクタ {self.connectors} 本。基幹システムとの自動連携を開始。",
                        c.owners[2] or c.owners[1],
                        {"product": CONNECT.code, "quantity": self.connectors})  # fmt: skip

    def _surveys_and_reviews(self, week_end: date) -> None:
        """NPS twice a year; review meetings every quarter (high touch) or half-year (low)."""
        if self.next_nps < week_end:
            if self.onboarded:
                self._nps(self.next_nps)
            self.next_nps = add_months(self.next_nps, self.config.nps.every_months)
        if self.next_review is not None and self.review_every and self.next_review < week_end:
            if self.onboarded:
                number = 1 + sum(1 for h in self.c.happenings if h.kind == "review")
                self._event(self.next_review, "review", REVIEW,
                            f"定例レビューミーティング(第{number}回)",
                            "利用状況・目標の進捗を共有し、次の四半期の施策を合意。",
                            self.c.owners[1])  # fmt: skip
            self.next_review = add_months(self.next_review, self.review_every)

    def _step(self, week: int, day: date, noise: float) -> None:
        """This week's engagement, seat demand and provisioned users."""
        config = self.config
        if not self.onboarded:
            # Ramping up: users are rolled out and engagement climbs toward the fit.
            progress = min(1.0, (day - self.stint_start).days / max(1, self.onboarding_days))
            start_level = config.onboarding.start_level
            self.level = start_level + (self.fit - start_level) * progress * 0.9 + noise * 0.5
            rollout = 0.3 + 0.7 * progress
        else:
            fade = 1.0
            if self.leaving and self.period_end > self.decision_day:
                gone = (day - self.decision_day).days / (self.period_end - self.decision_day).days
                fade = 1 - (1 - config.renewal.fade_floor) * min(1.0, max(0.0, gone))
            goal = self.target * self.dip * fade
            self.level += config.activity.persistence * (goal - self.level) + noise
            self.demand *= math.exp(config.expansion.demand_growth * (self.level - 0.5))
            rollout = 1.0
        self.level = min(0.98, max(0.02, self.level))
        self.recent.append(self.level)
        self.engagement[week] = self.level
        self.users[week] = max(1, round(min(self.seats, self.demand) * rollout))
        self.seats_by_week[week] = self.seats

    # -- pieces of the story ------------------------------------------------------------------

    def _onboarding_days(self, segment: SegmentSpec) -> int:
        if self.script.onboarding_days is not None:
            return self.script.onboarding_days
        spread = self.config.onboarding.spread
        return max(10, round(segment.onboarding_days * math.exp(self.rng.gauss(0.0, spread))))

    def _onboarding_effect(self, days: int) -> float:
        """Fast onboardings settle higher, slow ones lower (the fit itself is independent)."""
        onboarding = self.config.onboarding
        if days <= onboarding.fast_days:
            return onboarding.fast_bonus
        if days >= onboarding.slow_days:
            return -onboarding.slow_penalty
        return 0.0

    def _onboarding_story(self, start: date, days: int) -> None:
        """Kickoff, trainings, milestones (stalling where slow onboardings stall), completion."""
        c, rng, onboarding = self.c, self.rng, self.config.onboarding
        csm = c.owners[0]
        if c.touch_model == "tech":
            self._event(start + timedelta(days=rng.randint(2, 7)), "kickoff", TRAINING,
                        "オンライン導入説明会に参加",
                        "録画とチュートリアル(初期設定チェックリスト)を案内。", csm)  # fmt: skip
        else:
            self._event(start + timedelta(days=rng.randint(3, 10)), "kickoff", MEETING,
                        "キックオフミーティング",
                        f"導入目的・成功の定義・スケジュールを合意。推進担当: {c.people[0].name}様。",
                        csm)  # fmt: skip
            trainings = (
                (("管理者向けトレーニング", 0.3), ("エンドユーザー向け操作トレーニング", 0.6),
                 ("ダッシュボード作成ハンズオン", 0.85))
                if c.touch_model == "high"
                else (("導入セミナー(1対多)", 0.3), ("個別Q&Aセッション", 0.7))
            )  # fmt: skip
            for title, share in trainings:
                self._event(start + timedelta(days=round(days * share)), "onboarding_training",
                            TRAINING, title, "参加者の理解度は良好。", csm)  # fmt: skip
        slow = days >= onboarding.slow_days
        shares = (0.05, 0.7 if slow else 0.35, 0.8, 0.9, 1.0)
        for milestone, share in zip(onboarding.milestones, shares, strict=False):
            self._event(start + timedelta(days=round(days * share)), "milestone", None,
                        payload={"milestone": milestone})  # fmt: skip
        if slow:
            self._event(start + timedelta(days=round(days * 0.45)), "onboarding_stalled", NOTE,
                        "オンボーディング停滞: データ連携の設定",
                        "データソースの接続設定が進まず、ダッシュボード作成に進めていない。"
                        "情報システム部門の工数確保を依頼。", csm,
                        {"milestone": onboarding.stall_milestone})  # fmt: skip
        self._event(start + timedelta(days=days), "onboarding_completed", ONBOARDING_COMPLETED,
                    "オンボーディング完了",
                    f"初期設定・主要ダッシュボードの展開を完了(開始から{days}日)。", csm,
                    {"days": days})  # fmt: skip

    def _next_departure(self, after: date, yearly: float) -> date:
        """When the next departure of a role happens (exponential waiting time)."""
        rate = -math.log(1.0 - yearly) / 52.0
        weeks = -math.log(1.0 - self.rng.random()) / max(1e-9, rate)
        return after + timedelta(days=7 * math.ceil(min(weeks, 10_000.0)))

    def _departure(self, day: date, role: str, training_weeks: int | None) -> date | None:
        """The person in ``role`` leaves on ``day`` and a newcomer takes the seat.

        Returns the day of the newcomer's training, if the CSM will run one: only if they hear
        of the change, and then as often and as soon as the touch model allows.
        """
        c, rng, departures = self.c, self.rng, self.config.departures
        touch = c.touch_model
        old = next(p for p in reversed(c.people) if p.role == role and p.ended_on is None)
        old.ended_on = day
        slot = 0 if role == CHAMPION else 1
        for identity in c.identities:
            if identity.slot == slot and identity.until is None:
                identity.until = day
        new = self._add_person(c, role=role, slot=slot, since=day)
        scripted = bool(self.script.departures)
        noticed = scripted or rng.random() < departures.noticed_chance[touch]
        label = "管理者交代" if role == ADMIN else "推進担当者の交代"
        self._event(day, "admin_changed" if role == ADMIN else "champion_changed",
                    NOTE if noticed else None, label,
                    f"{old.name}様が異動となり、{new.name}様が後任に就任。"
                    "引き継ぎ状況と利用状況の変化に注意。", c.owners[1],
                    {"role": role, "old": old.product_user_id, "new": new.product_user_id})  # fmt: skip
        if scripted:
            return day + timedelta(weeks=training_weeks) if training_weeks is not None else None
        if noticed and rng.random() < departures.training_chance[touch]:
            low, high = departures.training_weeks[touch]
            return day + timedelta(weeks=rng.randint(low, high))
        return None

    def _churn_probability(self, level: float) -> float:
        """P(leaving at this renewal) from the engagement of the last quarter (config.Renewal)."""
        renewal, segment = self.config.renewal, self.profile.segment
        logit = segment.churn_logit + renewal.slope * (renewal.pivot - level)
        yearly = 1 / (1 + math.exp(-logit))
        return float(1 - (1 - yearly) ** (self.bill / 12))

    def _churn_cause(self, level: float) -> str:
        if self.dip_open and self.trained_on is None and self.departed_on is not None:
            return "champion_left"
        if level < self.config.renewal.low_engagement:
            return "low_engagement"
        return "external"

    def _renewal_terms(self, *, level: float, utilisation: float) -> tuple[int, int]:
        """Seats and plan of the next period: up when full and engaged, down when unused."""
        rng, expansion = self.rng, self.config.expansion
        seats, rank = self.seats, self.rank
        if (
            self.script.expands
            and utilisation >= expansion.full_utilisation
            and level >= expansion.upsell_engagement
            and rng.random() < expansion.upsell_chance
        ):
            seats = math.ceil(max(self.demand, seats) * rng.uniform(1.1, 1.4))
            if rank < ANALYTICS.top_rank and rng.random() < expansion.tier_up_chance:
                rank += 1
        elif (
            utilisation < expansion.downgrade_utilisation
            and rng.random() < expansion.downgrade_chance
        ):
            seats = max(1, min(seats, math.ceil(max(1, round(self.demand)) * 1.25)))
            if (
                level < expansion.tier_down_engagement
                and rank > 1
                and rng.random() < expansion.tier_down_chance
            ):
                rank -= 1
        return seats, rank

    def _contract_change(self, day: date, seats: int, rank: int, *, midterm: bool = False) -> None:
        """Move to new seats/plan from ``day`` and note it on the timeline."""
        old_seats, old_rank = self.seats, self.rank
        self.seats, self.rank = seats, rank
        if (seats, rank) == (old_seats, old_rank):
            return
        parts = []
        if rank != old_rank:
            parts.append(f"{ANALYTICS.plan(old_rank).name} → {ANALYTICS.plan(rank).name}")
        if seats != old_seats:
            parts.append(f"{old_seats}席 → {seats}席")
        up = rank > old_rank or (rank == old_rank and seats > old_seats)
        if midterm:
            kind, title = "seats_added", "期中の席数追加"
        elif up:
            kind, title = ("tier_up" if rank > old_rank else "upsell"), "アップセル"
        else:
            kind, title = ("tier_down" if rank < old_rank else "downgrade"), "契約縮小"
        if up:
            self.last_expansion = day
        body = (
            "席が不足し、利用部門の拡大に合わせて追加。"
            if up
            else "利用者数に合わせて契約を見直し。"
        )
        c = self.c
        self._event(day, kind, NOTE, f"{title}: {'、'.join(parts)}", body,
                    c.owners[2] or c.owners[1],
                    {"seats": [old_seats, seats], "rank": [old_rank, rank]})  # fmt: skip

    def _add_on_rows(self, *, stop: date | None, canceled: bool) -> list[ContractRow]:
        """The add-ons' contract periods, back to back until ``stop`` (or today's period)."""
        streams: list[tuple[ProductSpec, int, int, date, int]] = []
        if self.connect_start is not None:
            streams.append(
                (CONNECT, self.connect_rank, self.connectors, self.connect_start, self.bill)
            )
        if self.has_support:
            streams.append((SUPPORT, 1, 1, self.stint_start, 12))
        rows = []
        for product, rank, quantity, begin, months in streams:
            periods = _periods(begin, months, stop=stop, today=self.today)
            for index, (period_start, period_end) in enumerate(periods):
                last = index == len(periods) - 1
                status = "canceled" if canceled and last else "active"
                rows.append(
                    ContractRow(product, rank, quantity, period_start, period_end, months,
                                Decimal(0), status)
                )  # fmt: skip
        return rows

    def _nps(self, day: date) -> None:
        """Some of the champion, admin and decision maker answer; scores follow engagement."""
        c, rng, nps = self.c, self.rng, self.config.nps
        current = [
            p for p in c.people
            if p.role in (CHAMPION, ADMIN, DECISION_MAKER) and p.ended_on is None
        ]  # fmt: skip
        answering = [p for p in current if rng.random() < 0.6] or current[:1]
        for person in answering:
            score = round(nps.intercept + nps.slope * self.level + rng.gauss(0.0, nps.noise))
            score = min(10, max(0, score))
            when = day + timedelta(days=rng.randint(0, 6))
            self._event(when, "nps", NPS_ANSWERED, f"NPS回答: {score}点({person.name}様)",
                        rng.choice(names.NPS_COMMENTS[_nps_band(score)]), None,
                        {"score": score, "contact": person.email,
                         "engagement": round(self.level, 4)})  # fmt: skip

    def _stage(self) -> str:
        if not self.alive:
            return "churned"
        if not self.onboarded:
            return "onboarding"
        today = self.today
        tenure = (today - self.c.first_start).days
        utilisation = int(self.users[-1]) / max(1, self.seats)
        ready = utilisation >= self.config.expansion.full_utilisation and self.level >= 0.6
        grew = self.last_expansion is not None and (today - self.last_expansion).days <= 365
        return "expansion" if tenure >= 365 and (grew or ready) else "adoption"

    def _handoff(self, start: date) -> dict[str, Any] | None:
        """Sales handoffs were recorded for the customers of the last four months."""
        if (self.today - start).days > 120:
            return None
        c, rng = self.c, self.rng
        people = {p.role: p.name for p in c.people}
        handed = start - timedelta(days=rng.randint(3, 10))
        self._event(handed, "handoff", None)
        return {
            "desired_outcomes": rng.choice(names.HANDOFF_OUTCOMES),
            "pains": rng.choice(names.HANDOFF_PAINS),
            "stakeholders": rng.choice(names.HANDOFF_STAKEHOLDERS).format(
                decision=people[DECISION_MAKER], champion=people[CHAMPION], admin=people[ADMIN]
            ),
            "contract_notes": rng.choice(names.HANDOFF_CONTRACT_NOTES),
            "risks": rng.choice(names.HANDOFF_RISKS),
            "handed_off_on": handed,
        }

    def _notes(self) -> None:
        c, rng = self.c, self.rng
        end = c.churn_date or self.today
        span = max(1, (end - c.first_start).days)
        for _note in range(rng.randint(1, 3)):
            title, body = rng.choice(names.NOTES)
            day = c.first_start + timedelta(days=rng.randint(0, span))
            self._event(day, "note", NOTE, title, body, c.owners[1])

    def _fill_identities(self, users: int) -> None:
        """Product users beyond the named contacts, for every seat ever provisioned."""
        c = self.c
        taken = {i.slot for i in c.identities}
        prefix = c.external_id.lower()
        habits = 0.4 + self.vector_rng.beta(2.0, 2.0, size=max(0, users))
        for slot in range(users):
            if slot not in taken:
                c.identities.append(
                    Identity(
                        f"{prefix}-u{slot:04d}", slot, c.first_start, None, float(habits[slot])
                    )
                )

    def _event(
        self,
        day: date,
        kind: str,
        timeline_kind: str | None,
        title: str = "",
        body: str = "",
        actor: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        self.c.happenings.append(
            Happening(day, kind, timeline_kind, title, body, actor, payload or {})
        )


def _weighted(rng: random.Random, weights: tuple[float, ...]) -> int:
    total = sum(weights)
    draw = rng.random() * total
    for index, weight in enumerate(weights):
        draw -= weight
        if draw < 0:
            return index
    return len(weights) - 1


def _nps_band(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def _periods(
    start: date, months: int, *, stop: date | None, today: date
) -> list[tuple[date, date]]:
    """Back-to-back contract periods from ``start`` until ``stop`` or the one running today."""
    periods: list[tuple[date, date]] = []
    begin = start
    while begin <= today and (stop is None or begin < stop):
        end = add_months(begin, months)
        if stop is not None and end > stop:
            end = stop
        periods.append((begin, end))
        if end > today:
            break
        begin = end
    return periods
