"""Time from a contributor opening a PR to labbot's answer on it, end to end: the simulator sends
the signed webhook, `labbot serve` and a separate worker (PostgreSQL and Redis) triage the real
contributor files, and the check run, sticky comment and labels appear on the simulator.

    python bench/triage_latency.py [--prs 20]

Prints p50/p90/max seconds until the check run is completed, the comment is there, and the
labels are set, over PRs drawn from ../shared/data/taxonomy/prs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "taxonomy" / "prs"
SECRET = "bench-triage-secret-7d21"
TOKEN = "ghp_bench_triage_token_0000000000000000000"
REPO = "instructlab-demo/taxonomy"
sys.path.insert(0, str(ROOT))

from app.cli import die_with_parent  # noqa: E402
from app.simulator.admin_client import SimulatorAdmin  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pr_files(number: str) -> dict[str, str]:
    root = CORPUS / number
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            try:
                files[str(path.relative_to(root))] = path.read_text()
            except UnicodeDecodeError:
                continue
    return files


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--prs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()

    database = f"labbot_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    database_url = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    redis.Redis.from_url(args.redis).flushdb()
    sim_port, api_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOT_")}
    env.update(
        LABBOT_ENVIRONMENT="production",
        LABBOT_DATABASE_URL=f"{database_url}/{database}",
        LABBOT_BROKER_URL=args.redis,
        LABBOT_WEBHOOK_SECRET=SECRET,
        LABBOT_GITHUB_TOKEN=TOKEN,
        LABBOT_GITHUB_API_URL=f"http://127.0.0.1:{sim_port}",
        LABBOT_LOG_LEVEL="WARNING",
    )
    labbot = [sys.executable, "-m", "app.cli"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run([*labbot, "db", "upgrade"], env=env, check=True, cwd=ROOT, **quiet)
    processes = [
        subprocess.Popen(
            [
                *labbot,
                "dev",
                "github",
                "--port",
                str(sim_port),
                "--plain-token",
                TOKEN,
                "--webhook-url",
                f"http://127.0.0.1:{api_port}/webhooks/github",
                "--webhook-secret",
                SECRET,
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
            preexec_fn=die_with_parent,
            **quiet,
        ),
        subprocess.Popen(
            [*labbot, "serve", "--port", str(api_port), "--no-worker"],
            env=env,
            cwd=ROOT,
            preexec_fn=die_with_parent,
            **quiet,
        ),
        subprocess.Popen(
            [*labbot, "worker", "--queues", "events,triage", "--concurrency", "2"],
            env=env,
            cwd=ROOT,
            preexec_fn=die_with_parent,
            **quiet,
        ),
    ]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        wait_ready(f"http://127.0.0.1:{sim_port}/_sim/config")
        wait_ready(f"http://127.0.0.1:{api_port}/readyz")
        time.sleep(2)  # the worker's first connection
        admin = SimulatorAdmin(f"http://127.0.0.1:{sim_port}")
        admin.configure(plain_token=TOKEN, send_bot_events=True)
        admin.create_repo(REPO, {"README.md": "# taxonomy\n"}, org=True)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{sim_port}", headers={"Authorization": f"token {TOKEN}"}
        )
        chosen = random.Random(args.seed).sample(
            sorted(p.name for p in CORPUS.iterdir() if any(p.rglob("qna.yaml"))), args.prs
        )
        timings: dict[str, list[float]] = {"check_run": [], "comment": [], "labels": []}
        for number in chosen:
            started = time.perf_counter()
            opened = admin.open_pr(
                REPO, author="contributor", title=f"PR {number}", files=pr_files(number)
            )
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 60
            while len(seen) < 3 and time.monotonic() < deadline:
                now = time.perf_counter() - started
                if "check_run" not in seen:
                    runs = api.get(f"/repos/{REPO}/commits/{opened.head_sha}/check-runs").json()
                    if any(r["status"] == "completed" for r in runs["check_runs"]):
                        seen["check_run"] = now
                if "comment" not in seen:
                    comments = api.get(f"/repos/{REPO}/issues/{opened.number}/comments").json()
                    if any("labbot:triage" in c["body"] for c in comments):
                        seen["comment"] = now
                if "labels" not in seen:
                    labels = api.get(f"/repos/{REPO}/issues/{opened.number}/labels").json()
                    if any(label["name"].startswith("triage-") for label in labels):
                        seen["labels"] = now
                time.sleep(0.02)
            for key in timings:
                timings[key].append(seen.get(key, float("nan")))
            # PRs arrive minutes apart in real life; 5 s lets the GitHub write bucket refill, so
            # each PR is timed as a contributor sees it (a burst is held to 1 write/s by design).
            time.sleep(5)

        def figures(values: list[float]) -> dict[str, float]:
            ordered = sorted(values)
            return {
                "p50": round(ordered[len(ordered) // 2], 3),
                "p90": round(ordered[int(len(ordered) * 0.9)], 3),
                "max": round(ordered[-1], 3),
            }

        print(
            json.dumps(
                {
                    "prs": len(chosen),
                    "pr_numbers": chosen,
                    "seconds_until": {key: figures(values) for key, values in timings.items()},
                    "setup": "simulator + labbot serve + 1 worker (2 processes), PostgreSQL, Redis",
                },
                indent=2,
            )
        )
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
