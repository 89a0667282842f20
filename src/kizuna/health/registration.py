"""What the health context plugs into the lower contexts: Settings tabs, Customer 360 panels,
the customer-list column and the daily job (scores, signals, predictions)."""


def register() -> None:
    """Filled in as the health pages and jobs land."""
