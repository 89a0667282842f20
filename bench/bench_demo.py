"""The demo simulator: `make demo`'s load end to end, and `kizuna demo build` at benchmark sizes.

    python bench/bench_demo.py                 # default demo load + 10k customers / 10M events
    python bench/bench_demo.py --load-only
    python bench/bench_demo.py --build 100000 100000000   # customers, events

Each step runs the real command in a fresh KIZUNA_DATA_DIR under /tmp and reports wall time
and peak memory (of the child process, from /usr/bin/time when present).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KIZUNA = ROOT / ".venv" / "bin" / "kizuna"


def _run(command: list[str], env: dict[str, str]) -> tuple[float, str, str]:
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    wrapped = [timer, "-v", *command] if timer else command
    started = time.perf_counter()
    done = subprocess.run(wrapped, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed: {' '.join(command)}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    memory = f"{int(peak.group(1)) / 1024:.0f} MB" if peak else "?"
    return seconds, memory, done.stdout


def load(env: dict[str, str]) -> None:
    data = Path(tempfile.mkdtemp(prefix="kizuna-demo-bench-"))
    env = {**env, "KIZUNA_DATA_DIR": str(data), "KIZUNA_ENV": "dev"}
    try:
        migrate, _memory, _out = _run([str(KIZUNA), "migrate", "--no-input", "-v0"], env)
        seconds, memory, out = _run([str(KIZUNA), "demo", "load", "--if-empty", "-v", "2"], env)
        print(out.strip())
        print(f"demo load (default size): {seconds:.1f} s, peak {memory}; "
              f"with migrate {migrate + seconds:.1f} s (target: under 180 s)")  # fmt: skip
    finally:
        shutil.rmtree(data, ignore_errors=True)


def build(env: dict[str, str], customers: int, events: int, months: int) -> None:
    out = Path(tempfile.mkdtemp(prefix="kizuna-demo-build-"))
    try:
        command = [
            str(KIZUNA), "demo", "build", "--customers", str(customers), "--months", str(months),
            "--events", str(events), "--seed", "1", "--out", str(out),
        ]  # fmt: skip
        seconds, memory, text = _run(command, {**env, "KIZUNA_ENV": "dev"})
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        print(text.strip())
        print(f"demo build {customers:,} customers / {events:,} events / {months} months: "
              f"{seconds:.1f} s, peak {memory}, {size:.0f} MB on disk")  # fmt: skip
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--load-only", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--build", nargs=2, type=int, metavar=("CUSTOMERS", "EVENTS"),
                        default=(10_000, 10_000_000))  # fmt: skip
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not args.build_only:
        load(env)
    if not args.load_only:
        build(env, args.build[0], args.build[1], args.months)


if __name__ == "__main__":
    main()
