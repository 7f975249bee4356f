"""Webhook intake benchmark: signed real payloads at `labbot serve` on loopback, backed by
PostgreSQL and Redis, with a separate worker process.

Prints deliveries/s, acknowledgement latency (p50/p90/p99/max), and how many deliveries reached
a final state exactly once (processed or ignored, attempts == 1), lost, or handled twice.

    python bench/webhook_intake.py [--rate 500] [--duration 60] [--api-workers 2]

Needs the PostgreSQL and Redis servers on 127.0.0.1 (see README). Open-loop: requests are sent
on a fixed schedule, and latency is measured from the scheduled time, so a server that falls
behind shows it in the figures instead of slowing the load down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
WEBHOOKS = ROOT.parent / "shared" / "data" / "webhooks"
SECRET = "bench-webhook-secret-5b1e0c"
sys.path.insert(0, str(ROOT))

from app.cli import die_with_parent  # noqa: E402
from app.signatures import sign  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def real_payloads() -> list[tuple[str, bytes]]:
    """Every real example payload for the events labbot subscribes to."""
    payloads = []
    for event in ("pull_request", "issue_comment", "installation", "check_run", "ping"):
        for file in sorted((WEBHOOKS / event).glob("*.json")):
            payloads.append((event, file.read_bytes()))
    return payloads


def request_bytes(port: int, event: str, body: bytes, signature: str) -> bytes:
    head = (
        f"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"User-Agent: GitHub-Hookshot/bench\r\nX-GitHub-Event: {event}\r\n"
        f"X-Hub-Signature-256: {signature}\r\nX-GitHub-Delivery: "
    )
    return head.encode()


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if length:
        await reader.readexactly(length)
    return status


async def drive(
    port: int, rate: float, duration: float, connections: int, payloads: list[tuple[str, bytes]]
) -> tuple[list[float], list[float], dict[int, int], list[str], float]:
    prepared = [
        (request_bytes(port, event, body, sign(body, SECRET.encode())), body, event)
        for event, body in payloads
    ]
    total = int(rate * duration)
    next_index = 0
    scheduled_latency: list[float] = []
    service_latency: list[float] = []
    statuses: dict[int, int] = {}
    guids: list[str] = []
    start = time.perf_counter() + 0.2

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while next_index < total:
            index = next_index
            next_index += 1
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            head, body, _ = prepared[index % len(prepared)]
            guid = str(uuid.uuid4())
            sent = time.perf_counter()
            writer.write(head + guid.encode() + b"\r\n\r\n" + body)
            status = await read_response(reader)
            done = time.perf_counter()
            scheduled_latency.append(done - due)
            service_latency.append(done - sent)
            statuses[status] = statuses.get(status, 0) + 1
            guids.append(guid)
        writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return scheduled_latency, service_latency, statuses, guids, elapsed


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds used) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry.name)] = (
            int(fields[1]),
            name,
            (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        )
    return table


def cpu_by_component(api_pid: int, worker_pid: int) -> dict[str, float]:
    table = _proc_table()

    def tree(root: int) -> float:
        total, stack = 0.0, [root]
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][2]
                stack.extend(child for child, (ppid, _, _) in table.items() if ppid == pid)
        return total

    return {
        "api": tree(api_pid),
        "worker": tree(worker_pid),
        "postgres": sum(cpu for _, name, cpu in table.values() if name.startswith("postgres")),
        "redis": sum(cpu for _, name, cpu in table.values() if name.startswith("redis-server")),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=500.0, help="deliveries per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sustained load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument(
        "--worker-pool",
        choices=["prefork", "solo", "threads"],
        default="prefork",
        help="Celery pool of the worker",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=19,
        help="CPU niceness of the worker: on one small host the API is served first and\n"
        "the worker drains the backlog with the CPU left over (separate hosts need none)",
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()

    database = f"labbot_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    database_url = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    database_url = f"{database_url}/{database}"
    redis.Redis.from_url(args.redis).flushdb()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOT_")}
    env.update(
        LABBOT_ENVIRONMENT="production",
        LABBOT_DATABASE_URL=database_url,
        LABBOT_BROKER_URL=args.redis,
        LABBOT_WEBHOOK_SECRET=SECRET,
        LABBOT_GITHUB_TOKEN="ghs_benchmark_token_not_used_000000000000",
        LABBOT_LOG_LEVEL="WARNING",
    )
    labbot = [sys.executable, "-m", "app.cli"]
    subprocess.run([*labbot, "db", "upgrade"], env=env, check=True, cwd=ROOT, capture_output=True)
    api = subprocess.Popen(
        [*labbot, "serve", "--port", str(port), "--no-worker", "--workers", str(args.api_workers)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    worker = subprocess.Popen(
        [
            "nice",
            "-n",
            str(args.worker_nice),
            *labbot,
            "worker",
            # Delivery handling only: the triage jobs that PR events start would call GitHub,
            # which this benchmark does not measure (bench/triage_latency.py does).
            "--queues",
            "events",
            "--concurrency",
            str(args.worker_concurrency),
            "--pool",
            args.worker_pool,
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    # A SIGTERM (a timeout) still runs the cleanup below: a stray worker left on the same Redis
    # database would take the next run's messages.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("labbot serve did not become ready")
            time.sleep(0.3)
        payloads = real_payloads()
        # Warm-up (not counted): connections, caches, worker pools.
        asyncio.run(drive(port, args.rate, 3, args.connections, payloads))
        cpu_before = cpu_by_component(api.pid, worker.pid)
        client_before = time.process_time()
        scheduled, service, statuses, guids, elapsed = asyncio.run(
            drive(port, args.rate, args.duration, args.connections, payloads)
        )
        cpu_during = {
            name: used - cpu_before[name]
            for name, used in cpu_by_component(api.pid, worker.pid).items()
        }
        cpu_during["load_generator"] = time.process_time() - client_before
        acked = sum(n for code, n in statuses.items() if 200 <= code < 300)

        # Wait for the worker to drain, then read the outcome of every delivery we sent.
        drain_started = time.monotonic()
        with psycopg.connect(args.postgres.rsplit("/", 1)[0] + f"/{database}") as conn:
            while True:
                pending = conn.execute(
                    "SELECT count(*) FROM deliveries"
                    " WHERE status IN ('received', 'queued', 'processing')"
                ).fetchone()[0]
                if pending == 0:
                    break
                if time.monotonic() - drain_started > 600:
                    print(f"{pending} deliveries still pending after 600 s", file=sys.stderr)
                    break
                time.sleep(1)
            drain = time.monotonic() - drain_started
            rows = dict(
                conn.execute(
                    "SELECT guid, status || ':' || attempts FROM deliveries WHERE guid = ANY(%s)",
                    (guids,),
                ).fetchall()
            )
        outcomes: dict[str, int] = {}
        for state in rows.values():
            outcomes[state] = outcomes.get(state, 0) + 1
        exactly_once = sum(
            n
            for state, n in outcomes.items()
            if state in ("processed:1", "processed:0", "ignored:0", "ignored:1")
        )
        lost = len(guids) - len(rows)
        twice = sum(n for state, n in outcomes.items() if not state.endswith((":0", ":1")))
        report = {
            "deliveries_sent": len(guids),
            "acknowledged_2xx": acked,
            "status_codes": statuses,
            "duration_s": round(elapsed, 1),
            "deliveries_per_s": round(len(guids) / elapsed, 1),
            "ack_latency_ms": {
                "p50": round(percentile(scheduled, 0.50) * 1000, 2),
                "p90": round(percentile(scheduled, 0.90) * 1000, 2),
                "p99": round(percentile(scheduled, 0.99) * 1000, 2),
                "max": round(max(scheduled) * 1000, 2),
                "mean_service": round(statistics.mean(service) * 1000, 2),
            },
            "cpu_ms_per_delivery_during_load": {
                name: round(used * 1000 / len(guids), 3) for name, used in cpu_during.items()
            },
            "final_states": outcomes,
            "reached_final_state_exactly_once": exactly_once,
            "lost": lost,
            "handled_more_than_once": twice,
            "worker_drain_after_load_s": round(drain, 1),
            "setup": {
                "rate_target": args.rate,
                "connections": args.connections,
                "api_workers": args.api_workers,
                "worker_concurrency": args.worker_concurrency,
                "worker_nice": args.worker_nice,
                "worker_pool": args.worker_pool,
                "cpus": os.cpu_count(),
            },
        }
        print(json.dumps(report, indent=2))
    finally:
        for proc in (api, worker):
            proc.terminate()
        for proc in (api, worker):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
