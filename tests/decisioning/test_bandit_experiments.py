"""Bandit experiments end to end: weights follow the evidence, units keep their cell, and the
report compares cells within allocation periods."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from decisioning.catalog import experiment_from_document, put_experiment
from decisioning.domain import DecisionRequest
from decisioning.engine import DecisionEngine
from decisioning.errors import InvalidInput
from decisioning.feedback import review
from decisioning.reports import experiment_report
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import exposures
from tests.conftest import open_engine
from tests.support import NOW, configure, offer, send_outcome

DESIGN = {
    "experiment_id": "banner-bandit",
    "name": "Which banner copy",
    "layer": "copy",
    "cells": [
        {"name": "a", "weight": 0.5, "exclude_offers": ["loan"]},
        {"name": "b", "weight": 0.5, "exclude_offers": ["card"]},
    ],
    "primary_metric": "conversion",
    "planned_units_per_cell": 1000,
    "status": "running",
    "allocation": "bandit",
    "bandit_min_units": 50,
    "bandit_period_hours": 1.0,
}
RATES = {"a": 0.1, "b": 0.5}


def _decide(
    engine: DecisionEngine, customers: range, hours: float, rng: np.random.Generator
) -> dict[str, str]:
    """Each customer decides once at ``NOW + hours`` and converts at its cell's rate."""
    at = NOW + timedelta(hours=hours)
    cells = {}
    for i in customers:
        decision = engine.decide(DecisionRequest(f"c-{i}", "app_banner", context={}), now=at)
        assert decision.cell is not None
        cells[f"c-{i}"] = decision.cell
        if decision.offers and rng.random() < RATES[decision.cell]:
            offer_id = decision.offers[0].offer_id
            send_outcome(engine, f"e-{i}-{hours}", decision.decision_id, offer_id, "convert", at)
    return cells


def test_weights_follow_the_evidence_and_units_keep_their_cell(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    configure(engine, [offer("card"), offer("loan")])
    with unit_of_work(engine.db) as connection:
        put_experiment(connection, experiment_from_document(DESIGN), NOW)
        assert review(connection, NOW, "beta-bernoulli") == []  # period 0: the design's weights
    engine.catalog.invalidate()
    rng = np.random.default_rng(4)
    first = _decide(engine, range(400), 0.1, rng)
    assert abs(Counter(first.values())["b"] - 200) < 4 * 10

    with unit_of_work(engine.db) as connection:
        assert review(connection, NOW + timedelta(minutes=30), "b-b") == []  # period not over
        [action] = review(connection, NOW + timedelta(hours=1), "beta-bernoulli")
    assert action["kind"] == "reallocate" and action["status"] == "applied"
    details = action["details"]
    assert details["period"] == 1 and details["to_weights"]["b"] > 0.95
    assert details["units"] == dict(Counter(first.values()))

    engine.catalog.invalidate()
    second = _decide(engine, range(400, 600), 1.5, rng)
    assert Counter(second.values())["b"] > 180  # new units follow the new weights
    again = _decide(engine, range(0, 100), 1.6, rng)
    assert again == {c: first[c] for c in again}  # earlier units keep their cell
    with engine.db.connect() as connection:
        periods = Counter(
            row.experiment_id
            for row in connection.execute(
                select(exposures.c.experiment_id).where(
                    exposures.c.experiment_id.like("banner-bandit#%")
                )
            )
        )
        report = experiment_report(connection, "banner-bandit")
    assert periods == {"banner-bandit#0": 400, "banner-bandit#1": 200}
    assert [a["kind"] for a in report["actions"]] == ["reallocate"]  # the audit trail, reported
    assert report["sample_ratio"]["error"] == "BANDIT_ALLOCATION"
    [comparison] = report["metrics"]["conversion"]["comparisons"]
    assert comparison["cell"] == "b" and comparison["lift"] == pytest.approx(0.4, abs=0.1)
    assert comparison["sequential_ci"][0] > 0 and comparison["adjusted_p_value"] < 0.05


def test_bad_bandit_settings_name_the_field() -> None:
    for changes, field in (
        ({"allocation": "greedy"}, "allocation"),
        ({"bandit_min_units": 1}, "bandit_min_units"),
        ({"bandit_period_hours": 0}, "bandit_period_hours"),
        ({"experiment_id": "a#1"}, "experiment_id"),
        ({"experiment_id": "holdout:bank"}, "experiment_id"),
    ):
        with pytest.raises(InvalidInput) as error:
            experiment_from_document({**DESIGN, **changes})
        assert error.value.field == field
