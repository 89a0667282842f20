"""Turning user input (CLI options, API query parameters, form fields) into KPI arguments."""

from datetime import date

from django.contrib.auth import get_user_model

from kizuna.customers.models import LifecycleStage, Product, TouchModel
from kizuna.reports.kpis.population import KpiInputError, Population, parse_cohort


def parse_day(field: str, value: str) -> date:
    """A ``YYYY-MM-DD`` date; KpiInputError naming ``field`` otherwise."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise KpiInputError(field, f"'{value}' is not a date in the form YYYY-MM-DD") from None


def resolve_population(
    *,
    segment: str = "",
    touch_model: str = "",
    stage: str = "",
    owner: str = "",
    product: str = "",
    cohort: str = "",
    as_of: str | date | None = None,
) -> Population:
    """A Population from names people type: owner by username, product by code.

    ``as_of`` (a date or ``YYYY-MM-DD``; empty: each period's start day) is the day segment,
    touch model, stage and owner are read on. Raises KpiInputError naming the field
    (``touch_model``, ``stage``, ``owner``, ``product``, ``cohort``, ``as_of``) that is not
    valid.
    """
    as_of_day = parse_day("as_of", as_of) if isinstance(as_of, str) and as_of.strip() else None
    if isinstance(as_of, date):
        as_of_day = as_of
    if touch_model and touch_model not in TouchModel.values:
        raise KpiInputError(
            "touch_model", f"'{touch_model}' is not one of {', '.join(TouchModel.values)}"
        )
    if stage and stage not in LifecycleStage.values:
        raise KpiInputError("stage", f"'{stage}' is not one of {', '.join(LifecycleStage.values)}")
    if cohort:
        parse_cohort(cohort)
    owner_id = None
    if owner:
        found = get_user_model().objects.filter(username=owner).values_list("pk", flat=True)
        if not found:
            raise KpiInputError("owner", f"no user named '{owner}'")
        owner_id = int(found[0])
    product_id = None
    if product:
        products = Product.objects.filter(code=product).values_list("pk", flat=True)
        if not products:
            raise KpiInputError("product", f"no product with code '{product}'")
        product_id = int(products[0])
    return Population(
        segment=segment,
        touch_model=touch_model,
        lifecycle_stage=stage,
        owner_id=owner_id,
        product_id=product_id,
        cohort=cohort,
        as_of=as_of_day,
    )
