"""Experiments and holdouts through the API: cells change what customers get, exposures and
outcomes become per-cell sufficient statistics, and a running design stays frozen."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from decisioning.sql.tables import decisions, exposures
from experiments import SampleStats, SequentialLift
from tests.api.conftest import Api

EXPERIMENT = {
    "name": "Does the banner sell?",
    "layer": "banner",
    "cells": [
        {"name": "control", "weight": 0.5, "no_offer": True},
        {"name": "show", "weight": 0.5},
    ],
    "primary_metric": "conversion",
    "guardrail_metrics": ["contacts"],
    "planned_units_per_cell": 1000,
    "status": "running",
}


def run(api: Api, customers: int) -> list[dict[str, Any]]:
    return [api.decide(customer_id=f"c-{i}").json() for i in range(customers)]


def statistics(api: Api, experiment_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = api.call("GET", f"/v1/experiments/{experiment_id}/statistics", role="analyst").json()
    return {(r["cell"], r["metric"]): r for r in rows}


def test_cells_decide_and_outcomes_become_statistics(api: Api) -> None:
    assert (
        api.call("PUT", "/v1/experiments/banner-1", role="marketer", json=EXPERIMENT).status_code
        == 201
    )
    answers = run(api, 300)
    cells = Counter(a["cell"] for a in answers)
    assert set(cells) == {"control", "show"} and abs(cells["show"] - 150) < 4 * (300 * 0.25) ** 0.5
    for answer in answers:
        assert answer["experiment_id"] == "banner-1"
        assert bool(answer["offers"]) == (answer["cell"] == "show")
    control = next(a for a in answers if a["cell"] == "control")
    logged = api.call("GET", f"/v1/decisions/{control['decision_id']}", role="analyst").json()
    assert set(logged["candidates"].values()) == {"CONTROL_NO_OFFER"}

    shown = [a for a in answers if a["offers"]]
    converted = shown[:40]
    events = [
        {
            "event_id": f"conv-{a['decision_id']}",
            "decision_id": a["decision_id"],
            "offer_id": a["offers"][0]["offer_id"],
            "type": "convert",
            "value": 50.0 + i,
        }
        for i, a in enumerate(converted)
    ]
    assert api.call("POST", "/v1/events", json={"events": events}).json()["stored"] == 40
    # A second conversion of the same customer adds value but not another conversion.
    again = {**events[0], "event_id": "conv-again", "value": 10.0}
    api.call("POST", "/v1/events", json=again)

    stats = statistics(api, "banner-1")
    assert stats[("show", "conversion")]["n"] == cells["show"]
    assert stats[("control", "conversion")]["n"] == cells["control"]
    assert (
        stats[("show", "conversion")]["sum"] == 40
        and stats[("show", "conversion")]["sum_squares"] == 40
    )
    values = [50.0 + i for i in range(40)]
    values[0] += 10.0
    assert stats[("show", "value")]["sum"] == pytest.approx(sum(values))
    assert stats[("show", "value")]["sum_squares"] == pytest.approx(sum(v * v for v in values))
    assert stats[("control", "value")]["sum"] == 0
    assert stats[("show", "contacts")]["sum"] == sum(len(a["offers"]) for a in shown)

    # The statistics agree with the per-unit rows they summarise.
    with api.engine.db.connect() as connection:
        units = list(
            connection.execute(select(exposures).where(exposures.c.experiment_id == "banner-1"))
        )
    assert len(units) == 300
    assert sum(u.value for u in units if u.cell == "show") == pytest.approx(sum(values))


def test_the_universal_holdout_gets_no_campaign_offers(api: Api) -> None:
    assert (
        api.call("PUT", "/v1/holdouts/bank", role="marketer", json={"share": 0.1}).status_code
        == 200
    )
    answers = run(api, 400)
    held = [a for a in answers if not a["offers"]]
    assert abs(len(held) - 40) < 4 * (400 * 0.09) ** 0.5
    with api.engine.db.connect() as connection:
        memberships = {r.decision_id: r.memberships for r in connection.execute(select(decisions))}
    for answer in answers:
        cell = "holdout" if not answer["offers"] else "campaign"
        assert ["holdout:bank", cell] in memberships[answer["decision_id"]]
    stats = statistics(api, "holdout:bank")
    assert stats[("holdout", "conversion")]["n"] == len(held)


def test_customer_outcomes_reach_the_holdout_and_the_campaign(api: Api) -> None:
    """Holdout customers get no offer to respond to: their conversions arrive as customer
    outcomes (no decision) and count in every experiment the customer was exposed in."""
    api.call("PUT", "/v1/holdouts/bank", role="marketer", json={"share": 0.3})
    answers = run(api, 200)
    converted = {a["customer_id"]: float(i) for i, a in enumerate(answers) if i % 3 == 0}
    events = [
        {"event_id": f"org-{c}", "customer_id": c, "type": "convert", "value": v}
        for c, v in converted.items()
    ]
    events.append({"event_id": "never-seen", "customer_id": "c-none", "type": "convert"})
    receipt = api.call("POST", "/v1/events", json={"events": events}).json()
    assert receipt == {"stored": len(events), "duplicates": 0}
    stats = statistics(api, "holdout:bank")
    for cell, has_offers in (("holdout", False), ("campaign", True)):
        members = [a["customer_id"] for a in answers if bool(a["offers"]) == has_offers]
        assert stats[(cell, "conversion")]["n"] == len(members)
        assert stats[(cell, "conversion")]["sum"] == sum(c in converted for c in members)
        assert stats[(cell, "value")]["sum"] == pytest.approx(
            sum(converted.get(c, 0.0) for c in members)
        )
    replay = api.call("POST", "/v1/events", json={"events": events[:2]}).json()
    assert replay == {"stored": 0, "duplicates": 2}
    assert statistics(api, "holdout:bank") == stats


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"customer_id": "c-1", "type": "accept"}, "events[0].type"),
        ({"type": "convert"}, "events[0].customer_id"),
        ({"offer_id": "loan", "customer_id": "c-1", "type": "convert"}, "events[0].decision_id"),
        ({"decision_of": "c-1", "customer_id": "c-2", "type": "convert"}, "events[0].customer_id"),
    ],
)
def test_bad_customer_outcomes_name_the_field(api: Api, event: dict[str, Any], field: str) -> None:
    answer = api.decide(customer_id="c-1").json()
    before = api.counts()
    body = {"event_id": "e-1", **event}
    if body.pop("decision_of", None):  # c-1's decision, said to be another customer's
        body |= {"decision_id": answer["decision_id"], "offer_id": answer["offers"][0]["offer_id"]}
    response = api.call("POST", "/v1/events", json={"events": [body]})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert api.counts() == before


BAD_CHANGES = [
    (
        {**EXPERIMENT, "cells": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.4}]},
        "cells",
    ),
    ({**EXPERIMENT, "alpha": 0.7}, "alpha"),
    ({**EXPERIMENT, "primary_metric": "happiness"}, "primary_metric"),
    (
        {
            **EXPERIMENT,
            "cells": [
                {"name": "a", "weight": 0.5, "policy": "astrology"},
                {"name": "b", "weight": 0.5},
            ],
        },
        "cells[0].policy",
    ),
    ({**EXPERIMENT, "targeting": {"attr": "age", "op": "~"}}, "targeting.op"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CHANGES)
def test_bad_designs_name_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = api.call("PUT", "/v1/experiments/bad", role="marketer", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
    assert api.call("GET", "/v1/experiments", role="analyst").json() == []


def test_a_running_design_is_frozen_but_ramps_up(api: Api) -> None:
    ramp = {**EXPERIMENT, "traffic": 0.5}
    assert api.call("PUT", "/v1/experiments/e1", role="marketer", json=ramp).status_code == 201
    frozen = api.call("PUT", "/v1/experiments/e1", role="marketer", json={**ramp, "alpha": 0.01})
    assert frozen.status_code == 422 and frozen.json()["error"]["field"] == "alpha"
    down = api.call("PUT", "/v1/experiments/e1", role="marketer", json={**ramp, "traffic": 0.2})
    assert down.status_code == 422 and down.json()["error"]["field"] == "traffic"
    up = api.call("PUT", "/v1/experiments/e1", role="marketer", json={**ramp, "traffic": 0.8})
    assert up.status_code == 200 and up.json()["traffic"] == 0.8
    overlap = api.call(
        "PUT", "/v1/experiments/e2", role="marketer", json={**EXPERIMENT, "name": "other"}
    )
    assert overlap.status_code == 422 and overlap.json()["error"]["field"] == "layer_range"
    stored = api.call("GET", "/v1/experiments/e1", role="analyst").json()
    assert json.dumps(stored["cells"]) == json.dumps(up.json()["cells"])


def test_report_of_an_experiment_and_of_the_holdout(api: Api) -> None:
    api.call("PUT", "/v1/holdouts/bank", role="marketer", json={"share": 0.2})
    assert (
        api.call("PUT", "/v1/experiments/banner-1", role="marketer", json=EXPERIMENT).status_code
        == 201
    )
    answers = run(api, 400)
    for a in answers:
        if a["offers"] and int(a["decision_id"], 16) % 3 == 0:
            api.call(
                "POST",
                "/v1/events",
                json={
                    "event_id": f"c-{a['decision_id']}",
                    "decision_id": a["decision_id"],
                    "offer_id": a["offers"][0]["offer_id"],
                    "type": "convert",
                    "value": 80.0,
                },
            )
    report = api.call("GET", "/v1/experiments/banner-1/report", role="analyst").json()
    stats = statistics(api, "banner-1")
    assert [c["name"] for c in report["cells"]] == ["control", "show"]
    assert [c["units"] for c in report["cells"]] == [
        stats[("control", "conversion")]["n"],
        stats[("show", "conversion")]["n"],
    ]
    [comparison] = report["metrics"]["conversion"]["comparisons"]
    show, control = stats[("show", "conversion")], stats[("control", "conversion")]
    assert comparison["lift"] == pytest.approx(
        show["sum"] / show["n"] - control["sum"] / control["n"]
    )
    assert comparison["sequential_ci"][0] <= comparison["ci"][0]  # anytime-valid is wider
    assert report["recommendation"]["action"] in {"ship", "stop", "keep running"}
    # The design plans 1,000 units per cell: the anytime-valid interval spends on that horizon.
    assert report["anytime_valid"] == {"tuned_for_units_per_cell": 1000, "horizon": True}
    plain = api.call("GET", "/v1/experiments/banner-1/report?cuped=false", role="analyst").json()
    [unadjusted] = plain["metrics"]["conversion"]["comparisons"]
    expected = SequentialLift(0.05, 1000, horizon=True).compute(
        *(SampleStats(s["n"], s["sum"], s["sum_squares"]) for s in (control, show))
    )
    assert unadjusted["sequential_ci"] == pytest.approx([expected.ci_low, expected.ci_high])
    assert unadjusted["sequential_p_value"] == pytest.approx(expected.p_value)
    holdout = api.call("GET", "/v1/experiments/holdout:bank/report", role="analyst").json()
    assert holdout["anytime_valid"]["horizon"] is False  # always on: no plan to spend on
    assert [c["name"] for c in holdout["cells"]] == ["holdout", "campaign"]
    assert sum(c["units"] for c in holdout["cells"]) == 400
    missing = api.call("GET", "/v1/experiments/nope/report", role="analyst")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "experiment_id"


def test_a_group_sequential_design_decides_at_its_looks(api: Api) -> None:
    design = {**EXPERIMENT, "analysis": "group_sequential", "planned_units_per_cell": 100}
    design["looks"] = 2
    assert api.call("PUT", "/v1/experiments/gs", role="marketer", json=design).status_code == 201
    early = run(api, 40)  # fewer than 50 units per cell: no look reached yet
    report = api.call("GET", "/v1/experiments/gs/report", role="analyst").json()
    [result] = report["metrics"]["conversion"]["group_sequential"]
    assert result["error"] == "NO_LOOK_YET" and report["recommendation"]["action"] == (
        "keep running"
    )
    answers = early + [api.decide(customer_id=f"c-{i}").json() for i in range(40, 300)]
    rng = np.random.default_rng(12)
    events = [
        {"event_id": f"g-{a['customer_id']}", "customer_id": a["customer_id"], "type": "convert"}
        for a in answers
        if rng.random() < (0.5 if a["cell"] == "show" else 0.05)
    ]
    api.call("POST", "/v1/events", json={"events": events})
    report = api.call("GET", "/v1/experiments/gs/report", role="analyst").json()
    [result] = report["metrics"]["conversion"]["group_sequential"]
    assert result["look"] == 2 and result["fraction"] == 1.0
    assert result["boundary"] == pytest.approx(1.9686, abs=2e-3)  # OBF-type, 2 looks (rpact)
    assert result["z"] > result["boundary"] and result["reject"]
    assert report["recommendation"]["action"] == "ship"
    assert "group-sequential" in report["recommendation"]["reason"]
    bad = {**design, "looks": 0}
    response = api.call("PUT", "/v1/experiments/gs2", role="marketer", json=bad)
    assert response.status_code == 422
