"""What the playbooks context plugs into the lower contexts: Settings tabs, Customer 360 panels,
the daily job and the worker's cycle job (the runner)."""


def register() -> None:
    """Filled in as the playbook pages and runner land."""
