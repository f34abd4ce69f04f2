"""Feedback actions through the API: a decisive policy experiment promotes its winner as the
placement's default, at once or after a marketer's approval, and leaves an audit trail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from decisioning.learning import run_periodic_jobs
from tests.api.conftest import Api

PLACEMENT = "sms-weekly"


def design(promote: str) -> dict[str, Any]:
    return {
        "name": "Challenger policy",
        "layer": "policy",
        "placement": PLACEMENT,
        "cells": [
            {"name": "incumbent", "weight": 0.5, "policy": "beta-bernoulli"},
            {"name": "challenger", "weight": 0.5, "policy": "uniform"},
        ],
        "primary_metric": "conversion",
        "planned_units_per_cell": 200,
        "status": "running",
        "promote": promote,
    }


def run_experiment(api: Api, rates: dict[str, float], customers: int = 400) -> None:
    """Decide for ``customers`` customers; each converts at its cell's rate."""
    rng = np.random.default_rng(3)
    events = []
    for i in range(customers):
        answer = api.decide(customer_id=f"c-{i}", placement=PLACEMENT).json()
        if answer["offers"] and rng.random() < rates[answer["cell"]]:
            events.append(
                {
                    "event_id": f"conv-{i}",
                    "decision_id": answer["decision_id"],
                    "offer_id": answer["offers"][0]["offer_id"],
                    "type": "convert",
                    "value": 100.0,
                }
            )
    assert api.call("POST", "/v1/events", json={"events": events}).status_code == 200


def actions(api: Api, experiment_id: str) -> list[dict[str, Any]]:
    response = api.call("GET", f"/v1/experiments/{experiment_id}/actions", role="analyst")
    assert response.status_code == 200, response.text
    return list(response.json())


def placement_policy(api: Api) -> str:
    return str(api.call("GET", f"/v1/placements/{PLACEMENT}", role="analyst").json()["policy"])


def test_approval_changes_nothing_until_a_marketer_approves(api: Api) -> None:
    put = api.call("PUT", "/v1/experiments/pol-1", role="marketer", json=design("approval"))
    assert put.status_code == 201, put.text
    run_experiment(api, {"incumbent": 0.1, "challenger": 0.6})
    default = api.engine.settings.default_policy
    assert placement_policy(api) == default

    run_periodic_jobs(api.engine)
    run_periodic_jobs(api.engine)  # a second review proposes nothing new while one is pending
    [pending] = actions(api, "pol-1")
    assert pending["kind"] == "promote" and pending["status"] == "pending"
    details = pending["details"]
    assert (details["from_policy"], details["to_policy"]) == (default, "uniform")
    assert details["winning_cell"] == "challenger" and details["metric"] == "conversion"
    [comparison] = details["comparisons"]
    assert comparison["cell"] == "challenger" and comparison["adjusted_p_value"] < 0.05
    assert sum(details["units"].values()) == 400
    # Pending: the placement and the experiment are as they were.
    assert placement_policy(api) == default
    experiment = api.call("GET", "/v1/experiments/pol-1", role="analyst").json()
    assert experiment["status"] == "running"

    path = f"/v1/experiments/pol-1/actions/{pending['action_id']}"
    assert api.call("POST", f"{path}/approve", role="analyst").status_code == 403
    approved = api.call("POST", f"{path}/approve", role="marketer")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "applied"
    assert approved.json()["decided_by"].startswith("key:")
    assert placement_policy(api) == "uniform"
    experiment = api.call("GET", "/v1/experiments/pol-1", role="analyst").json()
    assert experiment["status"] == "concluded"
    # Traffic moved: the next customer decides with the winner, outside the experiment.
    answer = api.decide(customer_id="c-new", placement=PLACEMENT).json()
    assert (answer["policy"], answer["experiment_id"]) == ("uniform", None)

    again = api.call("POST", f"{path}/approve", role="marketer")
    assert again.status_code == 409 and again.json()["error"]["field"] == "action_id"
    missing = api.call("POST", "/v1/experiments/pol-1/actions/nope/reject", role="marketer")
    assert missing.status_code == 404
    bad_verdict = api.call("POST", f"{path}/maybe", role="marketer")
    assert bad_verdict.status_code == 422


def test_auto_promotes_at_once_and_a_rejection_changes_nothing(api: Api) -> None:
    api.call("PUT", "/v1/experiments/pol-auto", role="marketer", json=design("auto"))
    run_experiment(api, {"incumbent": 0.6, "challenger": 0.1})
    run_periodic_jobs(api.engine)
    [applied] = actions(api, "pol-auto")
    # The control cell won: its policy becomes the placement's default.
    assert applied["status"] == "applied" and applied["decided_by"] == "automatic"
    assert applied["details"]["winning_cell"] == "incumbent"
    assert placement_policy(api) == "beta-bernoulli"
    assert api.call("GET", "/v1/experiments/pol-auto", role="analyst").json()["status"] == (
        "concluded"
    )


def test_rejected_proposals_leave_the_configuration_alone(api: Api) -> None:
    api.call("PUT", "/v1/experiments/pol-2", role="marketer", json=design("approval"))
    run_experiment(api, {"incumbent": 0.1, "challenger": 0.6})
    run_periodic_jobs(api.engine)
    [pending] = actions(api, "pol-2")
    path = f"/v1/experiments/pol-2/actions/{pending['action_id']}/reject"
    assert api.call("POST", path, role="marketer").json()["status"] == "rejected"
    assert placement_policy(api) == api.engine.settings.default_policy
    assert api.call("GET", "/v1/experiments/pol-2", role="analyst").json()["status"] == "running"


def test_no_action_while_the_evidence_is_not_decisive(api: Api) -> None:
    api.call("PUT", "/v1/experiments/pol-3", role="marketer", json=design("auto"))
    run_experiment(api, {"incumbent": 0.3, "challenger": 0.3}, customers=100)
    run_periodic_jobs(api.engine)
    assert actions(api, "pol-3") == []
    assert placement_policy(api) == api.engine.settings.default_policy


def test_bad_feedback_settings_name_the_field(api: Api) -> None:
    no_placement = {**design("auto"), "placement": None}
    response = api.call("PUT", "/v1/experiments/x", role="marketer", json=no_placement)
    assert response.status_code == 422 and response.json()["error"]["field"] == "promote"
    no_policy = {
        **design("auto"),
        "cells": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}],
    }
    response = api.call("PUT", "/v1/experiments/x", role="marketer", json=no_policy)
    assert response.status_code == 422 and response.json()["error"]["field"] == "promote"
    response = api.call("PUT", "/v1/experiments/x", role="marketer", json=design("sometimes"))
    assert response.status_code == 422
    response = api.call(
        "PUT", f"/v1/placements/{PLACEMENT}", role="marketer", json={"policy": "no-such"}
    )
    assert response.status_code == 422 and response.json()["error"]["field"] == "policy"
    assert api.call("GET", "/v1/experiments/none/actions", role="analyst").status_code == 404
    response = api.call(
        "PUT", f"/v1/placements/{PLACEMENT}", role="marketer", json={"policy": "uniform"}
    )
    assert response.status_code == 200 and placement_policy(api) == "uniform"


def test_policy_cells_are_measured_against_the_universal_holdout(api: Api) -> None:
    """Pega's Impact Analyzer view: each policy's incremental value over the holdout."""
    api.call("PUT", "/v1/holdouts/bank", role="marketer", json={"share": 0.3})
    api.call("PUT", "/v1/experiments/pol-h", role="marketer", json=design("off"))
    rng = np.random.default_rng(8)
    rates = {"holdout": 0.1, "incumbent": 0.2, "challenger": 0.4}
    events, converted = [], {cell: 0 for cell in rates}
    for i in range(600):
        answer = api.decide(customer_id=f"c-{i}", placement=PLACEMENT).json()
        cell = answer["cell"] if answer["experiment_id"] == "pol-h" else "holdout"
        if rng.random() < rates[cell]:
            converted[cell] += 1
            events.append({"event_id": f"o-{i}", "customer_id": f"c-{i}", "type": "convert"})
    assert api.call("POST", "/v1/events", json={"events": events}).status_code == 200
    report = api.call("GET", "/v1/experiments/pol-h/report", role="analyst").json()
    held = api.call("GET", "/v1/experiments/holdout:bank/report", role="analyst").json()
    holdout_units = next(c["units"] for c in held["cells"] if c["name"] == "holdout")
    versus = {c["cell"]: c for c in report["metrics"]["conversion"]["vs_holdout"]}
    assert set(versus) == {"incumbent", "challenger"}
    for cell in versus:
        units = next(c["units"] for c in report["cells"] if c["name"] == cell)
        expected = converted[cell] / units - converted["holdout"] / holdout_units
        assert versus[cell]["control"] == "universal holdout"
        assert versus[cell]["lift"] == pytest.approx(expected, abs=0.02)  # CUPED moves it a hair
    assert versus["challenger"]["sequential_ci"][0] > 0
