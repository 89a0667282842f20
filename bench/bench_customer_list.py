"""The customer list stays fast with 10,000 customers and ~30,000 subscriptions.

Times the list view through Django's test client (middleware, query, template: the server's
whole work for a request) for the common requests, and compares each with a baseline measured
in the same run: a bare ``Customer.objects.count()`` plus fetching the first 50 customers.
Fails when any median exceeds the 300 ms budget.

    .venv/bin/python bench/bench_customer_list.py [--customers 10000] [--runs 7]

SQLite in a temporary file by default; set DATABASE_URL to measure PostgreSQL (the tables
are emptied first, so point it at a scratch database).
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

BUDGET_MS = 300.0


def _setup_django(workdir: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    os.environ.setdefault("KIZUNA_ENV", "test")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "kizuna.config.settings"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["testserver"]


def _populate(customers: int) -> None:
    from django.core.management import call_command

    from kizuna.core.models import TimelineEntry, User
    from kizuna.core.roles import Role
    from kizuna.customers.models import Customer, Plan, Product, Subscription

    call_command("migrate", verbosity=0)
    Subscription.objects.all().delete()
    TimelineEntry.objects.all().delete()
    Customer.objects.all().delete()
    Plan.objects.all().delete()
    Product.objects.all().delete()
    User.objects.all().delete()

    rng = random.Random(20261122)
    owners = [
        User.objects.create_user(username=f"csm{i}", password=None, role=Role.ADOPTION_CSM)
        for i in range(20)
    ]
    products = [Product.objects.create(code=f"p{i}", name=f"Product {i}") for i in range(3)]
    plans = [
        Plan.objects.create(
            product=product, code=f"tier{rank}", name=f"Tier {rank}", tier_rank=rank
        )
        for product in products
        for rank in (1, 2, 3)
    ]
    stages = ["onboarding", "adoption", "expansion", "churned"]
    touches = ["high", "low", "tech"]
    segments = ["Enterprise", "Mid-market", "SMB", "Startup"]
    Customer.objects.bulk_create(
        (
            Customer(
                name=f"{rng.choice(['Acme', 'Sakura', 'Fuji', 'Nami', 'Hikari'])} {i:05d}",
                external_id=f"C{i:05d}",
                domain=f"c{i}.example.jp",
                segment=rng.choice(segments),
                lifecycle_stage=rng.choice(stages),
                touch_model=rng.choice(touches),
                onboarding_owner=rng.choice(owners),
                adoption_owner=rng.choice(owners),
                expansion_owner=rng.choice(owners),
            )
            for i in range(customers)
        ),
        batch_size=2000,
    )
    today = date.today()  # noqa: DTZ011 - a rough spread of dates is all the data needs
    rows = []
    for customer_id in Customer.objects.values_list("id", flat=True):
        start = today - timedelta(days=rng.randint(30, 1500))
        for _period in range(3):  # three back-to-back yearly contract periods
            plan = rng.choice(plans)
            end = start + timedelta(days=365)
            rows.append(
                Subscription(
                    customer_id=customer_id,
                    product_id=plan.product_id,
                    plan=plan,
                    mrr=Decimal(rng.randint(1, 200) * 1000),
                    currency="JPY",
                    start_date=start,
                    end_date=end,
                )
            )
            start = end
    Subscription.objects.bulk_create(rows, batch_size=5000)


def _median_ms(action: Callable[[], object], runs: int) -> float:
    action()  # warm caches (templates, statements) the way a running server has them
    timings = []
    for _run in range(runs):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        _setup_django(Path(tmp))
        from django.db import connection
        from django.test import Client

        from kizuna.core.models import User
        from kizuna.core.roles import Role
        from kizuna.customers.models import Customer, Subscription

        started = time.perf_counter()
        _populate(args.customers)
        print(
            f"data: {Customer.objects.count()} customers, {Subscription.objects.count()} "
            f"subscriptions on {connection.vendor} ({time.perf_counter() - started:.1f} s to load)"
        )

        viewer = User.objects.create_user(username="bench", password=None, role=Role.VIEWER)
        client = Client()
        client.force_login(viewer)
        owner_id = User.objects.filter(username="csm3").values_list("pk", flat=True).get()

        def baseline() -> None:
            Customer.objects.count()
            list(Customer.objects.order_by("name", "id")[:50])

        base = _median_ms(baseline, args.runs)
        print(f"baseline (count + first 50 customers): {base:.1f} ms")

        requests = {
            "first page (by name)": {},
            "sorted by ARR, highest first": {"sort": "-arr"},
            "sorted by renewal date": {"sort": "renewal"},
            "page 100, sorted by ARR": {"sort": "arr", "page": "100"},
            "search 'sakura'": {"q": "sakura"},
            "stage + touch model + segment": {
                "stage": "adoption",
                "touch_model": "low",
                "segment": "SMB",
                "sort": "-arr",
            },
            "owner filter": {"owner": str(owner_id)},
        }
        worst = 0.0
        for label, params in requests.items():

            def get(params: dict[str, str] = params) -> None:
                response = client.get("/customers/", params)
                assert response.status_code == 200, response.status_code

            took = _median_ms(get, args.runs)
            worst = max(worst, took)
            print(f"list view, {label}: {took:.1f} ms ({took / base:.1f}× baseline)")
        verdict = "OK" if worst < BUDGET_MS else "TOO SLOW"
        print(f"slowest: {worst:.1f} ms, budget {BUDGET_MS:.0f} ms: {verdict}")
        return 0 if worst < BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
