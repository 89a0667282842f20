"""A real Kizuna server in subprocesses, for the live ingestion tests and bench/bench_ingest.py.

Each server gets a fresh directory: ``KIZUNA_DATA_DIR`` and a SQLite file database in it (the
embedded default, and the harder case for several web workers: they share one file through
SQLite's locks). PostgreSQL's insert path is covered by the in-process tests on PostgreSQL.
"""

import atexit
import contextlib
import functools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

KIZUNA = str(Path(sys.executable).with_name("kizuna"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(root: Path, database: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "KIZUNA_EXPECT_POSTGRES"}
    }
    env.update(
        KIZUNA_ENV="dev",
        KIZUNA_DATA_DIR=str(root),
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_SETTINGS_MODULE="kizuna.config.settings",
        OMP_NUM_THREADS="1",
        DEBUG="false",
    )
    return env


@functools.cache
def migrated_database() -> Path:
    """A freshly migrated SQLite file, made once per process and copied by every server."""
    root = Path(tempfile.mkdtemp(prefix="kizuna-live-template-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    database = root / "template.sqlite3"
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [KIZUNA, "migrate", "--verbosity", "0", "--skip-checks"],
        env=_environment(root, database),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return database


class LiveServer:
    """``kizuna migrate``, ``kizuna sources create web``, then ``kizuna serve`` on 127.0.0.1."""

    def __init__(self, root: Path | None = None, *, workers: int = 2) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="kizuna-live-"))
        self.workers = workers
        self.port = free_port()
        self.database = self.root / "k.sqlite3"
        self.env = _environment(self.root, self.database)
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kizuna(self, *args: str, timeout: float = 120) -> str:
        """Run a ``kizuna`` command against this server's data; return its stdout."""
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [KIZUNA, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kizuna {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def prepare(self, source: str = "web") -> str:
        """A migrated database (``kizuna migrate``, done once and copied) and a source's key."""
        shutil.copyfile(migrated_database(), self.database)
        return self.kizuna("sources", "--skip-checks", "create", source).strip()

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [KIZUNA, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill() reaches every worker
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/v1/batch", timeout=10).status_code == 405:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not answer within {timeout} s")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole server (Granian and its workers); SIGKILL by default."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=20)
        self.process = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the server's SQLite database directly (read-only)."""
        con = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
