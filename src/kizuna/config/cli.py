"""The ``kizuna`` console script: Django's management commands under one name.

``kizuna serve``, ``kizuna migrate``, ``kizuna import …``, ``kizuna kpi …`` and every other
management command run through here with Kizuna's settings.
"""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run a management command, ``kizuna help`` lists them."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kizuna.config.settings")
    from django.core.management import execute_from_command_line

    args = list(sys.argv if argv is None else argv)
    args[0] = "kizuna"
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
