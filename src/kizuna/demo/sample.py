"""The demo company: a Japanese B2B SaaS vendor's customers, built deterministically from a seed.

``build_sample_company`` simulates two years of a vendor selling "Mirai Analytics" (per seat,
Starter / Business / Enterprise) with a "Mirai Connect" add-on for cross-sell and a
"Premium Support" option: customers of three segments arrive every month, renew monthly or
yearly (each contract period is one subscription row, back to back), add or remove seats,
move plans, churn, and a few come back. Contacts, sales handoffs and a Japanese timeline
(kickoffs, trainings, review meetings, notes) come with them. The same seed and day give the
same company; everything is written with ``bulk_create`` in one transaction.
"""

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import (
    Contact,
    ContactRole,
    Customer,
    LifecycleStage,
    Plan,
    Product,
    SalesHandoff,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    TouchModel,
)
from kizuna.demo import names

DEMO_PASSWORD = "kizuna-demo"  # noqa: S105 - the published password of the demo logins
HISTORY_MONTHS = 24
ENTERPRISE, MID_MARKET, SMB = "enterprise", "mid-market", "smb"


class DemoDataExistsError(Exception):
    """The database already holds customers; the demo company is only built into an empty one."""


@dataclass(frozen=True)
class StaffMember:
    username: str
    role: Role
    family_name: str
    given_name: str


STAFF: tuple[StaffMember, ...] = (
    StaffMember("admin", Role.ADMIN, "岡本", "直人"),
    StaffMember("manager", Role.CS_MANAGER, "松田", "由紀"),
    StaffMember("onboarding", Role.ONBOARDING_CSM, "佐藤", "美咲"),
    StaffMember("adoption", Role.ADOPTION_CSM, "鈴木", "健太"),
    StaffMember("expansion", Role.EXPANSION_CSM, "高橋", "翔"),
    StaffMember("viewer", Role.VIEWER, "中島", "花"),
    StaffMember("kobayashi", Role.ONBOARDING_CSM, "小林", "真央"),
    StaffMember("kato", Role.ADOPTION_CSM, "加藤", "大輔"),
)
ONBOARDING_CSMS = ("onboarding", "kobayashi")
ADOPTION_CSMS = ("adoption", "kato")
EXPANSION_CSMS = ("expansion",)


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    tier_rank: int
    unit_price: Decimal  # per unit and month, in yen


@dataclass(frozen=True)
class ProductSpec:
    code: str
    name: str
    description: str
    unit: str
    plans: tuple[PlanSpec, ...]

    def plan(self, rank: int) -> PlanSpec:
        return next(plan for plan in self.plans if plan.tier_rank == rank)


ANALYTICS = ProductSpec(
    "mirai-analytics",
    "Mirai Analytics",
    "データ分析・ダッシュボードのクラウドサービス(席数課金)",
    "seats",
    (
        PlanSpec("starter", "Starter", 1, Decimal(1500)),
        PlanSpec("business", "Business", 2, Decimal(3000)),
        PlanSpec("enterprise", "Enterprise", 3, Decimal(5000)),
    ),
)
CONNECT = ProductSpec(
    "mirai-connect",
    "Mirai Connect",
    "基幹システム・SaaSとのデータ連携アドオン(コネクタ数課金)",
    "connectors",
    (
        PlanSpec("standard", "Standard", 1, Decimal(20000)),
        PlanSpec("plus", "Plus", 2, Decimal(35000)),
    ),
)
SUPPORT = ProductSpec(
    "premium-support",
    "Premium Support",
    "専任担当による優先サポート",
    "",
    (PlanSpec("premium", "Premium", 1, Decimal(100000)),),
)
PRODUCTS = (ANALYTICS, CONNECT, SUPPORT)


@dataclass(frozen=True)
class SampleSummary:
    """What ``build_sample_company`` created."""

    today: date
    users: tuple[str, ...]
    products: int
    plans: int
    customers: int
    customers_in_service: int
    churned_customers: int
    reactivated_customers: int
    expanded_customers: int
    contracted_customers: int
    cross_sold_customers: int
    subscriptions: int
    contacts: int
    handoffs: int
    timeline_entries: int
    mrr: Decimal
    admin_changed_customer: str
    password: str = DEMO_PASSWORD


# Drafts: the simulated company in plain Python, before it is written.


@dataclass
class _Row:
    product: ProductSpec
    rank: int
    quantity: int
    start: date
    end: date
    bill_period_months: int
    discount: Decimal
    status: str = SubscriptionStatus.ACTIVE

    @property
    def mrr(self) -> Decimal:
        gross = self.product.plan(self.rank).unit_price * self.quantity
        return (gross * (1 - self.discount)).quantize(Decimal(1))


@dataclass
class _Person:
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
class _Event:
    day: date
    kind: str
    title: str
    body: str = ""
    actor: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Draft:
    external_id: str
    name: str
    domain: str
    industry: str
    employees: int
    region: str
    segment: str
    language: str
    touch: str
    stage: str = LifecycleStage.ONBOARDING
    owners: tuple[str | None, str | None, str | None] = (None, None, None)
    first_start: date | None = None
    churn_date: date | None = None
    churn_reason: str = ""
    rows: list[_Row] = field(default_factory=list)
    people: list[_Person] = field(default_factory=list)
    events: list[_Event] = field(default_factory=list)
    handoff: dict[str, Any] | None = None
    expanded: bool = False
    contracted: bool = False
    cross_sold: bool = False
    reactivated: bool = False


def add_months(day: date, months: int) -> date:
    """The same day of the month ``months`` later (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def _periods(
    start: date, months: int, *, stop: date | None, today: date
) -> list[tuple[date, date]]:
    """Back-to-back contract periods from ``start`` until the one running ``today`` or ``stop``."""
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


class _Simulator:
    """Draws the company from one random generator, in a fixed order."""

    def __init__(self, *, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today
        self.taken_names: set[str] = set()
        self.taken_domains: set[str] = set()

    # Companies and people

    def company(self, *, overseas: bool) -> tuple[str, str, str, str]:
        """A unique (name, domain, industry, region).

        Plain names first; once they get crowded, a qualifier ("ホールディングス", "Group"), and
        as a last resort a number, so that any number of customers can be drawn.
        """
        rng = self.rng
        attempt = 0
        while True:
            qualifier_ja, qualifier_en = (
                rng.choice(names.COMPANY_QUALIFIERS) if attempt >= 30 else ("", "")
            )
            number = f"{attempt - 300}" if attempt >= 300 else ""
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
                return name, domain, industry, region

    def person(self, *, language: str, domain: str, taken: set[str]) -> tuple[str, str]:
        """A (name, email) unique within the customer."""
        rng = self.rng
        while True:
            if language == "en":
                given = rng.choice(names.ENGLISH_GIVEN_NAMES)
                family = rng.choice(names.ENGLISH_FAMILY_NAMES)
                name, local = f"{given} {family}", f"{given}.{family}".lower()
            else:
                family_ja, family_en = rng.choice(names.FAMILY_NAMES)
                given_ja, given_en = rng.choice(names.GIVEN_NAMES)
                name, local = f"{family_ja} {given_ja}", f"{given_en}.{family_en}"
            email = f"{local}@{domain}"
            if email not in taken:
                taken.add(email)
                return name, email

    def phone(self, *, overseas: bool) -> str:
        rng = self.rng
        if overseas:
            return f"+65 {rng.randint(6000, 6999)} {rng.randint(1000, 9999)}"
        area = rng.choice(("03", "06", "052", "092", "011"))
        return f"{area}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"

    # One customer

    def customer(self, *, number: int, start: date, fate: str | None, force_expand: bool) -> _Draft:
        rng, today = self.rng, self.today
        segment = rng.choices((ENTERPRISE, MID_MARKET, SMB), weights=(20, 35, 45))[0]
        overseas = rng.random() < 0.08
        name, domain, industry, region = self.company(overseas=overseas)
        employees = {
            ENTERPRISE: rng.randint(1000, 20000),
            MID_MARKET: rng.randint(100, 999),
            SMB: rng.randint(10, 99),
        }[segment]
        touch = {ENTERPRISE: TouchModel.HIGH, MID_MARKET: TouchModel.LOW, SMB: TouchModel.TECH}[
            segment
        ]
        draft = _Draft(
            external_id=f"C-{number:04d}",
            name=name,
            domain=domain,
            industry=industry,
            employees=employees,
            region=region,
            segment=segment,
            language="en" if overseas else "ja",
            touch=touch,
            first_start=start,
        )
        onboarding = rng.choice(ONBOARDING_CSMS)
        adoption = rng.choice(ADOPTION_CSMS)
        expansion = rng.choice(EXPANSION_CSMS) if touch != TouchModel.TECH else None
        draft.owners = (onboarding, adoption, expansion)

        bill = {
            ENTERPRISE: 12,
            MID_MARKET: 12 if rng.random() < 0.6 else 1,
            SMB: 1 if rng.random() < 0.8 else 12,
        }[segment]
        rank = {
            ENTERPRISE: 3 if rng.random() < 0.7 else 2,
            MID_MARKET: 2 if rng.random() < 0.65 else 1,
            SMB: 1 if rng.random() < 0.8 else 2,
        }[segment]
        seats = {
            ENTERPRISE: rng.randint(80, 400),
            MID_MARKET: rng.randint(20, 80),
            SMB: rng.randint(3, 15),
        }[segment]
        discount = Decimal(
            {
                ENTERPRISE: rng.choice(("0", "0.05", "0.10")),
                MID_MARKET: rng.choice(("0", "0", "0.05")),
                SMB: "0",
            }[segment]
        )
        if fate is None:  # left to chance
            churn_probability = {ENTERPRISE: 0.08, MID_MARKET: 0.18, SMB: 0.3}[segment]
            if rng.random() < churn_probability:
                fate = "reactivate" if rng.random() < 0.12 else "churn"

        # When does the customer leave? At a renewal, leaving room to come back if it will.
        churn_at: date | None = None
        if fate in ("churn", "reactivate"):
            latest = add_months(today, -3) if fate == "reactivate" else today
            renewals = [end for _begin, end in _periods(start, bill, stop=None, today=today)]
            eligible = [day for day in renewals if day <= latest]
            if eligible:
                churn_at = rng.choice(eligible)
            else:
                fate = "stay"

        self._main_product(
            draft, start=start, bill=bill, rank=rank, seats=seats, discount=discount,
            churn_at=churn_at, force_expand=force_expand,
        )  # fmt: skip
        self._add_ons(draft, start=start, bill=bill, segment=segment, churn_at=churn_at)
        active_since = start
        if churn_at is not None:
            draft.churn_date = churn_at
            draft.churn_reason = rng.choice(names.CHURN_REASONS)
            for row in draft.rows:
                if row.end == churn_at:
                    row.status = SubscriptionStatus.CANCELED
            draft.events.append(
                _Event(churn_at, TimelineKind.NOTE, "解約", draft.churn_reason, adoption)
            )
        if fate == "reactivate" and churn_at is not None:
            back = add_months(churn_at, rng.randint(2, 3))
            returning_rank = max(1, rank - 1)
            returning_seats = max(1, round(seats * 0.7))
            for begin, end in _periods(back, 1, stop=None, today=today):
                draft.rows.append(
                    _Row(ANALYTICS, returning_rank, returning_seats, begin, end, 1, Decimal(0))
                )
            draft.events.append(
                _Event(
                    back, TimelineKind.NOTE, "再契約",
                    f"{ANALYTICS.name} {ANALYTICS.plan(returning_rank).name}"
                    f"({returning_seats}席、月額契約)で利用を再開。",
                    onboarding,
                )
            )  # fmt: skip
            draft.reactivated = True
            draft.churn_date, draft.churn_reason = None, ""
            active_since = back

        draft.stage = self._stage(draft, segment=segment, active_since=active_since)
        self._people(draft, overseas=overseas, start=start)
        self._timeline(draft, active_since=active_since)
        return draft

    def _main_product(
        self,
        draft: _Draft,
        *,
        start: date,
        bill: int,
        rank: int,
        seats: int,
        discount: Decimal,
        churn_at: date | None,
        force_expand: bool,
    ) -> None:
        rng = self.rng
        up, down = (0.15, 0.06) if bill == 12 else (0.035, 0.012)
        periods = _periods(start, bill, stop=churn_at, today=self.today)
        actor = draft.owners[2] or draft.owners[1]
        for index, (begin, end) in enumerate(periods):
            leaving = churn_at is not None and end == churn_at  # no change in a last period
            if index > 0 and not leaving:
                draw = rng.random()
                if (force_expand and index == 1) or draw < up:
                    if rank < 3 and rng.random() < 0.35:
                        title = f"アップセル: {ANALYTICS.plan(rank).name} → {ANALYTICS.plan(rank + 1).name}"
                        rank += 1
                    else:
                        more = max(1, round(seats * rng.uniform(0.1, 0.4)))
                        title = f"席数追加: {seats}席 → {seats + more}席"
                        seats += more
                    draft.expanded = True
                    draft.events.append(
                        _Event(begin, TimelineKind.SUBSCRIPTION_CHANGED, title, actor=actor)
                    )
                elif draw < up + down:
                    if rank > 1 and rng.random() < 0.25:
                        title = f"プラン変更: {ANALYTICS.plan(rank).name} → {ANALYTICS.plan(rank - 1).name}"
                        rank -= 1
                    else:
                        fewer = max(1, round(seats * rng.uniform(0.1, 0.3)))
                        fewer = min(fewer, seats - 1)
                        title = f"席数削減: {seats}席 → {seats - fewer}席"
                        seats -= fewer
                    draft.contracted = True
                    draft.events.append(
                        _Event(begin, TimelineKind.SUBSCRIPTION_CHANGED, title, actor=actor)
                    )
            draft.rows.append(_Row(ANALYTICS, rank, seats, begin, end, bill, discount))

    def _add_ons(
        self, draft: _Draft, *, start: date, bill: int, segment: str, churn_at: date | None
    ) -> None:
        rng, today = self.rng, self.today
        stop = churn_at or today
        cross_sell = {ENTERPRISE: 0.45, MID_MARKET: 0.3, SMB: 0.08}[segment]
        if rng.random() < cross_sell:
            begin = add_months(start, rng.randint(3, 12))
            rank = 1 if rng.random() < 0.7 else 2
            connectors = rng.randint(2, 5) if segment == ENTERPRISE else rng.randint(1, 2)
            if begin < stop and begin <= today:
                for period_start, period_end in _periods(begin, bill, stop=churn_at, today=today):
                    draft.rows.append(
                        _Row(CONNECT, rank, connectors, period_start, period_end, bill, Decimal(0))
                    )
                draft.cross_sold = True
                draft.events.append(
                    _Event(
                        begin, TimelineKind.SUBSCRIPTION_CHANGED,
                        f"クロスセル: {CONNECT.name} {CONNECT.plan(rank).name} 契約開始",
                        f"コネクタ {connectors} 本。", draft.owners[2] or draft.owners[1],
                    )
                )  # fmt: skip
        if segment == ENTERPRISE and rng.random() < 0.4:
            for period_start, period_end in _periods(start, 12, stop=churn_at, today=today):
                draft.rows.append(_Row(SUPPORT, 1, 1, period_start, period_end, 12, Decimal(0)))

    def _stage(self, draft: _Draft, *, segment: str, active_since: date) -> str:
        if draft.churn_date is not None:
            return LifecycleStage.CHURNED
        onboarding_days = {ENTERPRISE: 120, MID_MARKET: 90, SMB: 45}[segment]
        if (self.today - active_since).days < onboarding_days:
            return LifecycleStage.ONBOARDING
        mature = (self.today - active_since).days >= 365
        if mature and (draft.expanded or draft.cross_sold or self.rng.random() < 0.2):
            return LifecycleStage.EXPANSION
        return LifecycleStage.ADOPTION

    def _people(self, draft: _Draft, *, overseas: bool, start: date) -> None:
        rng = self.rng
        taken: set[str] = set()
        end_users = {ENTERPRISE: 5, MID_MARKET: 3, SMB: rng.randint(1, 2)}[draft.segment]
        roles = [
            ContactRole.CHAMPION,
            ContactRole.ADMIN,
            ContactRole.DECISION_MAKER,
            ContactRole.BILLING,
            *[ContactRole.END_USER] * end_users,
        ]
        users = 0
        for role in roles:
            language = draft.language
            if language == "ja" and role == ContactRole.END_USER and rng.random() < 0.05:
                language = "en"  # a colleague who prefers English
            name, email = self.person(language=language, domain=draft.domain, taken=taken)
            titles = names.ENGLISH_JOB_TITLES if language == "en" else names.JOB_TITLES
            product_user = ""
            if role in (ContactRole.CHAMPION, ContactRole.ADMIN, ContactRole.END_USER):
                users += 1
                product_user = f"{draft.external_id.lower()}-u{users:02d}"
            draft.people.append(
                _Person(
                    name=name,
                    email=email,
                    role=role,
                    language=language,
                    job_title=rng.choice(titles[role]),
                    phone=self.phone(overseas=overseas)
                    if role in (ContactRole.CHAMPION, ContactRole.ADMIN)
                    else "",
                    product_user_id=product_user,
                    started_on=start,
                )
            )

    def _timeline(self, draft: _Draft, *, active_since: date) -> None:
        """Kickoff, trainings, review meetings and notes of the customer's life so far."""
        rng, today = self.rng, self.today
        start = draft.first_start
        assert start is not None
        onboarding, adoption, expansion = draft.owners
        end = draft.churn_date or today
        champion = draft.people[0].name
        if draft.touch == TouchModel.TECH:
            draft.events.append(
                _Event(
                    start + timedelta(days=rng.randint(2, 7)), TimelineKind.TRAINING,
                    "オンライン導入説明会に参加",
                    "録画とチュートリアル(初期設定チェックリスト)を案内。", onboarding,
                )
            )  # fmt: skip
        else:
            draft.events.append(
                _Event(
                    start + timedelta(days=rng.randint(3, 10)), TimelineKind.MEETING,
                    "キックオフミーティング",
                    f"導入目的・成功の定義・スケジュールを合意。推進担当: {champion}様。",
                    onboarding,
                )
            )  # fmt: skip
            trainings = (
                (("管理者向けトレーニング", 14), ("エンドユーザー向け操作トレーニング", 30),
                 ("ダッシュボード作成ハンズオン", 45))
                if draft.touch == TouchModel.HIGH
                else (("導入セミナー(1対多)", 14), ("個別Q&Aセッション", 35))
            )  # fmt: skip
            for title, offset in trainings:
                draft.events.append(
                    _Event(
                        start + timedelta(days=offset + rng.randint(0, 5)),
                        TimelineKind.TRAINING, title, "参加者の理解度は良好。", onboarding,
                    )
                )  # fmt: skip
            every = 3 if draft.touch == TouchModel.HIGH else 6
            review = 1
            day = add_months(active_since, every)
            while day < end:
                draft.events.append(
                    _Event(
                        day + timedelta(days=rng.randint(0, 10)), TimelineKind.REVIEW_MEETING,
                        f"定例レビューミーティング(第{review}回)",
                        "利用状況・目標の進捗を共有し、次の四半期の施策を合意。",
                        expansion if draft.stage == LifecycleStage.EXPANSION else adoption,
                    )
                )  # fmt: skip
                review += 1
                day = add_months(day, every)
        for _note in range(rng.randint(1, 3)):
            title, body = rng.choice(names.NOTES)
            span = max(1, (end - start).days)
            draft.events.append(
                _Event(start + timedelta(days=rng.randint(0, span)), TimelineKind.NOTE,
                       title, body, adoption)
            )  # fmt: skip
        if draft.handoff is None and (today - start).days <= 120 and draft.churn_date is None:
            people = {person.role: person.name for person in draft.people}
            handed = start - timedelta(days=rng.randint(3, 10))
            draft.handoff = {
                "desired_outcomes": rng.choice(names.HANDOFF_OUTCOMES),
                "pains": rng.choice(names.HANDOFF_PAINS),
                "stakeholders": rng.choice(names.HANDOFF_STAKEHOLDERS).format(
                    decision=people[ContactRole.DECISION_MAKER],
                    champion=people[ContactRole.CHAMPION],
                    admin=people[ContactRole.ADMIN],
                ),
                "contract_notes": rng.choice(names.HANDOFF_CONTRACT_NOTES),
                "risks": rng.choice(names.HANDOFF_RISKS),
                "handed_off_on": handed,
            }
            draft.events.append(
                _Event(handed, TimelineKind.HANDOFF_RECORDED, "営業からの引き継ぎを記録",
                       draft.handoff["desired_outcomes"], "manager")
            )  # fmt: skip

    def change_admin(self, drafts: list[_Draft]) -> _Draft:
        """Give one established customer a new product administrator three weeks ago."""
        today = self.today
        established = [
            d
            for d in drafts
            if d.churn_date is None
            and d.first_start is not None
            and (today - d.first_start).days >= 180
        ]
        preferred = [d for d in established if d.touch != TouchModel.TECH]
        draft = self.rng.choice(preferred or established or drafts)
        changed = today - timedelta(days=21)
        old = next(p for p in draft.people if p.role == ContactRole.ADMIN)
        old.ended_on = changed
        name, email = self.person(
            language=draft.language, domain=draft.domain, taken={p.email for p in draft.people}
        )
        users = sum(1 for p in draft.people if p.product_user_id)
        draft.people.append(
            _Person(
                name=name,
                email=email,
                role=ContactRole.ADMIN,
                language=draft.language,
                job_title=old.job_title,
                phone=self.phone(overseas=draft.language == "en"),
                product_user_id=f"{draft.external_id.lower()}-u{users + 1:02d}",
                started_on=changed,
            )
        )
        draft.events.append(
            _Event(
                changed, TimelineKind.NOTE, "管理者交代",
                f"{old.name}様が異動となり、{name}様が新しい管理者に就任。"
                "引き継ぎ状況と利用状況の変化に注意。",
                draft.owners[1],
            )
        )  # fmt: skip
        return draft


def _start_dates(rng: random.Random, *, customers: int, today: date) -> list[date]:
    """First start dates: a quarter of the book two years ago, then new customers every month."""
    this_month = today.replace(day=1)
    base = min(customers, max(3, round(customers * 0.25)))
    # Month offsets from this month: the base two years ago, then every month up to this one.
    offsets = [-HISTORY_MONTHS] * base
    rest = customers - base  # spread evenly, so that with 24 or more every month has some
    offsets += [i * HISTORY_MONTHS // rest - HISTORY_MONTHS + 1 for i in range(rest)]
    starts = []
    for offset in offsets:
        first = add_months(this_month, offset)
        day = 1 if rng.random() < 0.6 else rng.randint(1, 28)
        if first.year == today.year and first.month == today.month:
            day = min(day, today.day)
        starts.append(first.replace(day=day))
    return sorted(starts)


def _simulate(*, rng: random.Random, customers: int, today: date) -> tuple[list[_Draft], _Draft]:
    simulator = _Simulator(rng=rng, today=today)
    starts = _start_dates(rng, customers=customers, today=today)
    earliest = [i for i, day in enumerate(starts) if day <= add_months(today, -18)]
    forced = rng.sample(earliest, min(3, len(earliest)))
    fates = dict(zip(forced, ("reactivate", "churn", "stay"), strict=False))
    drafts = [
        simulator.customer(
            number=i + 1,
            start=start,
            fate=fates.get(i),
            force_expand=fates.get(i) == "stay",
        )
        for i, start in enumerate(starts)
    ]
    changed = simulator.change_admin(drafts)
    return drafts, changed


def _at(day: date, rng: random.Random, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(rng.randint(9, 17), rng.choice((0, 15, 30, 45))), zone)


def _staff() -> dict[str, User]:
    """The demo logins, created unless a user of that name exists (which is left untouched)."""
    existing = {
        user.username: user
        for user in User.objects.filter(username__in=[s.username for s in STAFF])
    }
    password = make_password(DEMO_PASSWORD)
    missing = [
        User(
            username=member.username,
            password=password,
            first_name=member.given_name,
            last_name=member.family_name,
            email=f"{member.username}@demo.kizuna.example",
            role=member.role,
            is_staff=False,
            is_superuser=False,
        )
        for member in STAFF
        if member.username not in existing
    ]
    for user in User.objects.bulk_create(missing):
        existing[user.username] = user
    return existing


def _catalog() -> tuple[dict[str, Product], dict[tuple[str, int], Plan]]:
    products: dict[str, Product] = {}
    plans: dict[tuple[str, int], Plan] = {}
    for spec in PRODUCTS:
        product, _created = Product.objects.get_or_create(
            code=spec.code, defaults={"name": spec.name, "description": spec.description}
        )
        products[spec.code] = product
        for plan_spec in spec.plans:
            plan, _created = Plan.objects.get_or_create(
                product=product,
                code=plan_spec.code,
                defaults={"name": plan_spec.name, "tier_rank": plan_spec.tier_rank},
            )
            plans[(spec.code, plan_spec.tier_rank)] = plan
    return products, plans


@transaction.atomic
def build_sample_company(
    *, seed: int = 7, customers: int = 120, today: date | None = None
) -> SampleSummary:
    """Create the demo company in an empty database and return what was created.

    Raises ``DemoDataExistsError`` when any customer exists. The same ``seed`` and ``today`` give
    the same company; ``today`` defaults to the current local date.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if Customer.objects.exists():
        raise DemoDataExistsError("the database already has customers")
    day = today or timezone.localdate()
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    drafts, changed = _simulate(rng=rng, customers=customers, today=day)

    staff = _staff()
    products, plans = _catalog()
    zone = ZoneInfo(settings.TIME_ZONE)

    def owner(username: str | None) -> User | None:
        return staff[username] if username else None

    rows = Customer.objects.bulk_create(
        [
            Customer(
                name=d.name,
                external_id=d.external_id,
                domain=d.domain,
                industry=d.industry,
                employee_count=d.employees,
                region=d.region,
                segment=d.segment,
                lifecycle_stage=d.stage,
                touch_model=d.touch,
                onboarding_owner=owner(d.owners[0]),
                adoption_owner=owner(d.owners[1]),
                expansion_owner=owner(d.owners[2]),
                first_start_date=d.first_start,
                churn_date=d.churn_date,
                churn_reason=d.churn_reason,
            )
            for d in drafts
        ]
    )
    contacts: list[Contact] = []
    subscriptions: list[Subscription] = []
    handoffs: list[SalesHandoff] = []
    entries: list[TimelineEntry] = []
    for customer, d in zip(rows, drafts, strict=True):
        contacts += [
            Contact(
                customer=customer,
                name=p.name,
                email=p.email,
                phone=p.phone,
                job_title=p.job_title,
                role=p.role,
                language=p.language,
                product_user_id=p.product_user_id,
                started_on=p.started_on,
                ended_on=p.ended_on,
            )
            for p in d.people
        ]
        subscriptions += [
            Subscription(
                customer=customer,
                product=products[r.product.code],
                plan=plans[(r.product.code, r.rank)],
                quantity=Decimal(r.quantity),
                unit=r.product.unit,
                mrr=r.mrr,
                currency="JPY",
                bill_period_months=r.bill_period_months,
                discount=r.discount,
                start_date=r.start,
                end_date=r.end,
                status=r.status,
            )
            for r in sorted(d.rows, key=lambda r: (r.start, r.product.code))
        ]
        if d.handoff is not None:
            handoffs.append(
                SalesHandoff(customer=customer, handed_off_by=staff["manager"], **d.handoff)
            )
        entries += [
            TimelineEntry(
                customer=customer,
                kind=e.kind,
                occurred_at=_at(e.day, rng, zone),
                actor=owner(e.actor),
                title=e.title,
                body=e.body,
                payload=e.payload,
            )
            for e in sorted(d.events, key=lambda e: e.day)
            if e.day < day
        ]
    Contact.objects.bulk_create(contacts, batch_size=500)
    Subscription.objects.bulk_create(subscriptions, batch_size=500)
    SubscriptionChange.objects.bulk_create(
        [
            SubscriptionChange(
                subscription=s,
                changed_at=datetime.combine(s.start_date, time(9), zone),
                source="demo",
                changes={"created": [None, str(s.start_date)]},
            )
            for s in subscriptions
        ],
        batch_size=500,
    )
    SalesHandoff.objects.bulk_create(handoffs)
    TimelineEntry.objects.bulk_create(entries, batch_size=500)

    in_service = [r for d in drafts for r in d.rows if r.start <= day < r.end]
    return SampleSummary(
        today=day,
        users=tuple(member.username for member in STAFF),
        products=len(products),
        plans=len(plans),
        customers=len(drafts),
        customers_in_service=sum(1 for d in drafts if any(r.start <= day < r.end for r in d.rows)),
        churned_customers=sum(1 for d in drafts if d.stage == LifecycleStage.CHURNED),
        reactivated_customers=sum(1 for d in drafts if d.reactivated),
        expanded_customers=sum(1 for d in drafts if d.expanded),
        contracted_customers=sum(1 for d in drafts if d.contracted),
        cross_sold_customers=sum(1 for d in drafts if d.cross_sold),
        subscriptions=len(subscriptions),
        contacts=len(contacts),
        handoffs=len(handoffs),
        timeline_entries=len(entries),
        mrr=sum((r.mrr for r in in_service), Decimal(0)),
        admin_changed_customer=changed.name,
    )
