"""Which customer an event belongs to, as small tables the engines join against.

An event names its account (``account_key``: the Segment ``groupId`` / ``context.groupId`` or a
file's ``account_id``) or only its user. Accounts map to customers through the customer's
external id, directly or via a ``GroupLink`` (group calls with a configured trait); users map
to customers through a Contact's ``product_user_id`` or the account their identify/group calls
placed them in. Events whose customer is not known stay in the lake unchanged and are linked
by the next computation after the customer (or link) appears.
"""

import pyarrow as pa

from kizuna.analytics.models import GroupLink, ProductUser
from kizuna.customers.models import Contact, Customer

ACCOUNT_MAP_SCHEMA = pa.schema([("account_key", pa.string()), ("customer_id", pa.int64())])
USER_MAP_SCHEMA = pa.schema([("map_user_id", pa.string()), ("map_customer_id", pa.int64())])


def account_customer_map() -> pa.Table:
    """``account_key → customer_id`` for every key that names a known customer."""
    by_external_id = dict(
        Customer.objects.exclude(external_id__isnull=True)
        .exclude(external_id="")
        .values_list("external_id", "id")
    )
    mapping: dict[str, int] = {key: value for key, value in by_external_id.items() if key}
    for group_id, customer_key in GroupLink.objects.values_list("group_id", "customer_key"):
        customer_id = by_external_id.get(customer_key)
        if customer_id is not None:
            mapping.setdefault(group_id, customer_id)
    return pa.table(
        {"account_key": list(mapping.keys()), "customer_id": list(mapping.values())},
        schema=ACCOUNT_MAP_SCHEMA,
    )


def user_customer_map() -> pa.Table:
    """``user_id → customer_id`` for users whose customer is known without the event's account."""
    account_map = account_customer_map()
    accounts = dict(
        zip(
            account_map["account_key"].to_pylist(),
            account_map["customer_id"].to_pylist(),
            strict=True,
        )
    )
    mapping: dict[str, int] = dict(
        Contact.objects.exclude(product_user_id="")
        .filter(ended_on__isnull=True)
        .values_list("product_user_id", "customer_id")
    )
    for user_id, account_key in ProductUser.objects.exclude(account_key="").values_list(
        "user_id", "account_key"
    ):
        customer_id = accounts.get(account_key)
        if customer_id is not None:
            mapping.setdefault(user_id, customer_id)
    return pa.table(
        {"map_user_id": list(mapping.keys()), "map_customer_id": list(mapping.values())},
        schema=USER_MAP_SCHEMA,
    )
