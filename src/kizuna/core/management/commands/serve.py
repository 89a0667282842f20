"""``kizuna serve``: run Kizuna's web server (Granian, WSGI) on 127.0.0.1."""

import contextlib
import os
import shutil
import subprocess
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Serve Kizuna over HTTP (Granian); static files are served by WhiteNoise."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "1")))

    def handle(self, *args: Any, **options: Any) -> None:
        granian = shutil.which("granian", path=os.path.dirname(sys.executable)) or shutil.which(
            "granian"
        )
        if granian is None:
            raise CommandError("granian is not installed (pip install -r requirements.txt)")
        command = [
            granian, "--interface", "wsgi", "kizuna.config.wsgi:application",
            "--host", options["host"], "--port", str(options["port"]),
            "--workers", str(options["workers"]),
        ]  # fmt: skip
        self.stdout.write(f"Kizuna on http://{options['host']}:{options['port']}/")
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run(command, check=True)  # noqa: S603 - fixed argv, no shell
