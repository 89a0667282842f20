"""The demo's onboarding: programs, customer plans, goals and kickoffs, from the simulated story.

The CS team of the demo company runs two programs. The **standard program** (high and low
touch) has two versions: v1 holds one long administrator training, where many customers stall
(the simulation's slow onboardings stall at connecting the data source, which that training
ends with); v2, published a few months before today, splits the training into two short
sessions and adds a day-14 check-in. The **self-serve program** (tech touch) relies on a
webinar, tutorials, a checklist and automatic milestones (the first login, the first report,
60% of the seats in use). The programs are entered through the version editor's forms and
published through ``programs.publish``.

Every customer that started within the usage history gets a plan of the version published on
its first start date. What is done, when and by whom is replayed from the story (``replay``):
manual milestones on the day the simulation reaches them (a share of the customer's time to
value; the data-source stall later for slow onboardings), automatic ones on the day the data
says (the first event of the type in the lake, as ``check_completions`` dates it; the first day
the metric history shows 60% of the seats in use), never before what they depend on and never
after the customer left.

Plans that were over by today (completed, or cancelled on the day the customer left) are the
history: written in bulk, with the rows and timeline entries the services would have written,
because the services take tens of milliseconds per milestone. Plans still open go through the
services (``create_plan``, ``complete_milestone``, ``set_milestone_status`` for the stalled ones,
``complete_task``), as do every kickoff record (``prefill_kickoff`` + ``save_kickoff``) and goal
(``add_goal``, ``tick_checklist_item``); metric goals are achieved on the first day the metric
history meets them. The services date a few announcements now (plan created, kickoff, goals,
blocked, link shared): those are dated back after commit. The simulation's own
``onboarding.completed`` entries of these customers become the plans' (the engine announces
completions now). Finally the daily job's goal evaluation and status refresh run as of the
demo's today; the job itself would then find nothing left to do.
"""

import random
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import duckdb
import ibis
import pyarrow as pa
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from kizuna.analytics import engine, lake
from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.customers.models import Customer, TouchModel
from kizuna.demo import names
from kizuna.demo.simulation import ADMIN, CHAMPION, DECISION_MAKER, SimulatedCustomer, add_months
from kizuna.onboarding import goals, links, plans, programs
from kizuna.onboarding.calendar import WorkCalendar, load_calendar
from kizuna.onboarding.forms import FollowUpForm, MilestoneForm, ResourceForm
from kizuna.onboarding.models import (
    CompletedVia,
    CompletionKind,
    GoalKind,
    GoalStatus,
    ITLiteracy,
    Milestone,
    MilestoneStatus,
    OnboardingPlan,
    OwnerSide,
    Phase,
    PlanLink,
    PlanMilestone,
    PlanStatus,
    PlanTask,
    Program,
    ProgramVersion,
    SuccessGoal,
)
from kizuna.onboarding.status import refresh_statuses

if TYPE_CHECKING:
    from kizuna.demo.load import LoadContext, StageProgress

CSM, CUSTOMER = OwnerSide.CSM.value, OwnerSide.CUSTOMER.value
STANDARD, SELF_SERVE = "standard", "self-serve"
# The standard program's v2 was published this long before today (at most 40% of the history).
V2_DAYS = 120
# A share of 60% of the seats used in 28 days: the self-serve milestone and the metric goals.
SEAT_METRIC, SEAT_TARGET = "seat_utilisation_28d", 0.6
STALL_KEYS = ("admin_training", "admin_training_data", "setup_checklist")
# What this stage adds to customers' timelines (the engine's services write the same kinds);
# ``onboarding.completed``, which the timeline stage writes from the simulation, it takes over.
TIMELINE_KINDS = (
    TimelineKind.ONBOARDING_PLAN_CREATED,
    TimelineKind.MILESTONE_CHANGED,
    TimelineKind.KICKOFF_RECORDED,
    TimelineKind.GOAL_AGREED,
    TimelineKind.GOAL_ACHIEVED,
    TimelineKind.ONBOARDING_LINK_SHARED,
    plans.FOLLOW_UP_DONE,
    plans.PLAN_CANCELLED,
)
HELP = "https://help.example.com/mirai"


@dataclass(frozen=True)
class MilestoneSpec:
    """A milestone of a program version, as a CS manager enters it in the version editor."""

    key: str
    name: str
    phase: int  # index into the version's phases
    owner: str
    due: int  # days after the start
    description: str = ""
    after: tuple[str, ...] = ()
    event_type: str = ""  # completed by the first product event of this type
    metric: tuple[str, str, float] | None = None  # completed when the metric reaches this
    required: bool = True
    resources: tuple[tuple[str, str, str, str], ...] = ()  # kind, title, address, language


@dataclass(frozen=True)
class VersionSpec:
    phases: tuple[str, ...]
    milestones: tuple[MilestoneSpec, ...]
    follow_ups: tuple[tuple[int, str, str], ...]  # day, name, description
    target_days: int


KICKOFF = MilestoneSpec(
    "kickoff", "キックオフミーティング", 0, CSM, 10,
    "導入目的・成功の定義(ゴール)・スケジュール・体制を顧客と合意する。",
    resources=(
        ("manual", "キックオフ資料テンプレート", f"{HELP}/onboarding/kickoff", "ja"),
        ("manual", "Kickoff deck template", f"{HELP}/en/onboarding/kickoff", "en"),
    ),
)  # fmt: skip
ACCOUNT_SETUP = MilestoneSpec(
    "account_setup", "アカウント設定(管理者の初回ログイン)", 0, CUSTOMER, 7,
    "管理者が招待メールからログインし、パスワードと二要素認証を設定する。初回ログインで自動的に完了。",
    event_type="login",
    resources=(("manual", "管理者アカウントの初期設定", f"{HELP}/admin/first-login", ""),),
)  # fmt: skip
INITIAL_CONFIGURATION = MilestoneSpec(
    "initial_configuration", "初期設定(組織・権限・データソースの登録)", 1, CUSTOMER, 18,
    "部署とユーザー権限を登録し、接続するデータソースの接続情報を準備する。",
    after=("kickoff", "account_setup"),
    resources=(
        ("manual", "組織と権限の設定", f"{HELP}/admin/organization", "ja"),
        ("video", "初期設定の流れ(8分)", "https://videos.example.com/mirai/initial-setup", ""),
    ),
)  # fmt: skip
END_USER_ROLLOUT = MilestoneSpec(
    "end_user_rollout", "エンドユーザー展開", 2, CUSTOMER, 60,
    "利用部門のメンバーを招待し、エンドユーザー説明会を開催する。",
    resources=(
        ("seminar", "エンドユーザー向け操作説明会(毎週木曜)", "https://events.example.com/mirai/end-user", "ja"),
        ("video", "はじめてのダッシュボード(5分)", "https://videos.example.com/mirai/first-dashboard", ""),
    ),
)  # fmt: skip
GO_LIVE = MilestoneSpec(
    "go_live", "本番運用開始", 2, CSM, 75,
    "定例会議・日次業務で Mirai Analytics のダッシュボードを使い始めたことを確認する。",
    after=("end_user_rollout",),
)  # fmt: skip
FIRST_OUTCOME = MilestoneSpec(
    "first_outcome", "初期成果の確認", 3, CUSTOMER, 90,
    "キックオフで合意したゴールに対する最初の成果(例: 最初のレポートを経営会議で共有)を確認する。",
    after=("go_live",),
    resources=(("manual", "成果レポートの作り方", f"{HELP}/reports/first-outcome", ""),),
)  # fmt: skip
STANDARD_PHASES = ("キックオフと準備", "初期設定とトレーニング", "社内展開", "初期成果")
STANDARD_V1 = VersionSpec(
    phases=STANDARD_PHASES,
    milestones=(
        KICKOFF,
        ACCOUNT_SETUP,
        INITIAL_CONFIGURATION,
        MilestoneSpec(
            "admin_training", "管理者トレーニング", 1, CSM, 21,
            "管理者向けの研修(3時間・1回)。データソースの接続、権限設定、ダッシュボード作成まで"
            "を説明し、管理者がデータソースを接続して完了。",
            after=("initial_configuration",),
            resources=(
                ("seminar", "管理者トレーニング(3時間)", "https://events.example.com/mirai/admin-training", "ja"),
                ("manual", "データソース接続ガイド", f"{HELP}/admin/data-sources", ""),
            ),
        ),
        replace(END_USER_ROLLOUT, after=("admin_training",)),
        GO_LIVE,
        FIRST_OUTCOME,
    ),
    follow_ups=(
        (7, "導入初週のチェックイン", "ログイン状況と初期設定の進み具合を確認する。"),
        (30, "30日レビュー", "利用状況をレビューし、社内展開の計画を合意する。"),
        (60, "60日レビュー(定着確認)", "定着状況とゴールの進捗を確認し、次の目標を話し合う。"),
    ),
    target_days=90,
)  # fmt: skip
STANDARD_V2_CHANGE = (
    "v1 では管理者トレーニング(3時間・1回)の後、データソースの接続で止まる顧客が多かった"
    "(つまずきポイント)。トレーニングを短い2回のセッション(①データ連携 ②ダッシュボードと権限)"
    "に分け、14日目のチェックインを追加。"
)
STANDARD_V2_TRAININGS = (
    MilestoneSpec(
        "admin_training_data", "管理者トレーニング①: データ連携", 1, CSM, 21,
        "90分のハンズオン。CSM と一緒にデータソースを接続し、最初のデータ取り込みまで行う。",
        after=("initial_configuration",),
        resources=(
            ("seminar", "データ連携ハンズオン(90分)", "https://events.example.com/mirai/data-hands-on", "ja"),
            ("manual", "データソース接続ガイド", f"{HELP}/admin/data-sources", ""),
        ),
    ),
    MilestoneSpec(
        "admin_training_dashboards", "管理者トレーニング②: ダッシュボードと権限", 1, CSM, 35,
        "90分。部門別ダッシュボードの作り方と閲覧権限の設計を学ぶ。",
        after=("admin_training_data",),
        resources=(
            ("seminar", "ダッシュボード設計セッション(90分)", "https://events.example.com/mirai/dashboards", "ja"),
            ("video", "権限設計のベストプラクティス(12分)", "https://videos.example.com/mirai/permissions", ""),
        ),
    ),
)  # fmt: skip
STANDARD_V2_FOLLOW_UP = (14, "14日目チェックイン(データ連携の確認)", "データソースが接続できたかを確認し、止まっていれば一緒に進める。")  # fmt: skip
SELF_SERVE_V1 = VersionSpec(
    phases=("はじめに", "セットアップ", "チームで活用"),
    milestones=(
        MilestoneSpec(
            "welcome_webinar", "オンライン導入説明会に参加", 0, CUSTOMER, 10,
            "毎週開催のオンライン説明会(45分)で、基本操作と初期設定の流れを知る。録画もあります。",
            resources=(
                ("seminar", "オンライン導入説明会(毎週火曜)", "https://events.example.com/mirai/welcome", "ja"),
                ("video", "導入説明会の録画(45分)", "https://videos.example.com/mirai/welcome-recording", ""),
            ),
        ),
        MilestoneSpec(
            "first_login", "管理者の初回ログイン", 0, CUSTOMER, 7,
            "招待メールからログインする。初回ログインで自動的に完了。", event_type="login",
            resources=(("manual", "はじめてのログイン", f"{HELP}/start/login", ""),),
        ),
        MilestoneSpec(
            "setup_checklist", "初期設定チェックリストの完了", 1, CUSTOMER, 14,
            "チェックリストに沿って、ユーザー登録・データソース接続・通知設定を済ませる。",
            after=("first_login",),
            resources=(
                ("manual", "初期設定チェックリスト", f"{HELP}/start/checklist", "ja"),
                ("manual", "Setup checklist", f"{HELP}/en/start/checklist", "en"),
                ("video", "5分でわかる初期設定", "https://videos.example.com/mirai/setup-5min", ""),
            ),
        ),
        MilestoneSpec(
            "first_report", "最初のレポートを作成", 1, CUSTOMER, 40,
            "テンプレートから最初のレポートを作成する。レポートの作成で自動的に完了。",
            after=("first_login",), event_type="report_created",
            resources=(("video", "レポート作成チュートリアル(6分)", "https://videos.example.com/mirai/first-report", ""),),
        ),
        MilestoneSpec(
            "team_active", "ライセンスの6割が利用中", 2, CUSTOMER, 45,
            "直近28日間に、契約ライセンスの60%以上のメンバーが利用した状態。自動的に完了。",
            after=("setup_checklist",), metric=(SEAT_METRIC, ">=", SEAT_TARGET),
            resources=(("manual", "メンバーを招待する", f"{HELP}/admin/invite", ""),),
        ),
    ),
    follow_ups=(
        (14, "利用状況の確認(14日目)", "ログインと初期設定の状況を確認し、止まっていればメールで案内する。"),
        (45, "オンライン相談会のご案内(45日目)", "活用が進んでいない顧客に個別相談会を案内する。"),
    ),
    target_days=60,
)  # fmt: skip

LOOKAHEAD = timedelta(days=14)
LATE_REASONS = (
    "お客様の担当者が繁忙期で、作業の時間が取れていない。",
    "社内の利用申請(稟議)の承認待ち。",
)
BLOCKED_REASONS = (
    "情報システム部門の工数が確保できず、データソース接続の日程が決まらない。",
    "データベースの接続情報(認証情報)の社内承認待ち。",
    "社内ネットワークの接続許可(IPアドレスの登録)の申請中。",
)
KICKOFF_NOTES = (
    "参加者: {champion}様(推進担当)、{admin}様(管理者)、{decision}様。成功の定義とスケジュールを合意。",
    "{champion}様が社内の推進役。管理者の{admin}様はデータ基盤の担当を兼務しており多忙。",
    "{decision}様から、四半期末までに経営会議で成果を共有したいとの要望。",
)
TASK_OUTCOMES = {
    "ok": ("予定どおり進行。", "順調。次回までに社内展開の準備を進めていただく。",
           "利用状況を共有し、次のステップを合意。"),
    "stalled": ("データソースの接続が未完了。情報システム部門の工数確保を依頼。",
                "管理者の作業が止まっている。トレーニング日程の再調整を提案。"),
}  # fmt: skip
CHECKLIST_STANDARD = (
    ("主要KPIのダッシュボードを作成する", 0.8),
    ("利用部門のメンバーを招待する", 0.9),
    ("最初のレポートを会議で共有する", 1.0),
)
CHECKLIST_SELF_SERVE = (
    ("最初のダッシュボードを作る", 0.8),
    ("チームのメンバーを招待する", 0.9),
)
METRIC_GOAL_TITLE = "ライセンスの60%以上が日常的に利用している状態にする"
CHECKLIST_GOAL_TITLE = "初期成果チェックリスト"
CANCEL_REASON = "解約のためオンボーディングを中止。"


@dataclass
class Story:
    """What the simulation says of one customer's first onboarding."""

    customer: SimulatedCustomer
    customer_id: int
    start: date
    days: int  # time to value
    slow: bool
    kickoff: date | None
    ended: date | None  # the customer left (the first time) on this day
    rng: random.Random

    def share(self, share: float) -> date:
        return self.start + timedelta(days=round(self.days * share))

    @property
    def stall(self) -> date:
        """When the data source got connected: where slow onboardings lose their weeks."""
        return self.share(0.7 if self.slow else 0.35)

    def planned(self, key: str) -> date | None:
        """The day the story completes a milestone (None: the engine decides, or never)."""
        if key in ("kickoff", "welcome_webinar"):
            return self.kickoff
        if key in STALL_KEYS:
            return self.stall
        if key == "admin_training_dashboards":
            rollout = self.share(0.8)
            return self.stall + timedelta(days=max(3, round((rollout - self.stall).days * 0.3)))
        return {
            "initial_configuration": self.share(0.2),
            "end_user_rollout": self.share(0.8),
            "go_live": self.share(0.9),
            "first_outcome": self.share(1.0),
        }.get(key)


# -- programs -------------------------------------------------------------------------------------


def _check(form: forms.BaseForm, what: str) -> None:
    if not form.is_valid():
        raise ValidationError(f"{what}: {form.errors.as_text()}")


def _add_milestone(
    version: ProgramVersion, spec: MilestoneSpec, phases: list[Phase], position: int
) -> None:
    """Save a milestone through the version editor's form (its checks included)."""
    keys = dict(version.milestones.values_list("key", "pk"))
    data: dict[str, Any] = {
        "key": spec.key, "name": spec.name, "description": spec.description,
        "phase": phases[spec.phase].pk, "owner_side": spec.owner, "due_offset_days": spec.due,
        "required": spec.required, "position": position,
        "depends_on": [keys[key] for key in spec.after],
        "completion_kind": CompletionKind.MANUAL,
    }  # fmt: skip
    if spec.event_type:
        data.update(completion_kind=CompletionKind.FIRST_EVENT, event_type=spec.event_type)
    elif spec.metric:
        metric, op, value = spec.metric
        data.update(completion_kind=CompletionKind.METRIC, metric=metric, op=op, threshold=value)
    existing = version.milestones.filter(key=spec.key).first()
    form = MilestoneForm(data, instance=existing, version=version)
    _check(form, spec.key)
    milestone = form.save()
    for kind, title, url, language in spec.resources:
        resource_form = ResourceForm(
            {"kind": kind, "title": title, "url": url, "language": language}
        )
        _check(resource_form, f"{spec.key} {title}")
        resource = resource_form.save(commit=False)
        resource.milestone = milestone
        resource.save()


def _add_follow_up(version: ProgramVersion, day: int, name: str, description: str) -> None:
    form = FollowUpForm(
        {"name": name, "day_offset": day, "owner_side": CSM, "description": description}
    )
    _check(form, name)
    follow_up = form.save(commit=False)
    follow_up.version = version
    follow_up.save()


def _fill(version: ProgramVersion, spec: VersionSpec) -> None:
    phases = [
        Phase.objects.create(version=version, name=name, position=n)
        for n, name in enumerate(spec.phases)
    ]
    for position, milestone in enumerate(spec.milestones):
        _add_milestone(version, milestone, phases, position)
    for day, name, description in spec.follow_ups:
        _add_follow_up(version, day, name, description)


def _moment(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), ZoneInfo(settings.TIME_ZONE))


def _publish(version: ProgramVersion, *, actor: User, on: date) -> ProgramVersion:
    """Publish, then date the version as it happened in the company's history."""
    programs.publish(version, actor=actor)
    ProgramVersion.objects.filter(pk=version.pk).update(
        created_at=_moment(on - timedelta(days=14)), published_at=_moment(on, 16)
    )
    version.refresh_from_db()
    return version


def create_programs(
    *, actor: User, v1_on: date, v2_on: date
) -> tuple[ProgramVersion, ProgramVersion, Callable[[], ProgramVersion]]:
    """The two programs; returns (standard v1, self-serve v1, publish the standard v2).

    The standard v2 is prepared as a draft (copied from v1, then its administrator training
    split in two and a day-14 check-in added); the caller publishes it when the story reaches
    its day, so that plans before it are made from v1.
    """
    standard = programs.create_program(
        key=STANDARD, name="スタンダード導入プログラム", touch_model="", priority=100,
        description="ハイタッチ・ロータッチのお客様向け。CSM がキックオフからトレーニング、"
        "社内展開、初期成果の確認まで伴走する。",
        target_days=STANDARD_V1.target_days, actor=actor,
    )  # fmt: skip
    self_serve = programs.create_program(
        key=SELF_SERVE, name="セルフサーブ導入プログラム", touch_model=TouchModel.TECH,
        priority=50,
        description="テックタッチのお客様向け。説明会・チュートリアル・チェックリストで自走し、"
        "製品の利用データでマイルストーンが自動的に完了する。",
        target_days=SELF_SERVE_V1.target_days, actor=actor,
    )  # fmt: skip
    Program.objects.filter(pk__in=(standard.pk, self_serve.pk)).update(created_at=_moment(v1_on))
    v1 = standard.versions.get()
    _fill(v1, STANDARD_V1)
    v1 = _publish(v1, actor=actor, on=v1_on)
    tech = self_serve.versions.get()
    _fill(tech, SELF_SERVE_V1)
    tech = _publish(tech, actor=actor, on=v1_on)

    draft = programs.new_draft(standard, actor=actor)
    draft.change_note = STANDARD_V2_CHANGE
    draft.save(update_fields=["change_note"])
    draft.milestones.filter(key="admin_training").delete()
    phases = list(draft.phases.order_by("position"))
    top = draft.milestones.aggregate(top=Max("position"))["top"] or 0
    for n, spec in enumerate(STANDARD_V2_TRAININGS, start=1):
        _add_milestone(draft, spec, phases, top + n)
    rollout = draft.milestones.get(key="end_user_rollout")
    _add_milestone(
        draft,
        replace(END_USER_ROLLOUT, after=("admin_training_dashboards",)),
        phases,
        rollout.position,
    )
    _add_follow_up(draft, *STANDARD_V2_FOLLOW_UP)

    def publish_v2() -> ProgramVersion:
        return _publish(draft, actor=actor, on=v2_on)

    return v1, tech, publish_v2


# -- reading the story and the data ---------------------------------------------------------------


def story_of(c: SimulatedCustomer, customer_id: int, *, seed: int, slow_days: int) -> Story:
    kickoff = next((h.day for h in c.happenings if h.kind == "kickoff"), None)
    ended = next((h.day for h in c.happenings if h.kind == "churn"), None)
    return Story(
        customer=c,
        customer_id=customer_id,
        start=c.first_start,
        days=c.onboarding_days,
        slow=c.onboarding_days >= slow_days,
        kickoff=kickoff,
        ended=ended,
        rng=random.Random(f"{seed}:onboarding:{c.number}"),  # noqa: S311 - a reproducible story
    )


def first_events(
    starts: dict[int, date], event_types: Iterable[str], as_of: date
) -> dict[tuple[int, str], date]:
    """(customer id, event type) → the first day with such an event at or after the customer's
    start: what ``check_completions`` dates first-event milestones by (one grouped lake query)."""
    types = sorted(set(event_types))
    if not starts or not types:
        return {}
    population = pa.table(
        {
            "w_customer_id": pa.array(list(starts), pa.int64()),
            "w_start": pa.array(list(starts.values()), pa.date32()),
        }
    )
    with engine.session() as con:
        events = engine.usage_events(con, min(starts.values()), as_of)
        events = events.filter(events.event_type.isin(types))
        wanted = ibis.memtable(population)
        joined = events.join(
            wanted,
            [events.customer_id == wanted.w_customer_id, events.event_date >= wanted.w_start],
        )
        firsts = joined.group_by("customer_id", "event_type").aggregate(
            first=joined.event_date.min()
        )
        rows = firsts.to_pyarrow().to_pylist()
    return {(int(row["customer_id"]), str(row["event_type"])): row["first"] for row in rows}


def seat_days(customer_ids: Iterable[int], since: date) -> dict[int, list[date]]:
    """Per customer, the days (sorted) its seat utilisation met the target, from the lake's
    metric history (one scan of the day files)."""
    wanted = sorted(set(customer_ids))
    files = [str(p) for p in lake.metric_files() if p.parent.name >= since.isoformat()]
    if not wanted or not files:
        return {}
    con = duckdb.connect(config={"threads": settings.KIZUNA_DUCKDB_THREADS})
    try:
        con.execute("SET enable_progress_bar=false")
        rows = con.execute(
            "SELECT customer_id, day FROM read_parquet(?) WHERE metric = ? AND value >= ? "
            "AND list_contains(?, customer_id) ORDER BY customer_id, day",
            [files, SEAT_METRIC, SEAT_TARGET, wanted],
        ).fetchall()
    finally:
        con.close()
    found: dict[int, list[date]] = {}
    for customer_id, day in rows:
        found.setdefault(int(customer_id), []).append(day)
    return found


def _first_on_or_after(days: list[date], since: date) -> date | None:
    index = bisect_left(days, since)
    return days[index] if index < len(days) else None


@dataclass(frozen=True)
class Step:
    """A milestone of a version with what the replay needs."""

    milestone: Milestone
    after: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.milestone.key


def steps_of(version: ProgramVersion) -> list[Step]:
    """The version's milestones in program order (phase, then position)."""
    milestones = version.milestones.select_related("phase").prefetch_related("depends_on")
    return [
        Step(m, tuple(d.key for d in m.depends_on.all()))
        for m in milestones.order_by("phase__position", "position", "id")
    ]


@dataclass
class Replay:
    """One customer's plan as the story and the data make it."""

    story: Story
    version: ProgramVersion
    steps: list[Step]
    csm: User
    done: dict[str, tuple[date, str, User | None]] = field(default_factory=dict)
    completed_on: date | None = None
    cancelled: bool = False
    plan: OnboardingPlan | None = None

    @property
    def closed(self) -> bool:
        return self.completed_on is not None or self.cancelled


@dataclass
class Facts:
    """What the replay reads: the demo's day, the data's first events and seat days."""

    today: date
    metric_start: date
    firsts: dict[tuple[int, str], date]
    seats: dict[int, list[date]]
    staff: dict[str, User]


def replay(story: Story, version: ProgramVersion, steps: list[Step], facts: Facts) -> Replay:
    """Which milestones are done, on which day, by whom: the story's days for the manual ones,
    the data's for the automatic ones (as the engine completes them), never before what each
    depends on, never on or after the demo's today, nor after the customer left."""
    csm = facts.staff[story.customer.owners[0]]
    result = Replay(story, version, steps, csm)
    last_day = facts.today - timedelta(days=1)
    for step in steps:
        m = step.milestone
        if step.key in result.done or any(d not in result.done for d in step.after):
            continue
        ready = max([story.start, *(result.done[d][0] for d in step.after)])
        day: date | None
        if m.completion_kind == CompletionKind.FIRST_EVENT:
            day = facts.firsts.get((story.customer_id, str(m.completion.get("event_type"))))
        elif m.completion_kind == CompletionKind.METRIC:
            if story.start >= facts.metric_start:
                day = _first_on_or_after(facts.seats.get(story.customer_id, []), ready)
            else:  # before the metric history: the story's day
                day = max(story.share(0.9), ready)
        else:
            planned = story.planned(step.key)
            day = max(planned, ready) if planned is not None else None
        if day is None or day > last_day or (story.ended is not None and day > story.ended):
            continue
        if m.completion_kind != CompletionKind.MANUAL:
            result.done[step.key] = (day, CompletedVia.AUTOMATIC, None)
        elif m.owner_side == CUSTOMER and story.rng.random() < 0.6:
            result.done[step.key] = (day, CompletedVia.CUSTOMER, None)
        else:
            result.done[step.key] = (day, CompletedVia.STAFF, csm)
    required = [s.key for s in steps if s.milestone.required]
    if required and all(key in result.done for key in required):
        result.completed_on = max(result.done[key][0] for key in required)
    elif story.ended is not None and story.ended < facts.today:
        result.cancelled = True
    return result


# -- the stage ------------------------------------------------------------------------------------


def load_onboarding(ctx: "LoadContext", progress: "StageProgress") -> None:
    """Programs, plans, kickoffs, goals, follow-ups and a shared plan page for the demo.

    Plans that were over by today (completed, or cancelled when the customer left) are the
    history: written in bulk with the fields and timeline entries the services write. Plans
    still open are made and moved on through the services, as a CSM would.
    """
    today = ctx.today
    window = (today - ctx.history_start).days
    v1_on = ctx.history_start - timedelta(days=21)
    v2_on = today - timedelta(days=min(V2_DAYS, max(14, round(window * 0.4))))
    metric_start = max(ctx.history_start, add_months(ctx.latest_day, -ctx.metric_months))
    slow_days = ctx.config.onboarding.slow_days
    stories = sorted(
        (
            story_of(c, ctx.customer_ids[c.external_id], seed=ctx.seed, slow_days=slow_days)
            for c in ctx.simulated
            if ctx.history_start <= c.first_start <= today
        ),
        key=lambda s: (s.start, s.customer.number),
    )
    manager = ctx.staff["manager"]
    with transaction.atomic():
        # Programs of an earlier demo load whose customers were deleted: nothing uses them.
        Program.objects.filter(
            key__in=(STANDARD, SELF_SERVE), versions__plans__isnull=True
        ).delete()
        v1, tech, publish_v2 = create_programs(actor=manager, v1_on=v1_on, v2_on=v2_on)
        v2 = ProgramVersion.objects.get(program=v1.program, number=2)
        progress(1, 6)
        event_types = {
            str(m.completion.get("event_type"))
            for m in Milestone.objects.filter(completion_kind=CompletionKind.FIRST_EVENT)
        }
        facts = Facts(
            today=today,
            metric_start=metric_start,
            firsts=first_events({s.customer_id: s.start for s in stories}, event_types, today),
            seats=seat_days([s.customer_id for s in stories], metric_start),
            staff=ctx.staff,
        )
        steps = {v.pk: steps_of(v) for v in (v1, v2, tech)}
        replays = []
        for story in stories:
            if story.customer.touch_model == TouchModel.TECH:
                version = tech
            else:
                version = v2 if story.start >= v2_on else v1
            replays.append(replay(story, version, steps[version.pk], facts))
        progress(2, 6)
        announcements = Announcements()
        _write_history([r for r in replays if r.closed], today)
        taken_over = _take_over_completions(replays)
        # The open plans, through the services, in the order they were made.
        live = [r for r in replays if not r.closed]
        customers = Customer.objects.in_bulk([r.story.customer_id for r in live])
        for r in live:
            if r.version.pk == v1.pk:
                _run_open_plan(r, customers[r.story.customer_id], announcements)
        v2 = publish_v2()
        for r in live:
            if r.version.pk == v2.pk:
                r.version = v2
            if r.version.pk != v1.pk:
                _run_open_plan(r, customers[r.story.customer_id], announcements)
        progress(3, 6)
        _block_stalls(replays, today, announcements)
        _follow_ups(replays, today)
        progress(4, 6)
        _kickoffs(replays, today, announcements)
        _goals(replays, facts, announcements)
        _share_a_plan(replays, today, announcements)
        progress(5, 6)
        goals.evaluate_goals(today)
        for goal_id, achieved_on in SuccessGoal.objects.filter(
            plan__in=[r.plan for r in replays], achieved_on__isnull=False
        ).values_list("pk", "achieved_on"):
            if achieved_on is not None:
                when = _moment(achieved_on, 18)
                announcements.at(TimelineKind.GOAL_ACHIEVED, when, goal=goal_id)
        refresh_statuses(today)
        _date_open_plans([r for r in replays if not r.closed])
        transaction.on_commit(announcements.date_back)
    counts = dict.fromkeys(PlanStatus.values, 0)
    for status in OnboardingPlan.objects.values_list("status", flat=True):
        counts[status] += 1
    # The timeline stage's entries, as they stand after the plans took their completions over.
    ctx.counts["timeline_entries"] = ctx.counts.get("timeline_entries", 0) + taken_over
    ctx.counts["onboarding_plans"] = len(replays)
    ctx.counts.update({f"onboarding_{key}": value for key, value in counts.items()})
    progress(6, 6)


@dataclass
class Announcements:
    """When what the services announced with the time of the load really happened.

    ``at(kind, when, plan=…, milestone=…)``: the entry of that kind whose payload holds those
    values happened ``when``; the first keyword names the payload key to look entries up by.
    """

    pending: dict[tuple[str, str], dict[Any, list[tuple[dict[str, Any], datetime]]]] = field(
        default_factory=dict
    )

    def at(self, kind: str, when: datetime, **match: Any) -> None:
        key = next(iter(match))
        self.pending.setdefault((kind, key), {}).setdefault(match[key], []).append((match, when))

    def date_back(self) -> None:
        for (kind, key), by_ref in self.pending.items():
            changed = []
            lookup = {f"payload__{key}__in": list(by_ref)}
            for entry in TimelineEntry.objects.filter(kind=kind, **lookup):
                for match, when in by_ref.get(entry.payload.get(key), []):
                    if all(entry.payload.get(k) == v for k, v in match.items()):
                        entry.occurred_at = when
                        changed.append(entry)
                        break
            TimelineEntry.objects.bulk_update(changed, ["occurred_at"], batch_size=500)


def _noon(day: date) -> datetime:
    """When the services put something that happened on ``day`` on the timeline."""
    return datetime.combine(day, time(12), ZoneInfo(settings.TIME_ZONE))


def _write_history(closed: list[Replay], today: date) -> None:
    """The plans that were over by today, in bulk, as ``create_plan``, ``complete_milestone``,
    ``complete_task`` and ``cancel_plan`` would have left them (rows and timeline entries)."""
    if not closed:
        return
    calendar = load_calendar(since=min(r.story.start for r in closed))
    new_plans = []
    for r in closed:
        story = r.story
        cancelled = _moment(story.ended, 18) if r.cancelled and story.ended else None
        new_plans.append(
            OnboardingPlan(
                customer_id=story.customer_id, version=r.version, start_date=story.start,
                target_date=calendar.due(story.start, r.version.target_days),
                status=PlanStatus.CANCELLED if cancelled else PlanStatus.COMPLETED,
                completed_on=r.completed_on, cancelled_at=cancelled,
                created_at=_moment(story.start, 9), created_by=r.csm,
            )
        )  # fmt: skip
    for r, plan in zip(closed, OnboardingPlan.objects.bulk_create(new_plans), strict=True):
        r.plan = plan
    milestones: list[PlanMilestone] = []
    tasks: list[PlanTask] = []
    entries: list[TimelineEntry] = []
    for r in closed:
        milestones += _history_milestones(r, calendar, entries)
        tasks += _history_tasks(r, calendar, today)
        entries += _history_entries(r)
    PlanMilestone.objects.bulk_create(milestones, batch_size=500)
    PlanTask.objects.bulk_create(tasks, batch_size=500)
    by_plan = {r.plan.pk: r for r in closed if r.plan is not None}
    for task in tasks:
        if task.done_on is not None:
            r = by_plan[task.plan_id]
            entries.append(
                _entry(
                    r, plans.FOLLOW_UP_DONE, _("Follow-up done: %(title)s") % {"title": task.title},
                    _noon(task.done_on), {"plan": task.plan_id, "task": task.pk}, actor=r.csm,
                    body=task.outcome,
                )
            )  # fmt: skip
    TimelineEntry.objects.bulk_create(entries, batch_size=500)


def _entry(
    r: Replay,
    kind: str,
    title: str,
    when: datetime,
    payload: dict[str, Any],
    *,
    actor: User | None,
    body: str = "",
) -> TimelineEntry:
    return TimelineEntry(
        customer_id=r.story.customer_id, kind=kind, title=title[:200], body=body, actor=actor,
        occurred_at=when, payload=payload,
    )  # fmt: skip


def _history_milestones(
    r: Replay, calendar: WorkCalendar, entries: list[TimelineEntry]
) -> list[PlanMilestone]:
    """A closed plan's milestones; each completion is announced as ``complete_milestone`` does."""
    story, plan = r.story, r.plan
    assert plan is not None
    rows = []
    for step in r.steps:
        m = step.milestone
        pm = PlanMilestone(
            plan=plan, milestone=m, due_date=calendar.due(story.start, m.due_offset_days)
        )
        waited = [r.done[d][0] for d in step.after if d in r.done]
        if step.key in r.done:
            day, via, actor = r.done[step.key]
            pm.status, pm.completed_on, pm.completed_via = MilestoneStatus.DONE, day, via
            pm.completed_by = actor
            pm.started_on = min(max([story.start, *waited]), day)
            entries.append(
                _entry(
                    r, TimelineKind.MILESTONE_CHANGED,
                    _("%(milestone)s: %(status)s")
                    % {"milestone": m.name, "status": MilestoneStatus.DONE.label},
                    _noon(day),
                    {"plan": plan.pk, "milestone": m.key, "from": MilestoneStatus.IN_PROGRESS,
                     "to": MilestoneStatus.DONE, "via": via},
                    actor=actor,
                )
            )  # fmt: skip
        elif len(waited) == len(step.after):  # could start; the plan was cancelled meanwhile
            pm.status = MilestoneStatus.IN_PROGRESS
            pm.started_on = max([story.start, *waited])
        rows.append(pm)
    return rows


def _task_outcome(r: Replay, due: date) -> str:
    stalled = r.story.slow and r.story.stall > due
    return r.story.rng.choice(TASK_OUTCOMES["stalled" if stalled else "ok"])


def _history_tasks(r: Replay, calendar: WorkCalendar, today: date) -> list[PlanTask]:
    """A closed plan's follow-ups, done a day or two after they fell due (until the customer
    left)."""
    story, plan = r.story, r.plan
    assert plan is not None
    rows = []
    for f in r.version.follow_ups.all():
        due = calendar.due(story.start, f.day_offset)
        task = PlanTask(
            plan=plan, follow_up=f, title=f.name, due_date=due, owner_side=f.owner_side,
            owner=r.csm if f.owner_side == CSM else None,
        )  # fmt: skip
        if due < today and (story.ended is None or due <= story.ended):
            task.done_on = min(due + timedelta(days=story.rng.randint(0, 2)), today)
            task.outcome = _task_outcome(r, due)
        rows.append(task)
    return rows


def _history_entries(r: Replay) -> list[TimelineEntry]:
    """Plan created or cancelled, as the services announce them (completions: see
    ``_take_over_completions``)."""
    story, plan = r.story, r.plan
    assert plan is not None
    program = r.version.program
    entries = [
        _entry(
            r, TimelineKind.ONBOARDING_PLAN_CREATED,
            _("Onboarding plan created: %(program)s v%(number)s")
            % {"program": program.name, "number": r.version.number},
            _moment(story.start, 9),
            {"plan": plan.pk, "version": r.version.pk, "program": program.key,
             "start_date": story.start.isoformat(), "target_date": plan.target_date.isoformat()},
            actor=r.csm,
        )
    ]  # fmt: skip
    if plan.cancelled_at is not None:
        entries.append(
            _entry(
                r, plans.PLAN_CANCELLED, _("Onboarding plan cancelled"), plan.cancelled_at,
                {"plan": plan.pk, "version": r.version.pk}, actor=r.csm, body=CANCEL_REASON,
            )
        )  # fmt: skip
    return entries


def _completed_entry(r: Replay) -> TimelineEntry:
    """``onboarding.completed`` as ``complete_milestone`` announces a plan's completion."""
    plan, completed_on = r.plan, r.completed_on
    assert plan is not None
    assert completed_on is not None
    days = (completed_on - r.story.start).days
    last = max(r.done.values(), key=lambda done: done[0])
    return _entry(
        r, TimelineKind.ONBOARDING_COMPLETED,
        _("Onboarding completed in %(days)s days") % {"days": days},
        _noon(completed_on), {"plan": plan.pk, "version": r.version.pk, "days": days},
        actor=last[2],
    )  # fmt: skip


def _take_over_completions(replays: list[Replay]) -> int:
    """The engine announces completions now: the simulation's own ``onboarding.completed``
    entries of the customers with a plan become the plan's (one per completed plan, on its
    day) or go (the plan is not complete). Returns entries added less entries removed."""
    completed = {r.story.customer_id: r for r in replays if r.completed_on is not None}
    written = TimelineEntry.objects.filter(
        kind=TimelineKind.ONBOARDING_COMPLETED,
        customer_id__in=[r.story.customer_id for r in replays],
    )
    replaced, gone = [], []
    for entry in written.order_by("occurred_at", "pk"):
        if entry.payload.get("reactivated"):
            continue  # a comeback's second onboarding has no plan
        r = completed.pop(entry.customer_id, None)
        if r is None:
            gone.append(entry.pk)
            continue
        engine = _completed_entry(r)
        for name in ("title", "body", "actor", "occurred_at", "payload"):
            setattr(entry, name, getattr(engine, name))
        replaced.append(entry)
    TimelineEntry.objects.bulk_update(
        replaced, ["title", "body", "actor", "occurred_at", "payload"], batch_size=500
    )
    TimelineEntry.objects.filter(pk__in=gone).delete()
    TimelineEntry.objects.bulk_create([_completed_entry(r) for r in completed.values()])
    return len(completed) - len(gone)


def _run_open_plan(r: Replay, customer: Customer, announcements: Announcements) -> None:
    """An open plan, made and moved on through the services as the CSM and the customer did."""
    story = r.story
    plan = plans.create_plan(
        customer=customer, version=r.version, start_date=story.start, actor=r.csm
    )
    r.plan = plan
    announcements.at(TimelineKind.ONBOARDING_PLAN_CREATED, _moment(story.start, 9), plan=plan.pk)
    rows = {pm.milestone.key: pm for pm in plan.milestones.select_related("milestone")}
    for step in r.steps:
        if step.key in r.done:
            day, via, actor = r.done[step.key]
            plans.complete_milestone(rows[step.key], via=via, actor=actor, on=day)


def _open(replays: list[Replay]) -> list[Replay]:
    return [r for r in replays if not r.closed and r.plan is not None]


def _block_stalls(replays: list[Replay], today: date, announcements: Announcements) -> None:
    """Open plans stuck past the due date of the stall milestone, or whose next milestone the
    story makes late within the next two weeks: blocked, with the reason the CSM noted then."""
    by_plan = {r.plan.pk: r for r in _open(replays) if r.plan is not None}
    yesterday = today - timedelta(days=1)
    working = PlanMilestone.objects.filter(
        plan_id__in=list(by_plan), milestone__required=True, status=MilestoneStatus.IN_PROGRESS
    ).select_related("plan", "milestone")
    for pm in working.order_by("plan_id", "due_date", "pk"):
        r, key = by_plan[pm.plan_id], pm.milestone.key
        planned = r.story.planned(key)
        if key in STALL_KEYS and pm.due_date < today:
            reason = r.story.rng.choice(BLOCKED_REASONS)
            noted = min(pm.due_date + timedelta(days=r.story.rng.randint(1, 4)), yesterday)
        elif planned is not None and planned > pm.due_date and pm.due_date < today + LOOKAHEAD:
            reason = r.story.rng.choice(LATE_REASONS)
            noted = max(r.story.start, today - timedelta(days=r.story.rng.randint(1, 3)))

        else:
            continue
        plans.set_milestone_status(pm, MilestoneStatus.BLOCKED, actor=r.csm, reason=reason)
        announcements.at(
            TimelineKind.MILESTONE_CHANGED, _moment(noted, 15), plan=pm.plan_id, milestone=key,
            to=MilestoneStatus.BLOCKED,
        )  # fmt: skip


def _follow_ups(replays: list[Replay], today: date) -> None:
    """Open plans' follow-ups done as they fell due, through the service; the last few days'
    are not written up yet (they show as due this week)."""
    by_plan = {r.plan.pk: r for r in _open(replays) if r.plan is not None}
    recent = today - timedelta(days=5)
    tasks = PlanTask.objects.filter(plan_id__in=list(by_plan), due_date__lt=recent)
    for task in tasks.order_by("plan_id", "due_date"):
        r = by_plan[task.plan_id]
        day = min(task.due_date + timedelta(days=r.story.rng.randint(0, 2)), today)
        outcome = _task_outcome(r, task.due_date)
        plans.complete_task(task, actor=r.csm, outcome=outcome, on=day)


def _people(c: SimulatedCustomer) -> dict[str, str]:
    first: dict[str, str] = {}
    for person in c.people:
        first.setdefault(person.role, person.name)
    return {
        "champion": first.get(CHAMPION, ""),
        "admin": first.get(ADMIN, ""),
        "decision": first.get(DECISION_MAKER, ""),
    }


def _kickoffs(replays: list[Replay], today: date, announcements: Announcements) -> None:
    """Kickoff records of the high- and low-touch plans, pre-filled from the sales handoff
    (``prefill_kickoff``), with what the CSM heard at the kickoff."""
    for r in replays:
        story, plan = r.story, r.plan
        c = story.customer
        if plan is None or c.touch_model == TouchModel.TECH:
            continue
        if story.kickoff is None or story.kickoff >= today:
            continue
        rng, people = story.rng, _people(c)
        data: dict[str, Any] = dict(plans.prefill_kickoff(plan.customer))
        if not data["desired_outcomes"]:  # before handoffs were recorded: heard at the kickoff
            data = {
                "desired_outcomes": rng.choice(names.HANDOFF_OUTCOMES),
                "current_issues": rng.choice(names.HANDOFF_PAINS),
                "stakeholders": rng.choice(names.HANDOFF_STAKEHOLDERS).format(**people),
            }
        if story.slow:
            literacy = ITLiteracy.LOW
        else:
            literacy = ITLiteracy.HIGH if c.segment == "enterprise" else ITLiteracy.MEDIUM
        data.update(
            it_literacy=literacy.value,
            kickoff_notes=rng.choice(KICKOFF_NOTES).format(**people),
            kickoff_on=story.kickoff,
        )
        plans.save_kickoff(plan, data, actor=r.csm)
        announcements.at(TimelineKind.KICKOFF_RECORDED, _moment(story.kickoff, 17), plan=plan.pk)


def _goals(replays: list[Replay], facts: Facts, announcements: Announcements) -> None:
    """First goals agreed at the kickoff (most customers): a seats target where the metric
    history covers the plan, else a checklist ticked as the story reaches each item."""
    last_day = facts.today - timedelta(days=1)
    metric_goals: list[tuple[SuccessGoal, Story]] = []
    for r in replays:
        story, plan = r.story, r.plan
        if plan is None or story.kickoff is None or story.kickoff > last_day:
            continue
        tech = story.customer.touch_model == TouchModel.TECH
        if tech and story.rng.random() < 0.35:
            continue  # no goal agreed
        due = story.start + timedelta(days=r.version.target_days)
        if not tech and story.start >= facts.metric_start:
            goal = goals.add_goal(
                customer=plan.customer, title=METRIC_GOAL_TITLE, kind=GoalKind.METRIC,
                metric_key=SEAT_METRIC, op=">=", target=SEAT_TARGET, due_date=due, plan=plan,
                agreed_on=story.kickoff, actor=r.csm,
            )  # fmt: skip
            metric_goals.append((goal, story))
        else:
            items = CHECKLIST_SELF_SERVE if tech else CHECKLIST_STANDARD
            goal = goals.add_goal(
                customer=plan.customer, title=CHECKLIST_GOAL_TITLE, kind=GoalKind.CHECKLIST,
                checklist=[text for text, _share in items], due_date=due, plan=plan,
                agreed_on=story.kickoff, actor=r.csm,
            )  # fmt: skip
            for index, (_text, share) in enumerate(items):
                day = story.share(share)
                if day > last_day or (story.ended is not None and day > story.ended):
                    break
                goal = goals.tick_checklist_item(goal, index, actor=r.csm, on=day)
        announcements.at(TimelineKind.GOAL_AGREED, _moment(story.kickoff, 17), goal=goal.pk)
    _achieve_metric_goals(metric_goals, facts)


def _achieve_metric_goals(metric_goals: list[tuple[SuccessGoal, Story]], facts: Facts) -> None:
    """Metric goals met in the metric history, on the first day they were met (on or after the
    day agreed, by the due date), with the fields and timeline entry ``evaluate_goals`` writes:
    the daily job reads only the latest value, and the history is the record of its runs."""
    achieved, entries = [], []
    for goal, story in metric_goals:
        day = _first_on_or_after(facts.seats.get(story.customer_id, []), goal.agreed_on)
        if day is None or day > goal.due_date or day >= facts.today:
            continue
        if story.ended is not None and day > story.ended:
            continue
        goal.status, goal.achieved_on = GoalStatus.ACHIEVED, day
        achieved.append(goal)
        title = _("Success goal achieved: %(title)s") % {"title": goal.title}
        entries.append(
            TimelineEntry(
                customer_id=goal.customer_id, kind=TimelineKind.GOAL_ACHIEVED, title=title[:200],
                occurred_at=_moment(day, 18),
                payload={"goal": goal.pk, "plan": goal.plan_id, "achieved_on": day.isoformat()},
            )
        )  # fmt: skip
    SuccessGoal.objects.bulk_update(achieved, ["status", "achieved_on"])
    TimelineEntry.objects.bulk_create(entries)


def _share_a_plan(replays: list[Replay], today: date, announcements: Announcements) -> None:
    """The plan page of one open high-touch plan (the stalled one when there is one) was shared
    with the customer's champion two days ago; the link is listed on the plan's page."""
    candidates = [r for r in _open(replays) if r.story.customer.touch_model == TouchModel.HIGH]
    if not candidates:
        return
    r = max(
        candidates,
        key=lambda r: (r.story.customer.script == "onboarding_stalled", r.story.start),
    )
    assert r.plan is not None
    link, _token = links.create_link(
        r.plan, language=r.story.customer.language,
        contact_name=_people(r.story.customer)["champion"], actor=r.csm,
    )  # fmt: skip
    shared = _moment(max(r.story.start, today - timedelta(days=2)), 15)
    PlanLink.objects.filter(pk=link.pk).update(created_at=shared)
    announcements.at(links.LINK_SHARED, shared, link_id=link.pk)


def _date_open_plans(open_plans: list[Replay]) -> None:
    """The open plans as made on their start date, their milestones started when what they
    wait for was done (the services, replaying the past today, would say today)."""
    by_plan = {r.plan.pk: r for r in open_plans if r.plan is not None}
    rows = list(OnboardingPlan.objects.filter(pk__in=list(by_plan)))
    for plan in rows:
        plan.created_at = _moment(plan.start_date, 9)
    OnboardingPlan.objects.bulk_update(rows, ["created_at"])
    changed = []
    milestones = PlanMilestone.objects.filter(plan_id__in=list(by_plan)).exclude(
        status=MilestoneStatus.NOT_STARTED
    )
    for pm in milestones.select_related("milestone"):
        r = by_plan[pm.plan_id]
        after = next(s.after for s in r.steps if s.key == pm.milestone.key)
        waited = [r.done[d][0] for d in after if d in r.done]
        began = max([r.story.start, *waited])
        if pm.completed_on is not None:
            began = min(began, pm.completed_on)
        if pm.started_on != began:
            pm.started_on = began
            changed.append(pm)
    PlanMilestone.objects.bulk_update(changed, ["started_on"])
