"""`labbot dev github` as a process: starts quickly, seeds the demo world, answers REST."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from app.simulator.cli import github
from app.simulator.demo import DEMO_ORG, DEMO_REPO

ROOT = Path(__file__).resolve().parents[2]


def test_help_names_the_options() -> None:
    result = CliRunner().invoke(github, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--port",
        "--webhook-url",
        "--webhook-secret",
        "--app-id",
        "--app-public-key-file",
        "--seed-demo",
    ):
        assert option in result.output


def test_serves_the_seeded_demo(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp_path / "sim.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from app.simulator.cli import github; github()",
            "--port",
            str(port),
            "--plain-token",
            "demo-token",
            "--seed-demo",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/_sim/config", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "sim.log").read_text()
            assert time.monotonic() - started < 15, "the simulator did not start"
            time.sleep(0.05)
        headers = {"Authorization": "token demo-token"}
        repo = httpx.get(f"{base}/repos/{DEMO_ORG}/{DEMO_REPO}", headers=headers).json()
        assert repo["full_name"] == f"{DEMO_ORG}/{DEMO_REPO}"
        assert repo["owner"]["type"] == "Organization"
        tree = httpx.get(
            f"{base}/repos/{DEMO_ORG}/{DEMO_REPO}/git/trees/main?recursive=1", headers=headers
        ).json()
        assert any(e["path"].endswith("qna.yaml") for e in tree["tree"])
        member = httpx.get(
            f"{base}/orgs/{DEMO_ORG}/teams/taxonomy-triagers/memberships/triager-tia",
            headers=headers,
        )
        assert member.json()["state"] == "active"
        assert httpx.get(f"{base}/_sim/requests?invalid=1").json() == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
