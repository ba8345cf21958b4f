"""deploy/grafana/broker-dashboard.json draws only what the broker exports: every panel's
expression names metrics that `Metrics.render()` really writes, so a renamed metric breaks
this test instead of an operator's dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from service.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "broker-dashboard.json"
_METRIC = re.compile(r"\bbroker_[a-z0-9_]+\b")
# What the issue asks the dashboard to draw (mints and refusals, calls, reverts, tokens, spend).
REQUIRED = {
    "broker_mints_total",
    "broker_calls_active",
    "broker_calls_total",
    "broker_calls_ended_total",
    "broker_call_reverts_total",
    "broker_usage_tokens_total",
    "broker_spend_usd_total",
}


def _exported() -> set[str]:
    """Every series name the broker can write: each family's name, and a histogram's
    _bucket, _sum and _count."""
    text = Metrics(["tenant-a"]).render().decode()
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    return panels


def test_every_expression_names_only_metrics_the_broker_exports() -> None:
    exported = _exported()
    used: set[str] = set()
    for panel in _panels():
        for target in panel["targets"]:
            names = set(_METRIC.findall(target["expr"]))
            assert names, f"panel {panel['title']!r} draws no broker metric"
            assert names <= exported, f"panel {panel['title']!r}: {names - exported} not exported"
            used |= names
    assert used >= REQUIRED, f"not drawn: {REQUIRED - used}"


def test_panels_are_well_formed_and_use_the_datasource_variable() -> None:
    panels = _panels()
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    assert all(t["datasource"]["uid"] == "${datasource}" for p in panels for t in p["targets"])
    # No panel overlaps another on Grafana's 24-column grid.
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine


def test_the_tenant_filter_reads_a_label_the_broker_writes() -> None:
    metrics = Metrics(["tenant-a"])
    metrics.mint("tenant-a")
    text = metrics.render().decode()
    assert re.search(r'^broker_mints_total\{[^}]*tenant="tenant-a"', text, re.MULTILINE)
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    tenant = next(v for v in variables if v["name"] == "tenant")
    assert tenant["definition"] == "label_values(broker_mints_total, tenant)"
    # Every per-tenant panel filters on it.
    for panel in _panels():
        for target in panel["targets"]:
            if "broker_calls_active" not in target["expr"] and "status_class" not in target["expr"]:
                assert 'tenant=~"$tenant"' in target["expr"], panel["title"]
