"""Uplift by segment: per-segment statistics kept as outcomes arrive, Benjamini-Hochberg."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from statsmodels.stats.multitest import multipletests

from decisioning.catalog import put_holdout
from decisioning.domain import DecisionRequest, Event
from decisioning.engine import segment_keys
from decisioning.reports import experiment_report, format_report
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import exposures
from experiments.design import Holdout
from tests.conftest import open_engine
from tests.support import NOW, configure, offer, send_events

SEGMENT_ATTRIBUTES = ("segment", "group", "lifecycle")


def test_segment_keys_keep_short_categorical_labels() -> None:
    context = {
        "segment": "affluent",
        "lifecycle": "new",
        "group": ["a"],  # a list splits nobody
        "aum": 12.5,
        "tier": 3,
        "long": "x" * 65,
    }
    attributes = ("segment", "group", "lifecycle", "aum", "tier", "long", "segment")
    assert segment_keys(context, attributes) == ["segment=affluent", "lifecycle=new", "tier=3"]


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_uplift_by_segment_finds_where_the_campaign_works(database_url: str) -> None:
    """The campaign lifts conversion from 10 % to 60 % for growing customers and does nothing
    for mature ones; the holdout's report finds the first and not the second, and each
    dimension's segments add up to the whole, exactly as the stored units say."""
    engine = open_engine(database_url, epsilon=0.0)
    configure(engine, [offer("card", product="card", value=100.0)])
    with unit_of_work(engine.db) as connection:
        put_holdout(connection, Holdout(share=0.5), NOW)
    engine.catalog.invalidate()
    rng = np.random.default_rng(5)
    events = []
    for i in range(400):
        customer = f"c-{i}"
        lifecycle = "growing" if i % 2 else "mature"
        context = {"lifecycle": lifecycle, "segment": ("mass", "affluent")[i % 3 == 0]}
        answer = engine.decide(DecisionRequest(customer, "app_banner", context=context), now=NOW)
        rate = 0.6 if answer.offers and lifecycle == "growing" else (0.1 if i % 2 else 0.3)
        if rng.random() < rate:
            events.append(Event(f"e-{i}", None, None, "convert", NOW, customer_id=customer))
    send_events(engine, events, NOW + timedelta(hours=1))

    with engine.db.connect() as connection:
        report = experiment_report(connection, "holdout:bank")
        units = list(
            connection.execute(
                select(exposures.c.segments, exposures.c.cell, exposures.c.conversion).where(
                    exposures.c.experiment_id == "holdout:bank"
                )
            )
        )
    rows = report["metrics"]["conversion"]["segments"]
    by_segment = {r["segment"]: r for r in rows}
    assert set(by_segment) == {
        "lifecycle=growing",
        "lifecycle=mature",
        "segment=mass",
        "segment=affluent",
    }
    assert all(r["control"] == "holdout" and r["cell"] == "campaign" for r in rows)
    overall = report["metrics"]["conversion"]["cells"]
    for dimension in ("lifecycle", "segment"):
        for cell in ("holdout", "campaign"):
            parts = [r["units"][cell] for r in rows if r["segment"].startswith(dimension)]
            assert sum(parts) == overall[cell]["n"]
    # Each segment's units and conversions are those of the stored units in it.
    for segment, row in by_segment.items():
        for cell in ("holdout", "campaign"):
            members = [u.conversion for u in units if u.cell == cell and segment in u.segments]
            assert row["units"][cell] == len(members)
    growing = by_segment["lifecycle=growing"]
    assert growing["lift"] == pytest.approx(
        _rate(units, "lifecycle=growing", "campaign") - _rate(units, "lifecycle=growing", "holdout")
    )
    # Benjamini-Hochberg across every segment, on the anytime-valid p-values.
    p = [r["sequential_p_value"] for r in rows]
    expected = multipletests(p, method="fdr_bh")[1]
    assert [r["adjusted_p_value"] for r in rows] == pytest.approx(list(expected))
    assert growing["adjusted_p_value"] < 0.05 and growing["lift"] > 0.3
    assert by_segment["lifecycle=mature"]["adjusted_p_value"] > 0.05
    assert "uplift by segment" in format_report(report)
    assert "lifecycle=growing campaign" in format_report(report)
    engine.db.dispose()


def _rate(units: list[Any], segment: str, cell: str) -> float:
    members = [u.conversion for u in units if u.cell == cell and segment in u.segments]
    return sum(members) / len(members)
