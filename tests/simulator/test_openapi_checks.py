"""Every request is checked against GitHub's OpenAPI description; what GitHub would refuse is
answered with GitHub's status and recorded as invalid."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from app.simulator.admin_client import SimulatorAdmin
from tests.simulator.conftest import REPO

pytestmark = pytest.mark.allow_invalid_github_requests

ANNOTATION = {
    "path": "README.md",
    "start_line": 1,
    "end_line": 1,
    "annotation_level": "warning",
    "message": "m",
}


def _open_pr(sim: SimulatorAdmin) -> tuple[int, str]:
    opened = sim.open_pr(REPO, author="alice", files={"README.md": "changed\n"})
    return opened.number, opened.head_sha


def test_labels_must_be_a_list(sim: SimulatorAdmin, api: httpx.Client) -> None:
    number, _ = _open_pr(sim)
    bad = api.post(f"/repos/{REPO}/issues/{number}/labels", json={"labels": 5})
    assert bad.status_code == 422
    assert "labels" in bad.json()["message"]
    assert "array" in bad.json()["message"]
    good = api.post(f"/repos/{REPO}/issues/{number}/labels", json={"labels": ["skill"]})
    assert good.status_code == 200
    assert [lb["name"] for lb in good.json()] == ["skill"]

    invalid = sim.requests(invalid=True)
    assert len(invalid) == 1
    assert invalid[0]["operation"] == "issues/add-labels"
    assert invalid[0]["body"] == {"labels": 5}
    assert "labels" in invalid[0]["invalid"]


def test_bare_label_array_is_refused_as_the_published_schema_says(
    sim: SimulatorAdmin, api: httpx.Client
) -> None:
    """The description only allows `{"labels": [...]}`; PyGithub's add_to_labels sends a list."""
    number, _ = _open_pr(sim)
    response = api.post(f"/repos/{REPO}/issues/{number}/labels", json=["skill"])
    assert response.status_code == 422
    assert sim.state()["repos"][REPO]["issues"][str(number)]["labels"] == []


def test_check_run_annotation_and_text_limits(sim: SimulatorAdmin, api: httpx.Client) -> None:
    _, head = _open_pr(sim)
    base = {"name": "ilab/schema", "head_sha": head}
    too_many = {**base, "output": {"title": "t", "summary": "s", "annotations": [ANNOTATION] * 51}}
    response = api.post(f"/repos/{REPO}/check-runs", json=too_many)
    assert response.status_code == 422
    assert "51 items, more than the maximum of 50" in response.json()["message"]

    too_long = {**base, "output": {"title": "t", "summary": "x" * 65_536}}
    response = api.post(f"/repos/{REPO}/check-runs", json=too_long)
    assert response.status_code == 422
    assert "65536 characters long" in response.json()["message"]

    fifty = {
        **base,
        "output": {"title": "t", "summary": "x" * 65_535, "annotations": [ANNOTATION] * 50},
    }
    assert api.post(f"/repos/{REPO}/check-runs", json=fifty).status_code == 201
    assert [r["operation"] for r in sim.requests(invalid=True)] == [
        "checks/create",
        "checks/create",
    ]


def test_rules_beyond_the_schema(sim: SimulatorAdmin, api: httpx.Client) -> None:
    _, head = _open_pr(sim)
    response = api.post(
        f"/repos/{REPO}/check-runs", json={"name": "x", "head_sha": head, "status": "completed"}
    )
    assert response.status_code == 422
    assert "conclusion" in response.json()["message"]
    columns = {**ANNOTATION, "end_line": 3, "start_column": 1, "end_column": 2}
    body = {
        "name": "x",
        "head_sha": head,
        "output": {"title": "t", "summary": "s", "annotations": [columns]},
    }
    assert api.post(f"/repos/{REPO}/check-runs", json=body).status_code == 422
    unknown_sha = {"name": "x", "head_sha": "0" * 40}
    assert api.post(f"/repos/{REPO}/check-runs", json=unknown_sha).status_code == 422
    assert (
        api.post(f"/repos/{REPO}/issues/1/comments", json={"body": "x" * 65_537}).status_code == 422
    )


def test_unknown_path_wrong_method_bad_json_bad_query(
    sim: SimulatorAdmin, api: httpx.Client
) -> None:
    number, _ = _open_pr(sim)
    assert api.get(f"/repos/{REPO}/pull/{number}").status_code == 404
    assert api.patch(f"/repos/{REPO}/pulls/{number}/files", json={}).status_code == 404
    bad_json = api.post(
        f"/repos/{REPO}/issues/{number}/comments",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["message"] == "Problems parsing JSON"
    assert (
        api.get(f"/repos/{REPO}/pulls/{number}/files", params={"per_page": "many"}).status_code
        == 422
    )

    reasons = [r["invalid"] for r in sim.requests(invalid=True)]
    assert reasons[0] == f"GitHub's REST API has no GET /repos/{REPO}/pull/{number}"
    assert "not for this method" in reasons[1]
    assert reasons[2] == "the body is not JSON"
    assert "per_page" in reasons[3]


def test_valid_requests_are_not_recorded_as_invalid(sim: SimulatorAdmin, api: httpx.Client) -> None:
    number, head = _open_pr(sim)
    assert api.get(f"/repos/{REPO}/pulls/{number}").status_code == 200
    assert api.get(f"/repos/{REPO}/contents/README.md", params={"ref": head}).status_code == 200
    assert api.get(f"/repos/{REPO}/git/trees/{head}", params={"recursive": "1"}).status_code == 200
    assert (
        api.post(f"/repos/{REPO}/issues/{number}/comments", json={"body": "hello"}).status_code
        == 201
    )
    records = sim.requests()
    assert len(records) == 4
    assert all(r["invalid"] is None and r["response_problem"] is None for r in records)


def test_the_sim_fixture_fails_a_test_that_sent_an_invalid_request(tmp_path: Path) -> None:
    test_file = tmp_path / "test_probe.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import httpx

            def test_sends_nonsense(sim):
                httpx.get(sim.api_url + "/no/such/endpoint", headers={"Authorization": "token x"})
            """
        )
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.fixtures.simulator",
            "-c",
            os.devnull,
            str(test_file),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout
    assert "GitHub's REST API has no GET /no/such/endpoint" in result.stdout
    assert "1 passed, 1 error" in result.stdout
