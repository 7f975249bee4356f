"""The Grafana dashboard (deploy/grafana/labbot.json): valid JSON, every query valid PromQL,
and every metric a query reads one that labbot's /metrics exports."""

from __future__ import annotations

import copy
import json
from typing import Any

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import GRAFANA_DASHBOARD

SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum"),
}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GRAFANA_DASHBOARD.read_text())
    return data


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, from its syntax tree (raises ValueError when
    it is not valid PromQL)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def exported(metrics_text: str) -> set[str]:
    """Series names /metrics exports, including those of families with no sample yet."""
    names = set()
    for family in text_string_to_metric_families(metrics_text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def unknown_metrics(board: dict[str, Any], known: set[str]) -> dict[str, set[str]]:
    found = {}
    for title, expr in queries(board):
        missing = metric_names(expr) - known
        if missing:
            found[title] = missing
    return found


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    datasource = {v["name"] for v in board["templating"]["list"] if v["type"] == "datasource"}
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"].removeprefix("${").removesuffix("}") in datasource
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_query_reads_metrics_labbot_exports(client: Any) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    known = exported(response.text)
    assert unknown_metrics(dashboard(), known) == {}
    used = set().union(*(metric_names(expr) for _, expr in queries(dashboard())))
    # What the issue asks the dashboard to show: queue depth, job durations, webhook latency.
    assert {
        "labbot_queue_depth",
        "labbot_job_seconds_bucket",
        "labbot_webhook_ack_seconds_bucket",
    } <= used


def test_a_query_of_a_metric_labbot_lacks_is_caught(client: Any) -> None:
    known = exported(client.get("/metrics").text)
    board = copy.deepcopy(dashboard())
    board["panels"][0]["targets"][0]["expr"] = "max by (queue) (labbot_queue_length)"
    assert unknown_metrics(board, known) == {board["panels"][0]["title"]: {"labbot_queue_length"}}


def test_invalid_promql_is_caught() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        metric_names("sum(rate(labbot_webhook_ack_seconds_bucket[5m])")
