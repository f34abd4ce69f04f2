"""Several processes decide and send outcomes for the same customers of a running experiment:
afterwards every cell's sufficient statistics equal the sums over its units exactly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from decisioning.catalog import put_experiment
from decisioning.domain import DecisionRequest, Event
from decisioning.events import record_events
from decisioning.sql.session import unit_of_work
from decisioning.sql.tables import cell_stats, exposures
from experiments.design import Cell, Experiment
from tests.conftest import open_engine
from tests.support import NOW, configure, offer, run_in_processes

PROCESSES = 4
DECISIONS = 150
CUSTOMERS = 40
METRICS = ("conversion", "value", "accepts", "clicks", "contacts")


def _worker(url: str, seed: int, start: Any, results: Any) -> None:
    engine = open_engine(url)
    start.wait()
    for i in range(DECISIONS):
        at = NOW + timedelta(minutes=i)
        customer = f"c-{(i * 7 + seed) % CUSTOMERS}"
        decision = engine.decide(
            DecisionRequest(customer, "app_banner", context={"risk_tolerance": "C2"}), now=at
        )
        if decision.offers and i % 3 != 0:
            kind = ("click", "accept", "convert")[i % 3]
            policy = engine.catalog.current().contact_policy
            with unit_of_work(engine.db, durable=True) as connection:
                record_events(
                    connection,
                    [
                        Event(
                            f"e-{seed}-{i}",
                            decision.decision_id,
                            decision.offers[0].offer_id,
                            kind,
                            at,
                            value=float(i % 11),
                        )
                    ],
                    policy,
                    at,
                )
    engine.db.dispose()
    results.put(seed)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_cell_statistics_are_exact_under_concurrency(
    database: str, request: pytest.FixtureRequest
) -> None:
    url = str(request.getfixturevalue(f"{database}_url"))
    setup = open_engine(url)
    configure(setup, [offer("loan"), offer("card", value=50.0)])
    with unit_of_work(setup.db) as connection:
        put_experiment(
            connection,
            Experiment(
                "e1",
                "banner",
                "banner",
                (Cell("a", 0.5), Cell("b", 0.5, exclude_offers=("loan",))),
                "conversion",
                planned_units_per_cell=100,
                status="running",
            ),
            NOW,
        )
    assert sorted(run_in_processes(_worker, url, PROCESSES)) == list(range(PROCESSES))

    with setup.db.connect() as connection:
        units = list(connection.execute(select(exposures).where(exposures.c.experiment_id == "e1")))
        stats = {(r.cell, r.metric): r for r in connection.execute(select(cell_stats))}
    assert len(units) == CUSTOMERS
    assert sum(u.clicks + u.accepts for u in units) > 0 and sum(u.conversion for u in units) > 0
    for (cell, metric), row in stats.items():
        values = [getattr(u, metric) for u in units if u.cell == cell]
        covariates = [u.covariate for u in units if u.cell == cell]
        assert row.n == len(values)
        assert row.sum == pytest.approx(sum(values))
        assert row.sum_squares == pytest.approx(sum(v * v for v in values))
        assert row.sum_xy == pytest.approx(
            sum(v * x for v, x in zip(values, covariates, strict=True))
        )
    assert {m for _, m in stats} == set(METRICS)
    setup.db.dispose()
