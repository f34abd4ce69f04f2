"""Experiment design values: every invalid input names its field; lifecycle rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from decisioning.errors import InvalidInput
from experiments.design import (
    BUCKETS,
    Cell,
    Experiment,
    Holdout,
    Status,
    apply_change,
    validate_experiments,
    validate_layer,
)

CELLS = (Cell("control", 0.5), Cell("treatment", 0.5, policy="linucb"))


def make(**overrides: Any) -> Experiment:
    fields: dict[str, Any] = {
        "experiment_id": "exp-1",
        "name": "LinUCB vs rules",
        "layer": "policy",
        "cells": CELLS,
        "primary_metric": "conversion",
        "planned_units_per_cell": 5_000,
    }
    fields.update(overrides)
    return Experiment(**fields)


def field_of(excinfo: pytest.ExceptionInfo[InvalidInput]) -> str | None:
    return excinfo.value.field


# --- cells ------------------------------------------------------------------------------------


def test_cell_defaults_are_a_plain_control() -> None:
    cell = Cell("control", 1)
    assert cell.weight == 1.0 and isinstance(cell.weight, float)
    assert cell.parameters == frozenset()


def test_cell_parameters_name_what_it_varies() -> None:
    assert Cell("a", 0.5, policy="ts").parameters == {"policy"}
    assert Cell("a", 0.5, epsilon=0.1).parameters == {"arbitration"}
    assert Cell("a", 0.5, exclude_offers=("o1",)).parameters == {"offers"}
    assert Cell("a", 0.5, no_offer=True).parameters == {"offers"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"weight": 0.0}, "weight"),
        ({"weight": -0.1}, "weight"),
        ({"weight": 1.5}, "weight"),
        ({"weight": float("nan")}, "weight"),
        ({"weight": True}, "weight"),
        ({"policy": ""}, "policy"),
        ({"epsilon": 1.2}, "epsilon"),
        ({"epsilon": -0.01}, "epsilon"),
        ({"force_offers": ("o1", "o1")}, "force_offers[1]"),
        ({"force_offers": ["o1"]}, "force_offers"),
        ({"exclude_offers": ("ok", "bad id")}, "exclude_offers[1]"),
        ({"force_offers": ("o1",), "exclude_offers": ("o1",)}, "force_offers[0]"),
        ({"no_offer": True, "policy": "linucb"}, "no_offer"),
        ({"no_offer": True, "exclude_offers": ("o1",)}, "no_offer"),
        ({"no_offer": 1}, "no_offer"),
    ],
)
def test_cell_rejects_bad_input_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"name": "c", "weight": 0.5} | kwargs
    with pytest.raises(InvalidInput) as excinfo:
        Cell(**args)
    assert field_of(excinfo) == field


# --- experiments ------------------------------------------------------------------------------


def test_a_valid_experiment_derives_salt_and_rule() -> None:
    e = make(targeting={"attr": "tier", "op": "==", "value": "mass"})
    assert e.salt == "exp-1"
    assert e.rule is not None and e.rule.evaluate({"tier": "mass"})
    assert not e.rule.evaluate({"tier": "private"})
    assert make(salt="s-2").salt == "s-2"
    assert e.parameters == {"policy"}
    assert make(traffic=0.5, layer_range=(0, 2_000)).share_of_layer == pytest.approx(0.1)


def test_weights_summing_to_one_within_rounding_pass() -> None:
    thirds = tuple(Cell(f"c{i}", 1 / 3) for i in range(3))
    assert len(make(cells=thirds).cells) == 3


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"experiment_id": ""}, "experiment_id"),
        ({"experiment_id": "a b"}, "experiment_id"),
        ({"name": "  "}, "name"),
        ({"layer": "x" * 65}, "layer"),
        ({"placement": ""}, "placement"),
        ({"cells": (Cell("only", 1.0),)}, "cells"),
        ({"cells": [Cell("a", 0.5), Cell("b", 0.5)]}, "cells"),
        ({"cells": (Cell("a", 0.5), Cell("a", 0.5))}, "cells[1].name"),
        ({"cells": (Cell("a", 0.5), "b")}, "cells[1]"),
        ({"cells": (Cell("a", 0.5), Cell("b", 0.4))}, "cells"),
        ({"cells": (Cell("a", 0.6), Cell("b", 0.6))}, "cells"),
        ({"traffic": 1.01}, "traffic"),
        ({"traffic": -0.5}, "traffic"),
        ({"traffic": float("inf")}, "traffic"),
        ({"layer_range": (5_000, 5_000)}, "layer_range"),
        ({"layer_range": (-1, 10)}, "layer_range"),
        ({"layer_range": (0, BUCKETS + 1)}, "layer_range"),
        ({"layer_range": (0.0, 10.0)}, "layer_range"),
        ({"layer_range": (0, 10, 20)}, "layer_range"),
        ({"targeting": {"attr": "tier", "op": "~", "value": 1}}, "targeting.op"),
        ({"targeting": {"all": [{"attr": "a", "op": "=="}]}}, "targeting.all[0].value"),
        ({"primary_metric": "revenue"}, "primary_metric"),
        ({"guardrail_metrics": ("clicks", "ctr")}, "guardrail_metrics[1]"),
        ({"guardrail_metrics": ("conversion",)}, "guardrail_metrics[0]"),
        ({"guardrail_metrics": ("clicks", "clicks")}, "guardrail_metrics[1]"),
        ({"guardrail_metrics": ["clicks"]}, "guardrail_metrics"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 0.5}, "alpha"),
        ({"alpha": -0.05}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": "0.05"}, "alpha"),
        ({"analysis": "bayesian"}, "analysis"),
        ({"planned_units_per_cell": 0}, "planned_units_per_cell"),
        ({"planned_units_per_cell": 10.5}, "planned_units_per_cell"),
        ({"planned_units_per_cell": None}, "planned_units_per_cell"),
        (
            {
                "analysis": "group_sequential",
                "planned_units_per_cell": None,
                "end_date": datetime(2027, 1, 1, tzinfo=UTC),
            },
            "planned_units_per_cell",  # a fixed-horizon test needs its planned size
        ),
        ({"end_date": datetime(2027, 1, 1)}, "end_date"),
        ({"status": "paused"}, "status"),
        ({"salt": "with space"}, "salt"),
    ],
)
def test_experiment_rejects_bad_input_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        make(**overrides)
    assert field_of(excinfo) == field


def test_sequential_analysis_may_run_to_an_end_date_alone() -> None:
    end = datetime(2027, 1, 1, tzinfo=UTC)
    e = make(analysis="sequential", planned_units_per_cell=None, end_date=end)
    assert e.end_date == end and e.planned_units_per_cell is None


# --- holdout ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"share": 0.6}, "share"),
        ({"share": -0.01}, "share"),
        ({"share": float("nan")}, "share"),
        ({"share": 0.02, "placement": "a b"}, "placement"),
        ({"share": 0.02, "salt": ""}, "salt"),
    ],
)
def test_holdout_rejects_bad_input_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        Holdout(**kwargs)
    assert field_of(excinfo) == field


# --- layers -----------------------------------------------------------------------------------


def test_adjacent_ranges_fill_a_layer() -> None:
    validate_layer(
        [
            make(experiment_id="a", layer_range=(0, 3_000)),
            make(experiment_id="b", layer_range=(3_000, 7_000)),
            make(experiment_id="c", layer_range=(7_000, BUCKETS)),
        ]
    )
    validate_layer([])


def test_overlapping_ranges_beyond_the_layer_are_rejected() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        validate_layer(
            [
                make(experiment_id="a", layer_range=(0, 6_000), traffic=0.1),
                make(experiment_id="b", layer_range=(5_999, BUCKETS), traffic=0.1),
            ]
        )
    assert field_of(excinfo) == "layer_range"
    assert "'a'" in excinfo.value.message and "'b'" in excinfo.value.message


def test_stopped_and_concluded_experiments_release_their_range() -> None:
    validate_layer(
        [
            make(experiment_id="old", status="stopped"),
            make(experiment_id="older", status="concluded"),
            make(experiment_id="new", status="running"),
        ]
    )
    with pytest.raises(InvalidInput) as excinfo:  # a draft holds its range
        validate_layer([make(experiment_id="d", status="draft"), make(experiment_id="r")])
    assert field_of(excinfo) == "layer_range"


def test_validate_layer_rejects_a_mix_of_layers() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        validate_layer([make(experiment_id="a"), make(experiment_id="b", layer="other")])
    assert field_of(excinfo) == "layer"


def test_validate_experiments_rejects_duplicate_ids_and_salts() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        validate_experiments(
            [make(layer="l1"), make(layer="l2", cells=(Cell("a", 0.5), Cell("b", 0.5)))]
        )
    assert field_of(excinfo) == "experiment_id"
    with pytest.raises(InvalidInput) as excinfo:
        validate_experiments(
            [
                make(experiment_id="a", layer="l1", salt="s"),
                make(
                    experiment_id="b", layer="l2", salt="s", cells=(Cell("a", 0.5), Cell("b", 0.5))
                ),
            ]
        )
    assert field_of(excinfo) == "salt"


def test_a_parameter_belongs_to_one_layer() -> None:
    policy_a = make(experiment_id="a", layer="l1")
    policy_b = make(experiment_id="b", layer="l2")
    with pytest.raises(InvalidInput) as excinfo:
        validate_experiments([policy_a, policy_b])
    assert field_of(excinfo) == "layer"
    # different parameters, or placements that never meet, or a finished test: fine
    offers = make(
        experiment_id="c", layer="l2", cells=(Cell("a", 0.5), Cell("b", 0.5, no_offer=True))
    )
    validate_experiments([policy_a, offers])
    validate_experiments(
        [replace(policy_a, placement="home"), replace(policy_b, placement="checkout")]
    )
    validate_experiments([policy_a, replace(policy_b, status="concluded")])
    with pytest.raises(InvalidInput):
        validate_experiments([replace(policy_a, placement="home"), policy_b])


# --- lifecycle --------------------------------------------------------------------------------


def test_a_draft_may_change_anything_but_its_id() -> None:
    draft = make()
    edited = make(name="renamed", traffic=0.1, alpha=0.01, salt="new-salt", layer_range=(0, 10))
    assert apply_change(draft, edited) is edited
    assert apply_change(draft, replace(draft, status="running")).status == "running"
    with pytest.raises(InvalidInput) as excinfo:
        apply_change(draft, make(experiment_id="exp-2"))
    assert field_of(excinfo) == "experiment_id"


@pytest.mark.parametrize(
    ("before", "after", "allowed"),
    [
        ("draft", "stopped", False),
        ("draft", "concluded", False),
        ("running", "draft", False),
        ("running", "stopped", True),
        ("running", "concluded", True),
        ("stopped", "running", False),
        ("stopped", "concluded", True),
        ("concluded", "running", False),
        ("concluded", "stopped", False),
    ],
)
def test_status_transitions(before: Status, after: Status, allowed: bool) -> None:
    current = make(status=before)
    proposed = replace(current, status=after)
    if allowed:
        assert apply_change(current, proposed).status == after
    else:
        with pytest.raises(InvalidInput) as excinfo:
            apply_change(current, proposed)
        assert field_of(excinfo) == "status"


def test_running_experiment_ramps_up_and_stops() -> None:
    running = make(status="running", traffic=0.1)
    ramped = apply_change(running, replace(running, traffic=0.5))
    assert ramped.traffic == 0.5
    assert apply_change(ramped, replace(ramped, traffic=0.8, status="stopped")).status == "stopped"


def test_running_traffic_never_goes_down() -> None:
    running = make(status="running", traffic=0.5)
    with pytest.raises(InvalidInput) as excinfo:
        apply_change(running, replace(running, traffic=0.4))
    assert field_of(excinfo) == "traffic"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "new name"}, "name"),
        ({"layer": "other"}, "layer"),
        ({"cells": (Cell("control", 0.4), Cell("treatment", 0.6, policy="linucb"))}, "cells"),
        ({"primary_metric": "value"}, "primary_metric"),
        ({"placement": "home"}, "placement"),
        ({"layer_range": (0, 5_000)}, "layer_range"),
        ({"targeting": {"attr": "tier", "op": "exists"}}, "targeting"),
        ({"guardrail_metrics": ("clicks",)}, "guardrail_metrics"),
        ({"alpha": 0.1}, "alpha"),
        ({"analysis": "sequential"}, "analysis"),
        ({"planned_units_per_cell": 6_000}, "planned_units_per_cell"),
        ({"end_date": datetime(2027, 1, 1, tzinfo=UTC)}, "end_date"),
        ({"salt": "reshuffle"}, "salt"),
    ],
)
def test_a_running_design_is_frozen(overrides: dict[str, Any], field: str) -> None:
    running = make(status="running", analysis="fixed", traffic=0.2)
    with pytest.raises(InvalidInput) as excinfo:
        proposed = {"status": "running", "analysis": "fixed", "traffic": 0.3} | overrides
        apply_change(running, make(**proposed))
    assert field_of(excinfo) == field


def test_a_stopped_experiment_takes_no_traffic_change() -> None:
    stopped = make(status="stopped", traffic=0.2)
    with pytest.raises(InvalidInput) as excinfo:
        apply_change(stopped, replace(stopped, traffic=0.3))
    assert field_of(excinfo) == "traffic"
    with pytest.raises(InvalidInput) as excinfo:
        apply_change(stopped, replace(stopped, name="x", status="concluded"))
    assert field_of(excinfo) == "name"
