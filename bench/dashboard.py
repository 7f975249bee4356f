"""Dashboard benchmark: server time per request for every dashboard page and JSON endpoint,
against a real `labbot serve` (one uvicorn process) on a PostgreSQL database seeded with a
realistic production-sized dataset.

    python bench/dashboard.py [--requests 50] [--warmup 3] [--check-queries]
                              [--pulls 2000] [--jobs 10000] [--builds 50]

What runs: a fresh PostgreSQL database (migrated with app/db/migrate.py, dropped at the end
unless --keep), seeded by tests/seed.py (2,000 PRs with triage runs and findings, 10,000 jobs
over every kind and state plus one build job per build, 50 builds, 5,000 deliveries, workers,
and the jobs' artifacts in a temporary LABBOT_ARTIFACTS_DIR), and `labbot serve --workers 1
--no-worker` on loopback with the Redis broker. The API's sweeper is held off
(LABBOT_SWEEP_INTERVAL_SECONDS=86400) so the seeded queued and running jobs stay as seeded; it
never runs on the request path.

Measure: each URL gets --warmup requests first, then --requests measured ones, URLs taken in
round-robin so background noise spreads over all of them, one at a time over one HTTP
keep-alive connection (http.client) from this process. Server time = time.perf_counter()
from sending the request to reading the last byte of the response, on loopback: it includes
the loopback round trip and this client's parsing (well under 0.1 ms), nothing else. When the
response carries a Server-Timing header its total is printed beside it. "CPU ms" is the mean
user+system CPU the server process spent per request (/proc/<pid>/stat around each request;
clock ticks, so only the mean over the requests means anything): a figure that holds up when
other work shares the cores, which inflates the wall-clock times. PostgreSQL's CPU is not in it.

Targets (issue): every page p95 < 150 ms, every JSON endpoint p95 < 50 ms. A URL that answers
404 is reported as missing (the page does not exist yet), not measured. Exits 1 when a target
is missed or a URL answers with an error (other than 404), 0 otherwise.

--check-queries: afterwards, starts the same app in an instrumented server (this script with
--serve-counting: a SQLAlchemy before_cursor_execute listener on every Engine and an ASGI
wrapper that adds X-Bench-SQL-Statements to each response; the app's code is unchanged) and
prints the SQL statements each URL runs.

Needs the PostgreSQL and Redis servers on 127.0.0.1 (see README).
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.cli import die_with_parent  # noqa: E402
from tests.seed import Seeded  # noqa: E402

PAGE_TARGET_MS = 150.0
API_TARGET_MS = 50.0
SQL_HEADER = "x-bench-sql-statements"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- the URLs -----------------------------------------------------------------------------------


def urls_for(seeded: Seeded, dsn: str, now: datetime) -> list[str]:
    """Every page and JSON endpoint, with realistic query strings, for the seeded data."""
    from app.db.models import BuildState, DeliveryStatus, JobKind, JobState

    repo = seeded.repositories[0]
    open_pull = max(
        (p for p in seeded.pulls if p.state == "open" and not p.draft and p.kind),
        key=lambda p: p.number,
    )
    merged_pull = seeded.pull(state="closed", merged=True)
    author = open_pull.author
    finished = [b for b in seeded.builds if b.state is BuildState.succeeded] or seeded.builds
    busiest_build = max(finished, key=lambda b: b.pulls)
    running_build = seeded.build(BuildState.running)
    bench_job = seeded.job(JobKind.bench, JobState.succeeded)
    train_job = seeded.job(JobKind.train, JobState.succeeded)
    running_job = seeded.job(JobKind.sdg, JobState.running)
    failed_job = seeded.job(JobKind.triage, JobState.failed)
    guid = seeded.deliveries_by[DeliveryStatus.failed][-1]
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT triage_run_id FROM triage_findings GROUP BY triage_run_id "
            "ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        pull_with_jobs = conn.execute(
            "SELECT r.full_name, p.number FROM jobs j JOIN pull_requests p ON p.id = "
            "j.pull_request_id JOIN repositories r ON r.id = p.repository_id "
            "GROUP BY r.full_name, p.number ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
    triage_run = row[0] if row else 1
    busy_repo, busy_number = pull_with_jobs or (repo, open_pull.number)
    week_ago = (now - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def q(path: str, **params: str | int) -> str:
        return f"{path}?{urlencode(params)}" if params else path

    pages = [
        "/",
        "/pulls",
        q("/pulls", state="all", page=2),
        q("/pulls", state="merged", kind="knowledge"),
        q("/pulls", state="open", label="triage-needed"),
        q("/pulls", state="all", author=author),
        q("/pulls", state="all", repository=repo, page=5),
        open_pull.path,
        merged_pull.path,
        f"/pulls/{busy_repo}/{busy_number}",
        "/jobs",
        q("/jobs", state="failed", kind="sdg"),
        q("/jobs", state="succeeded", page=3),
        q("/jobs", repository=repo, author=author),
        q("/jobs", kind="triage", since=week_ago),
        q("/jobs", state="running"),
        f"/jobs/{bench_job}",
        f"/jobs/{train_job}",
        f"/jobs/{running_job}",
        f"/jobs/{failed_job}",
        "/builds",
        q("/builds", page=2),
        f"/builds/{busiest_build.id}",
        f"/builds/{running_build.id}",
        "/deliveries",
        q("/deliveries", status="failed"),
        q("/deliveries", event="pull_request.synchronize", page=2),
        "/help",
    ]
    api = [
        "/api/overview",
        "/api/pulls",
        q("/api/pulls", state="all", page=2),
        q("/api/pulls", state="merged", kind="skill"),
        q("/api/pulls", label="community-build-ready", state="all"),
        q("/api/pulls", author=author, state="all"),
        f"/api{open_pull.path}",
        f"/api/pulls/{busy_repo}/{busy_number}",
        "/api/jobs",
        q("/api/jobs", state="failed", kind="train"),
        q("/api/jobs", page=5),
        q("/api/jobs", repository=repo, since=week_ago),
        f"/api/jobs/{bench_job}",
        f"/api/jobs/{running_job}/log",
        "/api/deliveries",
        q("/api/deliveries", status="processed", page=3),
        f"/api/deliveries/{quote(guid)}",
        "/api/builds",
        q("/api/builds", page=2),
        f"/api/builds/{busiest_build.id}",
        "/api/builds/trends",
        f"/api/triage-runs/{triage_run}",
    ]
    return list(dict.fromkeys(pages + api))  # the same URL twice is measured once


def is_api(url: str) -> bool:
    return url.startswith("/api/")


# --- measuring ----------------------------------------------------------------------------------


@dataclass
class Measured:
    url: str
    status: int = 0
    times: list[float] = field(default_factory=list)  # seconds
    server_timing: list[float] = field(default_factory=list)  # ms, when the app sends it
    size: int = 0
    cpu: list[float] = field(default_factory=list)  # the server process's CPU s per request
    error: str | None = None

    @property
    def target_ms(self) -> float:
        return API_TARGET_MS if is_api(self.url) else PAGE_TARGET_MS


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, url: str) -> tuple[int, bytes, float, http.client.HTTPMessage]:
        for attempt in (1, 2):
            try:
                started = time.perf_counter()
                self.conn.request("GET", url, headers={"Accept-Encoding": "identity"})
                response = self.conn.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                if response.getheader("connection", "").lower() == "close":
                    self.reconnect()
                return response.status, body, elapsed, response.headers
            except (http.client.HTTPException, ConnectionError):
                if attempt == 2:
                    raise
                self.reconnect()
        raise AssertionError("unreachable")

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def close(self) -> None:
        self.conn.close()


def server_timing_ms(headers: http.client.HTTPMessage) -> float | None:
    value = headers.get("server-timing")
    if not value:
        return None
    total = 0.0
    for metric in value.split(","):
        for param in metric.split(";")[1:]:
            key, _, number = param.strip().partition("=")
            if key == "dur":
                try:
                    total = max(total, float(number))
                except ValueError:
                    pass
    return total or None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far (clock-tick resolution)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def measure(
    port: int, urls: list[str], requests: int, warmup: int, pid: int
) -> dict[str, Measured]:
    client = Client(port)
    results = {url: Measured(url) for url in urls}
    live = []
    for url in urls:  # warm-up; also tells which URLs exist
        result = results[url]
        for _ in range(warmup):
            status, body, _, _ = client.get(url)
            result.status, result.size = status, len(body)
            if status != 200:
                break
        if result.status == 200:
            live.append(url)
        elif result.status != 404:
            result.error = body[:300].decode(errors="replace")
    for _ in range(requests):
        for url in live:
            cpu_before = cpu_seconds(pid)
            status, body, elapsed, headers = client.get(url)
            cpu = cpu_seconds(pid) - cpu_before
            result = results[url]
            if status != 200:
                result.status, result.error = status, body[:300].decode(errors="replace")
                continue
            result.times.append(elapsed)
            result.cpu.append(cpu)
            if (timing := server_timing_ms(headers)) is not None:
                result.server_timing.append(timing)
    client.close()
    return results


def count_queries(port: int, urls: list[str]) -> dict[str, int | None]:
    client = Client(port)
    counts: dict[str, int | None] = {}
    for url in urls:
        client.get(url)  # warm caches as the timed run did
        status, _, _, headers = client.get(url)
        value = headers.get(SQL_HEADER)
        counts[url] = int(value) if status == 200 and value is not None else None
    client.close()
    return counts


# --- the instrumented server (--serve-counting) ---------------------------------------------------


def serve_counting(port: int) -> None:
    """The app as `labbot serve` builds it, with every SQL statement counted per request and
    the count sent back in a header (requests arrive one at a time)."""
    import uvicorn
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from app.main import create_app

    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    event.listen(Engine, "before_cursor_execute", count)

    def factory() -> Callable[..., Any]:
        inner = create_app()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            statements[0] = 0

            async def counted_send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    headers = [*message.get("headers", [])]
                    headers.append((SQL_HEADER.encode(), str(statements[0]).encode()))
                    message = {**message, "headers": headers}
                await send(message)

            await inner(scope, receive, counted_send)

        return app

    uvicorn.run(factory, factory=True, host="127.0.0.1", port=port, log_config=None)


# --- running it -----------------------------------------------------------------------------------


def start_server(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv,
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,  # noqa: PLW1509
    )


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited early:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"the server did not answer /healthz within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def report(results: dict[str, Measured], queries: dict[str, int | None] | None) -> bool:
    """Prints the table and the overall lines; True when every target was met."""
    width = max(len(url) for url in results)
    timing = any(r.server_timing for r in results.values())
    head = f"{'url':<{width}}  {'status':>6}  {'n':>3}  {'p50 ms':>7}  {'p95 ms':>7}  {'max ms':>7}"
    head += f"  {'CPU ms':>6}  {'target':>6}  {'KiB':>6}"
    if timing:
        head += f"  {'S-T p95':>7}"
    if queries is not None:
        head += f"  {'SQL':>4}"
    print(head)
    ok = True
    groups: dict[str, list[float]] = {"pages": [], "api": []}
    missing, errors, slow = [], [], []
    for url, r in results.items():
        line = f"{url:<{width}}  {r.status:>6}  {len(r.times):>3}  "
        if r.times:
            ms = [t * 1000 for t in r.times]
            p95 = percentile(ms, 0.95)
            verdict = "ok" if p95 < r.target_ms else "SLOW"
            line += f"{percentile(ms, 0.5):>7.1f}  {p95:>7.1f}  {max(ms):>7.1f}  "
            line += f"{1000 * sum(r.cpu) / len(r.cpu):>6.1f}  "
            line += f"{'<' + str(int(r.target_ms)):>6}  {r.size / 1024:>6.1f}"
            if timing:
                st = f"{percentile(r.server_timing, 0.95):.1f}" if r.server_timing else "-"
                line += f"  {st:>7}"
            if queries is not None:
                count = queries.get(url)
                line += f"  {count if count is not None else '-':>4}"
            line += f"  {verdict}"
            groups["api" if is_api(url) else "pages"].extend(ms)
            if verdict != "ok":
                slow.append(url)
                ok = False
        elif r.status == 404:
            line += "missing (404: not built yet)"
            missing.append(url)
        else:
            line += f"ERROR {r.error or ''}".replace("\n", " ")[:160]
            errors.append(url)
            ok = False
        if r.times and r.status != 200:
            line += f"  (later answered {r.status}: {r.error!r:.80})"
            errors.append(url)
            ok = False
        print(line)
    print()
    for name, values in groups.items():
        if values:
            target = API_TARGET_MS if name == "api" else PAGE_TARGET_MS
            print(
                f"overall {name}: {len(values)} requests, p50 {percentile(values, 0.5):.1f} ms, "
                f"p95 {percentile(values, 0.95):.1f} ms, max {max(values):.1f} ms "
                f"(target: p95 < {target:.0f} ms for each URL)"
            )
    measured = sum(1 for r in results.values() if r.times)
    print(
        f"URLs: {len(results)}; measured {measured}; missing {len(missing)}; "
        f"errors {len(errors)}; over target {len(slow)}"
    )
    if slow:
        print("over target: " + ", ".join(slow))
    if errors:
        print("errors: " + ", ".join(errors))
    print("RESULT: " + ("PASS" if ok else "FAIL"))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50, help="measured requests per URL")
    parser.add_argument("--warmup", type=int, default=3, help="requests per URL first, unmeasured")
    parser.add_argument("--pulls", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=10_000, help="plus one build job per build")
    parser.add_argument("--builds", type=int, default=50)
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--check-queries", action="store_true", help="also count SQL per URL")
    parser.add_argument("--keep", action="store_true", help="keep the database (name printed)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="the broker")
    parser.add_argument("--serve-counting", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_counting:
        serve_counting(args.serve_counting)
        return

    from app.db.migrate import upgrade
    from tests.seed import create_database, drop_database, seed

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    name, database_url = create_database(args.postgres, "labbot_bench_dashboard")
    dsn = f"{args.postgres.rsplit('/', 1)[0]}/{name}"
    scratch = tempfile.TemporaryDirectory(prefix="labbot-bench-dashboard-")
    work = Path(scratch.name)
    procs: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        started = time.perf_counter()
        upgrade(database_url)
        migrated = time.perf_counter() - started
        seeded = seed(
            database_url,
            pulls=args.pulls,
            jobs=args.jobs,
            builds=args.builds,
            deliveries=args.deliveries,
            artifacts_dir=work / "artifacts",
        )
        print(
            f"database {name}: migrated in {migrated:.1f} s; seeded in {seeded.seconds:.1f} s "
            f"(artifacts included): {len(seeded.pulls)} PRs, {seeded.triage_runs} triage runs, "
            f"{seeded.findings} findings, {seeded.job_count} jobs, {len(seeded.builds)} builds, "
            f"{seeded.delivery_count} deliveries, {seeded.command_audits} command audits"
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")  # as autovacuum would have by now in production
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOT_")}
        env.update(
            {
                "LABBOT_ENVIRONMENT": "production",
                "LABBOT_DATABASE_URL": database_url,
                "LABBOT_BROKER_URL": args.redis,
                "LABBOT_DATA_DIR": str(work / "var"),
                "LABBOT_ARTIFACTS_DIR": str(work / "artifacts"),
                "LABBOT_WEBHOOK_SECRET": "bench-dashboard-secret-5d0c3b7a9e",
                "LABBOT_GITHUB_TOKEN": "ghs_bench_dashboard_token_000000000000",
                "LABBOT_SWEEP_INTERVAL_SECONDS": "86400",
                "LABBOT_REDELIVER_INTERVAL_SECONDS": "0",
            }
        )
        port = free_port()
        log = work / "api.log"
        argv = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
        server = start_server([*argv, "--workers", "1", "--no-worker"], env, log)
        procs.append(server)
        wait_ready(port, server, log)
        urls = urls_for(seeded, dsn, seeded.now)
        print(
            f"labbot serve --workers 1 (pid {server.pid}); {len(urls)} URLs x {args.requests} "
            f"requests after {args.warmup} warm-up each, round-robin, one keep-alive connection"
        )
        print(
            "server time: time.perf_counter() around each request on loopback (send to last "
            "byte read), measured in this separate client process; CPU ms: the server "
            "process's mean user+system CPU per request (/proc, PostgreSQL's not included)\n"
        )
        results = measure(port, urls, args.requests, args.warmup, server.pid)
        stop(server)
        queries = None
        if args.check_queries:
            port = free_port()
            log = work / "api-counting.log"
            counting = start_server(
                [sys.executable, str(Path(__file__).resolve()), "--serve-counting", str(port)],
                env,
                log,
            )
            procs.append(counting)
            wait_ready(port, counting, log)
            queries = count_queries(port, [u for u, r in results.items() if r.times])
            stop(counting)
            print(
                "SQL: statements per request (SQLAlchemy before_cursor_execute in an instrumented "
                "copy of the server, not timed)\n"
            )
        ok = report(results, queries)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if any(p.returncode not in (0, None, -signal.SIGTERM) for p in procs):
            print(f"server log (tail):\n{log.read_text(errors='replace')[-2000:]}")
    finally:
        for proc in procs:
            stop(proc)
        if args.keep:
            print(f"kept database {name} ({database_url})")
        else:
            drop_database(args.postgres, name)
        scratch.cleanup()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
