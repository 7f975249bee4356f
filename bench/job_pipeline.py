"""Job pipeline benchmark: jobs of every kind, submitted as labbot submits them, run by two
worker processes on loopback Redis and PostgreSQL, each posting its check run to the GitHub
simulator.

    python bench/job_pipeline.py [--jobs 1000] [--rate 10] [--workers 2] [--work-ms 0]

Prints enqueue-to-start latency (p50/p90/p99/max), the scheduling overhead per job, worker time
per job, throughput, and whether any job was lost or doubled. Target: mean overhead per job
under 20 ms, none lost, none doubled. Exits 1 when a job was lost or doubled; a missed overhead
target prints FAIL but exits 0.

What runs: a fresh PostgreSQL database (migrated), a dedicated Redis database (FLUSHED first:
--redis), the simulator (`labbot dev github --plain-token`, no webhooks), and --workers worker
processes (bench/job_worker.py: `labbot worker` on all five queues with a no-op stage that
sleeps --work-ms, then reports `run.progress("bench", 1.0)`; the stages for sdg/train/bench do
not exist yet, and this measures the pipeline around a stage, not a stage). Each job is
app.jobs.submit_job + commit + app.jobs.publish_job, open loop at --rate jobs/s, round-robin over
triage, sdg, train, bench, precheck (queues triage, sdg, train, eval, eval). All jobs are on one
simulator PR, each on its own commit of it (the simulator refuses a check run on a commit that
does not exist; one job per (PR, kind, head SHA) may be active), and the PR's head is one more
commit, so after_job has nothing to start. labbot's own request path (bots.pipeline) also
creates the job's check run before publishing; here the harness creates it, in the worker.

Definitions (from the jobs table and the workers' records):
  enqueue-to-start latency  started_at - queued_at (queued_at: the submit's insert; it includes
                            the submitter's commit and publish)
  scheduling overhead       (finished_at - started_at - stage work) + enqueue-to-start latency,
                            i.e. finished_at - queued_at - the stage's own sleep: everything the
                            pipeline adds (broker, claim, lease, job log, progress write, check
                            run create and update on the simulator, fenced finish)
  worker time               task start to task end in the worker: also the lookup before the
                            claim and what runs after finished_at (final check-run update,
                            after_job); 1 / its mean bounds the jobs/s one worker process serves
  lost                      a submitted job not in a final state at the end
  doubled                   a job claimed more than once (attempts > 1) or whose stage ran more
                            than once (each worker records every stage execution in Redis)

Needs the PostgreSQL and Redis servers on 127.0.0.1 (see README). Open loop: jobs are submitted
on a fixed schedule whatever the workers do, so a pipeline that falls behind shows it as latency.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ghp_bench_job_pipeline_token_000000000000"
REPO = "bench-org/taxonomy"
KINDS = ("triage", "sdg", "train", "bench", "precheck")
FINAL = ("succeeded", "failed", "cancelled", "superseded")
RUNS_KEY = "labbot-bench:runs"  # bench/job_worker.py
TARGET_OVERHEAD_MS = 20.0
sys.path.insert(0, str(ROOT))

from app.cli import die_with_parent  # noqa: E402
from app.simulator.admin_client import SimulatorAdmin  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"mean {ms(statistics.mean(values))}  p50 {ms(percentile(values, 0.5))}  "
        f"p90 {ms(percentile(values, 0.9))}  p99 {ms(percentile(values, 0.99))}  "
        f"max {ms(max(values))}"
    )


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


def cpu_by_component(workers: list[int], simulator: int) -> dict[str, float]:
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
        "workers": sum(tree(pid) for pid in workers),
        "simulator": tree(simulator),
        "postgres (all)": sum(
            cpu for _, name, cpu in table.values() if name.startswith("postgres")
        ),
        "redis (all)": sum(
            cpu for _, name, cpu in table.values() if name.startswith("redis-server")
        ),
        "submitter": time.process_time(),
    }


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, procs: list[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"{proc.args!r} exited while waiting for {what}")
        try:
            if check():
                return
        except (httpx.HTTPError, psycopg.Error):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting: {what}")
        time.sleep(0.2)


@dataclass
class Submitter:
    """Submits jobs the way labbot does: submit_job in a unit of work, commit, publish_job."""

    repository_id: int
    pull_request_id: int
    head_shas: list[str]
    next_commit: int = 0
    cost: list[float] = field(default_factory=list)

    def submit(self, kind_name: str) -> int:
        from app.config import get_settings
        from app.db.models import JobKind
        from app.db.session import session_scope
        from app.jobs import publish_job, submit_job

        head_sha = self.head_shas[self.next_commit]
        self.next_commit += 1
        started = time.perf_counter()
        with session_scope() as session:
            submitted = submit_job(
                session,
                JobKind(kind_name),
                repository_id=self.repository_id,
                pull_request_id=self.pull_request_id,
                head_sha=head_sha,
                requested_by="bench",
                trigger="bench",
            )
            job = submitted.job
        if not submitted.created:
            raise SystemExit(f"job for {kind_name} on {head_sha} already existed")
        publish_job(job, get_settings())
        self.cost.append(time.perf_counter() - started)
        return job.id

    def open_loop(self, count: int, rate: float, offset: int = 0) -> tuple[list[int], float, float]:
        """Submit ``count`` jobs at ``rate`` per second; (job ids, seconds taken, worst lag)."""
        ids = []
        lag = 0.0
        start = time.perf_counter() + 0.05
        for index in range(count):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                lag = max(lag, -delay)
            ids.append(self.submit(KINDS[(offset + index) % len(KINDS)]))
        return ids, time.perf_counter() - start, lag


def non_final(dsn: str, ids: list[int]) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND state <> ALL(%s)", (ids, list(FINAL))
        ).fetchone()
    return int(row[0]) if row else len(ids)


def wait_final(dsn: str, ids: list[int], timeout: float) -> float:
    started = time.monotonic()
    while non_final(dsn, ids) and time.monotonic() - started < timeout:
        time.sleep(0.1)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs measured")
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="jobs submitted per second (open loop); the default is well below what two\n"
        "concurrency-1 workers serve on a 2-core host running everything (about 23/s), so\n"
        "latency shows the pipeline, not a backlog; raise it to find the capacity",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="pool size of each worker")
    parser.add_argument("--pool", choices=["prefork", "solo", "threads"], default="prefork")
    parser.add_argument("--work-ms", type=float, default=0.0, help="the no-op stage's own sleep")
    parser.add_argument("--warmup", type=int, default=10, help="jobs run first, not measured")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the last jobs to end"
    )
    parser.add_argument("--log-level", default="INFO", help="LABBOT_LOG_LEVEL of the workers")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/11",
        help="broker; this Redis database is flushed before and after",
    )
    args = parser.parse_args()

    database = f"labbot_bench_jobs_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    dsn = f"{args.postgres.rsplit('/', 1)[0]}/{database}"
    database_url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    broker = redis.Redis.from_url(args.redis)
    broker.flushdb()
    sim_port = free_port()
    scratch = tempfile.TemporaryDirectory(prefix="labbot-bench-jobs-")
    work_dir = Path(scratch.name)
    labbot_env = {
        "LABBOT_ENVIRONMENT": "development",
        "LABBOT_DATA_DIR": str(work_dir / "var"),
        "LABBOT_ARTIFACTS_DIR": str(work_dir / "artifacts"),
        "LABBOT_DATABASE_URL": database_url,
        "LABBOT_BROKER_URL": args.redis,
        "LABBOT_GITHUB_API_URL": f"http://127.0.0.1:{sim_port}",
        "LABBOT_GITHUB_TOKEN": TOKEN,
        "LABBOT_GITHUB_WRITE_INTERVAL_SECONDS": "0",
        "LABBOT_LOG_LEVEL": args.log_level,
        "LABBOT_BENCH_WORK_MS": str(args.work_ms),
        "LABBOT_BENCH_RECORD_URL": args.redis,
    }
    # This process submits the jobs, so it is configured like the workers.
    for key in [k for k in os.environ if k.startswith("LABBOT_")]:
        del os.environ[key]
    os.environ.update(labbot_env)
    env = dict(os.environ)

    from app.config import get_settings
    from app.db.migrate import upgrade
    from app.db.models import PullRequest, Repository
    from app.db.session import session_scope
    from workers.celery_app import celery_app, configure_celery

    get_settings.cache_clear()
    configure_celery(celery_app, get_settings())
    upgrade(database_url)

    processes: list[subprocess.Popen[bytes]] = []
    logs = []

    def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (work_dir / f"{name}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509
            start_new_session=True,  # its pool's children too can be stopped as a group
        )
        processes.append(proc)
        return proc

    # A SIGTERM (a timeout) still runs the cleanup below: a stray worker left on the same Redis
    # database would take the next run's messages.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    failed_setup = True
    try:
        simulator = start(
            "simulator",
            [
                sys.executable,
                "-m",
                "app.cli",
                "dev",
                "github",
                "--port",
                str(sim_port),
                "--plain-token",
                TOKEN,
                "--webhook-url",
                "",
                "--log-level",
                "warning",
            ],
        )
        sim_url = f"http://127.0.0.1:{sim_port}"
        wait_until(
            "the simulator",
            lambda: httpx.get(f"{sim_url}/_sim/config", timeout=1).status_code == 200,
            60,
            [simulator],
        )
        total = args.warmup + args.jobs
        with SimulatorAdmin(sim_url) as admin:
            admin.configure(rate_limit=10_000_000, send_bot_events=False)
            repo = admin.create_repo(REPO, {"README.md": "# taxonomy\n"}, install=False)
            pull = admin.open_pr(
                REPO,
                author="contributor",
                title="Benchmark jobs",
                files={"compositional_skills/bench/qna.yaml": "version: 3\n"},
            )
            head_shas = [pull.head_sha]
            for index in range(total):  # one more: the PR's head is none of the jobs' commits
                pushed = admin.push(REPO, pull.number, {"bench/commit.txt": f"{index}\n"})
                head_shas.append(pushed.head_sha)
        with session_scope() as session:
            session.add(Repository(id=repo.id, full_name=repo.full_name))
            session.flush()
            row = PullRequest(
                repository_id=repo.id,
                number=pull.number,
                title="Benchmark jobs",
                author="contributor",
                head_sha=head_shas[-1],
                base_ref=repo.default_branch,
            )
            session.add(row)
            session.flush()
            submitter = Submitter(repo.id, row.id, head_shas[:-1])

        workers = [
            start(
                f"worker-{n}",
                [
                    sys.executable,
                    str(ROOT / "bench" / "job_worker.py"),
                    "--hostname",
                    f"bench-{n}@%h",
                    "--concurrency",
                    str(args.concurrency),
                    "--pool",
                    args.pool,
                ],
            )
            for n in range(1, args.workers + 1)
        ]

        def workers_ready() -> bool:
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT count(*) FROM workers").fetchone()
            return bool(row and row[0] >= args.workers)

        wait_until("the workers", workers_ready, 120, processes)
        failed_setup = False

        # Warm-up (not measured): connections, imports in the pool processes, caches.
        warm_ids, _, _ = submitter.open_loop(args.warmup, 10.0)
        wait_final(dsn, warm_ids, 60)
        submitter.cost.clear()

        cpu_before = cpu_by_component([w.pid for w in workers], simulator.pid)
        ids, submit_s, lag = submitter.open_loop(args.jobs, args.rate, offset=args.warmup)
        drain_s = wait_final(dsn, ids, args.timeout)
        cpu_after = cpu_by_component([w.pid for w in workers], simulator.pid)

        report(
            args,
            dsn,
            broker,
            warm_ids,
            ids,
            submit_s,
            lag,
            drain_s,
            submitter.cost,
            {name: cpu_after[name] - cpu_before[name] for name in cpu_after},
        )
    finally:
        stop(processes)
        for log in logs:
            log.close()
        if failed_setup:
            for log_path in sorted(work_dir.glob("*.log")):
                tail = log_path.read_text(errors="replace")[-3000:]
                print(f"--- {log_path.name} (last lines)\n{tail}", file=sys.stderr)
        broker.flushdb()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        scratch.cleanup()


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Warm shutdown first (a worker hands back what it has not acknowledged), then the whole
    process group of each, so no pool child is left behind."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 20
    for proc in processes:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in processes:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def report(
    args: argparse.Namespace,
    dsn: str,
    broker: redis.Redis,
    warm_ids: list[int],
    ids: list[int],
    submit_s: float,
    lag: float,
    drain_s: float,
    submit_cost: list[float],
    cpu: dict[str, float],
) -> None:
    every = warm_ids + ids
    with psycopg.connect(dsn) as conn:
        rows = {
            row[0]: row
            for row in conn.execute(
                "SELECT id, kind, state, attempts, queued_at, started_at, finished_at, error"
                " FROM jobs WHERE id = ANY(%s)",
                (every,),
            ).fetchall()
        }
    runs = [json.loads(raw) for raw in broker.lrange(RUNS_KEY, 0, -1)]
    executions: dict[int, list[float]] = {}
    deliveries: dict[int, int] = {}
    task_time: dict[int, float] = {}
    for run in runs:
        job_id = run["job"]
        deliveries[job_id] = deliveries.get(job_id, 0) + 1
        executions.setdefault(job_id, []).extend(run["stage"])
        task_time[job_id] = task_time.get(job_id, 0.0) + run["end"] - run["start"]

    lost = [i for i in every if i not in rows or rows[i][2] not in FINAL]
    doubled = [i for i in every if i in rows and (rows[i][3] > 1 or len(executions.get(i, [])) > 1)]
    states: dict[str, int] = {}
    for i in ids:
        state = rows[i][2] if i in rows else "missing"
        states[state] = states.get(state, 0) + 1
    errors = sorted({str(rows[i][7]) for i in ids if i in rows and rows[i][2] == "failed"})
    never_ran = [
        i
        for i in ids
        if i in rows and rows[i][2] == "succeeded" and (i not in executions or rows[i][3] == 0)
    ]

    def seconds(later: datetime, earlier: datetime) -> float:
        return (later - earlier).total_seconds()

    done = [rows[i] for i in ids if i in rows and rows[i][2] == "succeeded" and rows[i][6]]
    latency = [seconds(r[5], r[4]) for r in done]
    run_time = [seconds(r[6], r[5]) for r in done]
    work = [sum(executions.get(r[0], [])) for r in done]
    overhead = [seconds(r[6], r[4]) - w for r, w in zip(done, work, strict=True)]
    worker_time = [task_time[r[0]] for r in done if r[0] in task_time]
    worker_overhead = [
        task_time[r[0]] - w for r, w in zip(done, work, strict=True) if r[0] in task_time
    ]
    span = (
        seconds(max(r[6] for r in done), min(r[4] for r in done)) if len(done) > 1 else float("nan")
    )
    redelivered = sum(1 for i in ids if deliveries.get(i, 0) > 1)
    settings_line = (
        f"{args.workers} worker processes x concurrency {args.concurrency} ({args.pool} pool), "
        f"queues events,triage,sdg,train,eval; rate {args.rate:g} jobs/s open loop; "
        f"stage work {args.work_ms:g} ms; worker log level {args.log_level}"
    )

    print("job pipeline benchmark (bench/job_pipeline.py)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"  machine: {os.cpu_count()} CPU cores, load average {load} at the end (1, 5, 15 min);"
        " PostgreSQL, Redis and the GitHub simulator on loopback"
    )
    print(
        f"  parameters: {args.jobs} jobs (+{len(warm_ids)} warm-up, not measured), {settings_line}"
    )
    print(f"  kinds round-robin: {', '.join(KINDS)} (queues triage, sdg, train, eval, eval)")
    print(
        f"submitted {len(ids)} in {submit_s:.1f} s ({len(ids) / submit_s:.1f} jobs/s, worst lag "
        f"behind schedule {ms(lag)} ms)"
    )
    print(f"  submit_job + commit + publish_job, ms: {spread(submit_cost)}")
    print(
        f"final states: {json.dumps(states)}; last job ended {drain_s:.1f} s after the last submit;"
        f" throughput {len(done) / span:.1f} jobs/s (first queued to last finished)"
    )
    for error in errors[:5]:
        print(f"  failed: {error[:300]}")
    print("per job, ms:")
    print(f"  enqueue-to-start latency (started_at - queued_at)   {spread(latency)}")
    print(f"  run time in the harness (finished_at - started_at)  {spread(run_time)}")
    print(f"  stage's own work (its sleep)                        {spread(work)}")
    print(f"  scheduling overhead (run - work + latency)          {spread(overhead)}")
    print(f"  worker time (task start to end, in the worker)      {spread(worker_time)}")
    print(f"  worker time - stage work                            {spread(worker_overhead)}")
    print("by kind, ms (p50 / p99):")
    for kind in KINDS:
        picked = [n for n, r in enumerate(done) if r[1] == kind]
        if not picked:
            continue
        lat = [latency[n] for n in picked]
        over = [overhead[n] for n in picked]
        print(
            f"  {kind:<9} {len(picked):>5} jobs  latency {ms(percentile(lat, 0.5))} / "
            f"{ms(percentile(lat, 0.99))}  overhead {ms(percentile(over, 0.5))} / "
            f"{ms(percentile(over, 0.99))}"
        )
    if worker_time:
        capacity = args.workers * args.concurrency / statistics.mean(worker_time)
        print(
            f"capacity bound: {args.workers * args.concurrency} pool processes / mean worker time"
            f" = {capacity:.0f} jobs/s (CPU shared with everything else on this host)"
        )
    print(
        "CPU ms per job while measured: "
        + ", ".join(f"{name} {used * 1000 / len(ids):.1f}" for name, used in cpu.items())
        + " (postgres and redis: every process of theirs on the host)"
    )
    print(
        f"messages delivered more than once (the claim refused the extra copy): {redelivered}; "
        f"succeeded without the stage having run: {len(never_ran)}"
    )
    print(
        f"lost: {len(lost)}, doubled: {len(doubled)} (over all {len(every)} jobs, warm-up included)"
    )
    if lost:
        print(f"  lost job ids: {lost[:20]}")
    if doubled:
        print(f"  doubled job ids: {doubled[:20]}")
    mean_overhead = statistics.mean(overhead) * 1000 if overhead else float("inf")
    passed = mean_overhead < TARGET_OVERHEAD_MS and not lost and not doubled
    passed = passed and states.get("succeeded", 0) == len(ids) and not never_ran
    print(
        f"target: mean scheduling overhead < {TARGET_OVERHEAD_MS:g} ms "
        f"(measured {mean_overhead:.1f} ms), none lost, none doubled, every job succeeded: "
        f"{'PASS' if passed else 'FAIL'}"
    )
    if lost or doubled:
        sys.exit(1)


if __name__ == "__main__":
    main()
