"""Injected faults: GitHub failing before acting, or acting and then answering with an error."""

from __future__ import annotations

import httpx

from app.simulator.admin_client import SimulatorAdmin
from tests.simulator.conftest import REPO


def _comments(sim: SimulatorAdmin, number: int) -> list[str]:
    return [c["body"] for c in sim.state()["repos"][REPO]["issues"][str(number)]["comments"]]


def test_after_fault_performs_the_action_then_fails(sim: SimulatorAdmin, api: httpx.Client) -> None:
    number = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"}).number
    sim.fault(
        rf"/repos/{REPO}/issues/\d+/comments",
        502,
        method="POST",
        mode="after",
        body={"message": "Bad Gateway"},
    )
    response = api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "sticky summary"})
    assert (response.status_code, response.json()) == (502, {"message": "Bad Gateway"})
    assert _comments(sim, number) == ["sticky summary"]  # GitHub did create it

    again = api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "retry"})
    assert again.status_code == 201  # the fault was used up
    records = sim.requests(operation="issues/create-comment")
    assert [(r["status"], r["fault"], r["invalid"]) for r in records] == [
        (502, True, None),
        (201, False, None),
    ]


def test_before_fault_fails_without_acting_and_counts_down(
    sim: SimulatorAdmin, api: httpx.Client
) -> None:
    number = sim.open_pr(REPO, author="alice", files={"a.md": "a\n"}).number
    sim.fault(rf"/repos/{REPO}/issues/{number}/comments", 500, method="POST", times=2)
    statuses = [
        api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "x"}).status_code
        for _ in range(3)
    ]
    assert statuses == [500, 500, 201]
    assert _comments(sim, number) == ["x"]


def test_fault_headers_simulate_a_rate_limit(sim: SimulatorAdmin, api: httpx.Client) -> None:
    reset = "1700000000"
    sim.fault(
        rf"/repos/{REPO}",
        403,
        method="GET",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset, "retry-after": "7"},
        body={"message": "API rate limit exceeded for installation ID 1."},
    )
    limited = api.get(f"/repos/{REPO}")
    assert limited.status_code == 403
    assert (limited.headers["x-ratelimit-remaining"], limited.headers["retry-after"]) == ("0", "7")
    assert api.get(f"/repos/{REPO}").status_code == 200
    sim.fault(r".*", 503, times=5)
    sim.clear_faults()
    assert api.get(f"/repos/{REPO}").status_code == 200
