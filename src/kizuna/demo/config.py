"""The demo company's story in one place: what the vendor sells, to whom, and what causes what.

Kizuna's demo vendor sells "Mirai Analytics", a data-analytics SaaS priced per seat (Starter /
Business / Enterprise plans: upsell), with the "Mirai Connect" add-on and "Premium Support"
(cross-sell), to Japanese companies in three segments. Every customer carries a hidden
**engagement** level between 0 and 1, simulated week by week; it drives its users' product
events and, through them, everything else:

- **Onboarding.** Engagement ramps up from a low start while the customer onboards. How long that
  takes (time to value) is drawn per customer, independently of how well the product fits it; a
  fast onboarding raises the level engagement settles at, a slow one lowers it, and slow ones
  stall at the same milestone (connecting the data source).
- **Departures.** Now and then the customer's administrator or champion leaves. Engagement drops at
  once (``Departures.dip``: about −25%) and stays down until the CSM runs a training for the new
  person; high-touch CSMs do so quickly and often, tech-touch customers rarely get one.
- **Renewals.** The chance of not renewing rises steeply as engagement over the last quarter
  falls (``Renewal``); a leaving customer's usage fades out during its notice period. Some churn
  is external (budget, mergers) and hits engaged customers too.
- **Expansion.** Engaged customers' demand for seats grows; when seats are full and engagement is
  high they buy more seats (at renewal or mid-term) or move up a plan; healthy customers buy the
  add-on. Customers using few of their seats buy fewer at renewal, and disengaged ones move down.
- **Reactivations.** Some churned customers come back months later on a smaller monthly contract.
- **NPS.** Contacts answer an NPS survey twice a year; their score follows engagement.

Edit the values below to change the story; the simulator reads nothing else. The hidden state
and every caused event are written to a separate ground-truth file that Kizuna never reads.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from kizuna.core.roles import Role


@dataclass(frozen=True)
class PlanSpec:
    code: str
    name: str
    tier_rank: int
    unit_price: Decimal  # per unit and month, in yen


@dataclass(frozen=True)
class FeatureSpec:
    """One kind of product event.

    ``weight`` is how often an active user's actions are this one; ``depth`` (0–1) how advanced
    it is: an advanced feature's weight is scaled by engagement ** (3 × depth), so engaged
    customers use more of the product (breadth). ``value`` gives the range of ``event_value``
    (e.g. rows exported) when the event carries one.
    """

    event_type: str
    feature: str
    weight: float
    depth: float = 0.0
    value: tuple[int, int] | None = None


@dataclass(frozen=True)
class ProductSpec:
    code: str
    name: str
    description: str
    unit: str
    plans: tuple[PlanSpec, ...]
    features: tuple[FeatureSpec, ...] = ()

    def plan(self, rank: int) -> PlanSpec:
        return next(plan for plan in self.plans if plan.tier_rank == rank)

    @property
    def top_rank(self) -> int:
        return max(plan.tier_rank for plan in self.plans)


ANALYTICS = ProductSpec(
    code="mirai-analytics",
    name="Mirai Analytics",
    description="データ分析・ダッシュボードのクラウドサービス(席数課金)",
    unit="seats",
    plans=(
        PlanSpec("starter", "Starter", 1, Decimal(1500)),
        PlanSpec("business", "Business", 2, Decimal(3000)),
        PlanSpec("enterprise", "Enterprise", 3, Decimal(5000)),
    ),
    features=(
        FeatureSpec("dashboard_viewed", "dashboards", 10.0),
        FeatureSpec("query_run", "queries", 5.0, depth=0.3),
        FeatureSpec("report_created", "reports", 2.0, depth=0.5),
        FeatureSpec("report_exported", "exports", 1.5, depth=0.5, value=(10, 5000)),
        FeatureSpec("alert_created", "alerts", 0.6, depth=0.9),
        FeatureSpec("user_invited", "users", 0.2, depth=0.6),
    ),
)
CONNECT = ProductSpec(
    code="mirai-connect",
    name="Mirai Connect",
    description="基幹システム・SaaSとのデータ連携アドオン(コネクタ数課金)",
    unit="connectors",
    plans=(
        PlanSpec("standard", "Standard", 1, Decimal(20000)),
        PlanSpec("plus", "Plus", 2, Decimal(35000)),
    ),
    features=(
        FeatureSpec("sync_run", "connectors", 3.0, value=(100, 50000)),
        FeatureSpec("connector_configured", "connectors", 0.3, depth=0.5),
    ),
)
SUPPORT = ProductSpec(
    code="premium-support",
    name="Premium Support",
    description="専任担当による優先サポート",
    unit="",
    plans=(PlanSpec("premium", "Premium", 1, Decimal(100000)),),
)
LOGIN_EVENT = "login"  # the first event of every session


@dataclass(frozen=True)
class SegmentSpec:
    """A kind of customer: size, contract, touch model and how the product fits it."""

    key: str
    share: float
    employees: tuple[int, int]
    seats: tuple[int, int]
    touch_model: str
    plan_weights: tuple[float, float, float]  # Starter, Business, Enterprise
    annual_share: float  # the rest pay monthly
    discounts: tuple[str, ...]
    premium_support_share: float
    fit: tuple[float, float]  # Beta(a, b) of the engagement the product can reach
    onboarding_days: int  # median time to value
    churn_logit: float  # log-odds of leaving within a year at the pivot engagement


SEGMENTS = (
    SegmentSpec(
        "enterprise", 0.2, (1000, 20000), (60, 300), "high", (0.0, 0.3, 0.7), 1.0,
        ("0", "0.05", "0.10"), 0.5, (6.0, 3.0), 50, -2.6,
    ),
    SegmentSpec(
        "mid-market", 0.35, (100, 999), (15, 60), "low", (0.35, 0.65, 0.0), 0.6,
        ("0", "0", "0.05"), 0.0, (5.0, 3.0), 45, -1.9,
    ),
    SegmentSpec(
        "smb", 0.45, (10, 99), (3, 12), "tech", (0.8, 0.2, 0.0), 0.2,
        ("0",), 0.0, (4.0, 3.0), 35, -1.3,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Onboarding:
    """Time to value and its lasting effect on engagement."""

    start_level: float = 0.2  # engagement in the first week
    spread: float = 0.55  # log-normal sigma of time to value around the segment's median
    fast_days: int = 30  # onboarded within this: engagement settles higher
    fast_bonus: float = 0.12
    slow_days: int = 75  # onboarded after this: engagement settles lower
    slow_penalty: float = 0.15
    milestones: tuple[str, ...] = (
        "kickoff",
        "data_source_connected",
        "first_dashboard",
        "team_invited",
        "first_report_shared",
    )
    # Where slow onboardings lose their weeks (the same milestone for many customers).
    stall_milestone: str = "data_source_connected"


@dataclass(frozen=True)
class Departures:
    """An administrator or champion leaves: usage dips until the newcomer is trained."""

    admin_yearly: float = 0.16
    champion_yearly: float = 0.10
    dip: float = 0.72  # engagement × this from the day of the change
    # Per touch model: chance the CSM trains the newcomer, and the delay in weeks.
    training_chance: dict[str, float] = field(
        default_factory=lambda: {"high": 0.85, "low": 0.55, "tech": 0.2}
    )
    training_weeks: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"high": (2, 5), "low": (3, 8), "tech": (4, 12)}
    )
    recovery_weeks: int = 4  # from the training back to the former level
    # Chance the CSM hears of the change and notes it on the timeline.
    noticed_chance: dict[str, float] = field(
        default_factory=lambda: {"high": 1.0, "low": 0.7, "tech": 0.3}
    )


@dataclass(frozen=True)
class Renewal:
    """Whether a customer renews: a logistic function of its engagement over the last quarter.

    P(leave within a year) = sigmoid(segment.churn_logit + slope × (pivot − engagement)); a
    contract of m months faces 1 − (1 − P)^(m / 12) at each renewal.
    """

    slope: float = 9.0
    pivot: float = 0.55
    low_engagement: float = 0.45  # below this, the churn's cause is recorded as low engagement
    notice_weeks_annual: int = 8  # a leaving customer's usage fades over its notice period
    notice_weeks_monthly: int = 2
    fade_floor: float = 0.3


@dataclass(frozen=True)
class Expansion:
    """Upsell when seats are full and engagement high; cross-sell when healthy; downgrades."""

    demand_growth: float = 0.012  # weekly log-growth of seat demand per unit of (engagement − 0.5)
    full_utilisation: float = 0.9  # users / seats
    upsell_engagement: float = 0.6
    upsell_chance: float = 0.6  # at a renewal with full seats and high engagement
    tier_up_chance: float = 0.3
    midterm_chance: float = 0.2  # per month with seat demand above the seats
    cross_sell_health: float = 0.68
    cross_sell_chance: float = 0.2  # per quarter when healthy
    downgrade_utilisation: float = 0.6
    downgrade_chance: float = 0.5
    tier_down_engagement: float = 0.4
    tier_down_chance: float = 0.3


@dataclass(frozen=True)
class Reactivation:
    chance: float = 0.12
    chance_external: float = 0.3  # when the customer left for a reason outside the product
    delay_months: tuple[int, int] = (2, 6)
    seat_share: float = 0.6


@dataclass(frozen=True)
class Nps:
    """Twice a year a few contacts answer; score ≈ intercept + slope × engagement ± noise."""

    every_months: int = 6
    first_after_months: int = 3
    intercept: float = 1.5
    slope: float = 9.0
    noise: float = 1.3


@dataclass(frozen=True)
class Activity:
    """How engagement becomes events."""

    persistence: float = 0.25  # weekly pull of engagement toward its target
    noise: float = 0.035  # weekly random walk of engagement
    weekend_factor: float = 0.1
    base_rate: float = 1.0  # P(user active on a weekday) = base_rate × engagement × habit
    actions_per_session: tuple[float, float] = (0.5, 2.5)  # Poisson mean = a + b × engagement
    session_minutes: int = 40


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
DEMO_PASSWORD = "kizuna-demo"  # noqa: S105 - the published password of the demo logins


@dataclass(frozen=True)
class DemoConfig:
    """Everything the simulator needs besides the seed, the day and the size."""

    products: tuple[ProductSpec, ...] = (ANALYTICS, CONNECT, SUPPORT)
    segments: tuple[SegmentSpec, ...] = SEGMENTS
    onboarding: Onboarding = Onboarding()
    departures: Departures = Departures()
    renewal: Renewal = Renewal()
    expansion: Expansion = Expansion()
    reactivation: Reactivation = Reactivation()
    nps: Nps = Nps()
    activity: Activity = Activity()
    staff: tuple[StaffMember, ...] = STAFF
    onboarding_csms: tuple[str, ...] = ("onboarding", "kobayashi")
    adoption_csms: tuple[str, ...] = ("adoption", "kato")
    expansion_csms: tuple[str, ...] = ("expansion",)
    # First contract starts: spread over these months up to today, and a share of established
    # customers that started up to ``established_months`` earlier still.
    start_spread_months: int = 24
    established_share: float = 0.25
    established_months: int = 24
    overseas_share: float = 0.08
    # The stories ``make demo`` shows for sure, on top of what chance makes (see simulation.py).
    showcase: bool = True
    # Seats (and so users and events) × this: ``demo build --events`` thins large data sets.
    seat_scale: float = 1.0


DEFAULT_CONFIG = DemoConfig()
