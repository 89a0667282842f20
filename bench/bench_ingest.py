"""Ingestion through /v1/batch with the real Segment client over loopback, durability on.

Starts ``kizuna serve`` (2 Granian workers, SQLite file database in WAL mode: a 200 answer means
the batch is committed) and drives it with Segment's own Python client from separate sender
processes (100 events per request, its defaults otherwise). A sender never lets the client's
10,000-event queue overflow (the client would silently drop events): it waits when the queue is
nearly full, so a slow server shows up as lower throughput, and drops are counted.

Measured: accepted events/s end to end (first event enqueued → last row in the inbox), request
latency p50/p99 as the client sees it (its upload function is wrapped with a timer), and the
same for the baseline in the same run: the same client and batches against a trivial WSGI app
under the same Granian settings that only parses the JSON with orjson and answers
``{"success": true}`` — the cost of HTTP plus the client, with no validation and no database.

    .venv/bin/python bench/bench_ingest.py [--events 200000] [--senders 2] [--workers 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def baseline_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The trivial endpoint: read the body, parse it, answer success."""
    import orjson

    length = int(environ.get("CONTENT_LENGTH") or 0)
    orjson.loads(environ["wsgi.input"].read(length) if length else b"{}")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"success": true}']


# --- sender process ----------------------------------------------------------------------------


def send(host: str, key: str, events: int, offset: int) -> None:
    """Enqueue ``events`` track calls through Segment's client; print a JSON summary."""
    import segment.analytics.consumer as consumer
    from segment.analytics.client import Client

    latencies: list[float] = []
    real_post = consumer.post

    def timed_post(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real_post(*args, **kwargs)
        finally:
            latencies.append(time.perf_counter() - started)

    consumer.post = timed_post
    errors: list[str] = []
    client = Client(
        key,
        host=host,
        sync_mode=False,
        upload_size=100,
        max_queue_size=10_000,
        on_error=lambda error, batch: errors.append(str(error)),
    )
    dropped = 0
    first = time.time()
    for n in range(offset, offset + events):
        while client.queue.qsize() > 9_000:
            time.sleep(0.002)
        ok, _message = client.track(
            f"user-{n % 5000}",
            "Report Exported",
            {"feature": "reports", "value": n % 7},
            context={"groupId": f"acct-{n % 500}"},
            message_id=f"bench-{n}",
        )
        dropped += not ok
    client.flush()
    client.join()
    done = time.time()
    print(json.dumps({"first": first, "done": done, "dropped": dropped, "errors": errors[:5],
                      "error_count": len(errors), "latencies": latencies}))  # fmt: skip


def send_raw(host: str, key: str, events: int, offset: int, threads: int = 4) -> None:
    """Post pre-encoded 100-event batches from ``threads`` keep-alive connections; print JSON.

    Measures what the server can take when the sender costs next to nothing.
    """
    import base64
    import threading

    import orjson
    import requests

    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    sent_at = "2026-11-30T01:00:01.000+00:00"
    bodies = [
        orjson.dumps({"sentAt": sent_at, "batch": [
            {"type": "track", "event": "Report Exported", "userId": f"user-{n % 5000}",
             "messageId": f"bench-{n}", "timestamp": "2026-11-30T01:00:00.000+00:00",
             "properties": {"feature": "reports", "value": n % 7},
             "context": {"groupId": f"acct-{n % 500}",
                         "library": {"name": "analytics-python", "version": "2.4.0"}},
             "integrations": {}}
            for n in range(start, min(start + 100, offset + events))]})
        for start in range(offset, offset + events, 100)
    ]  # fmt: skip
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker(share: list[bytes]) -> None:
        session = requests.Session()
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        for body in share:
            started = time.perf_counter()
            response = session.post(f"{host}/v1/batch", data=body, headers=headers, timeout=60)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    first = time.time()
    pool = [
        threading.Thread(target=worker, args=(bodies[index::threads],)) for index in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    print(json.dumps({"first": first, "done": time.time(), "dropped": 0, "errors": failures[:5],
                      "error_count": len(failures), "latencies": latencies}))  # fmt: skip


def run_senders(host: str, key: str, events: int, senders: int, mode: str) -> list[dict[str, Any]]:
    share = events // senders
    processes = [
        subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, __file__, f"--send-{mode}", host, key, str(share), str(index * share)],
            stdout=subprocess.PIPE,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for index in range(senders)
    ]
    results = []
    for process in processes:
        out, _err = process.communicate(timeout=3600)
        results.append(json.loads(out))
    return results


# --- measurement -------------------------------------------------------------------------------


def summarise(
    name: str, events: int, started: float, finished: float, results: list[Any]
) -> dict[str, Any]:
    latencies = sorted(value for result in results for value in result["latencies"])
    return {
        "name": name,
        "events": events,
        "seconds": finished - started,
        "rate": events / (finished - started),
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "requests": len(latencies),
        "dropped": sum(result["dropped"] for result in results),
        "errors": sum(result["error_count"] for result in results),
    }


def measure_kizuna(events: int, senders: int, workers: int, mode: str) -> dict[str, Any]:
    from kizuna.analytics.tests.live import LiveServer

    server = LiveServer(workers=workers)
    try:
        key = server.prepare()
        server.start()
        for _ in range(4 * workers):  # load Django in every worker before timing
            warm = run_one_request(server.url, key)
            assert warm == 200, warm
        results = run_senders(server.url, key, events, senders, mode)
        expected = events // senders * senders
        count_sql = "SELECT count(*) FROM analytics_inboxevent WHERE message_id LIKE 'bench-%'"
        while server.query(count_sql)[0][0] < expected:
            time.sleep(0.05)
        finished = time.time()
        started = min(result["first"] for result in results)
        name = f"Kizuna `/v1/batch`, {SENDERS[mode]}"
        return summarise(name, expected, started, finished, results)
    finally:
        server.cleanup()


def run_one_request(url: str, key: str) -> int:
    import base64

    import requests

    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    body = json.dumps({"batch": [{"type": "track", "event": "warm", "userId": "w"}]})
    response = requests.post(
        f"{url}/v1/batch", data=body, headers={"Authorization": auth}, timeout=60
    )
    return response.status_code


def measure_baseline(events: int, senders: int, workers: int, mode: str) -> dict[str, Any]:
    import signal

    from kizuna.analytics.tests.live import free_port

    port = free_port()
    granian = str(Path(sys.executable).with_name("granian"))
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [granian, "--interface", "wsgi", "--working-dir", str(HERE), "bench_ingest:baseline_app",
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if run_one_request(url, "k") == 200:
                    break
            except Exception:  # not listening yet
                time.sleep(0.1)
        results = run_senders(url, "baseline-key", events, senders, mode)
        started = min(result["first"] for result in results)
        finished = max(result["done"] for result in results)
        expected = events // senders * senders
        name = f"baseline (parse-only app), {SENDERS[mode]}"
        return summarise(name, expected, started, finished, results)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


SENDERS = {"segment": "Segment client", "raw": "pre-encoded batches"}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("--send-segment", "--send-raw"):
        sender = send if sys.argv[1] == "--send-segment" else send_raw
        sender(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--senders", type=int, default=2, help="Sender processes (one client each)."
    )
    parser.add_argument("--workers", type=int, default=2, help="Web workers of the server.")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(SENDERS),
        choices=list(SENDERS),
        help="Senders: the Segment client, and/or pre-encoded batches (4 threads per process).",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    rows = []
    for mode in args.modes:
        baseline = measure_baseline(args.events, args.senders, args.workers, mode)
        rows.append((baseline, baseline))
        rows.append((measure_kizuna(args.events, args.senders, args.workers, mode), baseline))
    print(f"{args.events:,} events, {args.senders} Segment client processes, {args.workers} web "
          f"workers, {os.cpu_count()} CPUs; SQLite WAL (synchronous=NORMAL), 100 events/request")  # fmt: skip
    print("| endpoint | events/s | p50 ms | p99 ms | requests | dropped | errors | vs. baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for row, baseline in rows:
        print(
            f"| {row['name']} | {row['rate']:,.0f} | {row['p50']:.1f} | {row['p99']:.1f} | "
            f"{row['requests']:,} | {row['dropped']} | {row['errors']} | "
            f"{row['rate'] / baseline['rate']:.2f}× |"
        )
    failed = any(row["dropped"] or row["errors"] for row, _baseline in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
