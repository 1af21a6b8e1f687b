"""The example dashboard only charts metrics the library exports."""

from __future__ import annotations

import json
import re

import pytest

from ..helpers import ROOT

prometheus_client = pytest.importorskip("prometheus_client")


def test_every_dashboard_query_names_an_exported_metric():
    from flask_ai_sse.metrics import Metrics

    registry = prometheus_client.CollectorRegistry()
    Metrics.for_registry(registry)
    exported = {
        sample_name
        for family in registry.collect()
        for sample_name in (
            family.name,
            f"{family.name}_total",
            f"{family.name}_bucket",
            f"{family.name}_count",
            f"{family.name}_sum",
        )
    }
    dashboard = json.loads((ROOT / "examples/observability/grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bai_sse_\w+", target["expr"])
    }
    assert len(used) >= 15
    assert used <= exported, used - exported
