"""Places where higher contexts plug pages into lower ones without being imported by them.

A context registers, in its ``AppConfig.ready()``, a Settings tab or a Customer 360 panel by
URL name; the lower context's templates render whatever is registered. Dependencies keep
pointing downward (DESIGN.md): ``core`` and ``customers`` never import the contexts that fill
these slots.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.utils.functional import Promise


@dataclass(frozen=True)
class SettingsTab:
    key: str
    url_name: str
    label: str | Promise
    capability: str | None = None
    order: int = 100


@dataclass(frozen=True)
class CustomerPanel:
    """A section of Customer 360 loaded by htmx from ``url_name`` (takes the customer pk)."""

    key: str
    url_name: str
    title: str | Promise
    order: int = 100


@dataclass(frozen=True)
class CustomerListColumn:
    """A column of the customer list filled by a higher context.

    ``cells(customer_ids)`` returns safe HTML per customer id (missing ids render "—"); it is
    called once per page with the page's ids, so it must be one set-based query.
    """

    key: str
    label: str | Promise
    cells: Callable[[list[int]], Mapping[int, str]]
    order: int = 100


_settings_tabs: dict[str, SettingsTab] = {}
_list_columns: dict[str, CustomerListColumn] = {}

_customer_panels: dict[str, CustomerPanel] = {}


def register_settings_tab(tab: SettingsTab) -> None:
    _settings_tabs[tab.key] = tab


def register_customer_panel(panel: CustomerPanel) -> None:
    _customer_panels[panel.key] = panel


def settings_tabs() -> list[SettingsTab]:
    return sorted(_settings_tabs.values(), key=lambda tab: (tab.order, tab.key))


def customer_panels() -> list[CustomerPanel]:
    return sorted(_customer_panels.values(), key=lambda panel: (panel.order, panel.key))


def register_customer_list_column(column: CustomerListColumn) -> None:
    _list_columns[column.key] = column


def customer_list_columns() -> list[CustomerListColumn]:
    return sorted(_list_columns.values(), key=lambda column: (column.order, column.key))
