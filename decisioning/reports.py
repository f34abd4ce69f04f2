"""Experiment reports: stored per-cell sufficient statistics -> ``experiments.report`` -> JSON.

O(cells x metrics) rows are read, whatever the number of units. Each holdout is reported as the
experiment ``holdout:<bank|placement>`` with the holdout as control, and each offer's own uplift
as ``offer:<offer_id>`` (the bank holdout's ghost draws against the customers shown the offer).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from decisioning.catalog import get_experiment, holdout_from_document
from decisioning.engine import HOLDOUT_PREFIX, OFFER_PREFIX, PERIOD_SEPARATOR
from decisioning.errors import NotFound
from decisioning.sql import repositories as repo
from decisioning.sql.tables import allocations, holdouts
from experiments.bandit_allocation import analyse_bandit_metric
from experiments.group_sequential import decide_at
from experiments.report import analyse_metric, analyse_segments, decisive_cell, recommend
from experiments.sequential import HORIZON_SHARE
from experiments.srm import SrmResult, sample_ratio_check
from experiments.statistics import RegressionStats, SampleStats

EMPTY = RegressionStats(0, 0.0, 0.0, 0.0, 0.0, 0.0)

DEFAULT_PLANNED_UNITS_PER_CELL = 5000  # the mixture's tuning when a design plans no size
UNIVERSAL_HOLDOUT = "universal holdout"
"""The control of ``vs_holdout`` comparisons (a space: no cell can be named so)."""


def experiment_report(
    connection: Connection, experiment_id: str, *, cuped: bool = True
) -> dict[str, Any]:
    """The report of one experiment or holdout, as a JSON-ready mapping."""
    design = _design(connection, experiment_id)
    rows = repo.cell_statistics(connection, experiment_id)
    by_metric: dict[str, dict[str, RegressionStats]] = {}
    for row in rows:
        by_metric.setdefault(row.metric, {})[row.cell] = _statistics(row)
    cells = design["cells"]
    control = cells[0]["name"]
    counts = [by_metric.get(design["primary_metric"], {}).get(c["name"], EMPTY).n for c in cells]
    bandit_periods = design.get("bandit_periods")
    planned = design["planned_units_per_cell"] or DEFAULT_PLANNED_UNITS_PER_CELL
    # A planned size is a horizon the sequential test may spend most of its alpha on.
    horizon = design["planned_units_per_cell"] is not None
    if bandit_periods is None:
        ratio = sample_ratio_check(counts, [c["weight"] for c in cells], planned * len(cells))
    else:  # the weights change by design; each period's cells are compared within it
        nan = float("nan")
        ratio = SrmResult(nan, nan, False, "BANDIT_ALLOCATION")
    present = {
        metric: {c["name"]: by_metric.get(metric, {}).get(c["name"], EMPTY) for c in cells}
        for metric in [design["primary_metric"], *design["guardrail_metrics"]]
    }
    metrics = {}
    for metric in present:
        if bandit_periods is not None:
            metrics[metric] = analyse_bandit_metric(
                metric,
                _period_statistics(connection, experiment_id, metric, bandit_periods),
                [c["name"] for c in cells],
                control,
                alpha=design["alpha"],
                planned_n_per_cell=planned,
                horizon=horizon,
            )
            continue
        metrics[metric] = analyse_metric(
            metric,
            present[metric],
            control,
            alpha=design["alpha"],
            planned_n_per_cell=planned,
            use_cuped=cuped,
            horizon=horizon,
        )
    primary = metrics[design["primary_metric"]]
    action, reason = recommend(primary, ratio, design["alpha"])
    sequential_groups: dict[str, list[dict[str, Any]]] = {}
    if design.get("analysis") == "group_sequential":
        for metric in metrics:
            sequential_groups[metric] = _group_sequential(present[metric], control, design)
        action, reason = _group_sequential_recommendation(
            sequential_groups[design["primary_metric"]], ratio, action, reason
        )
    versus = {}
    holdout = _holdout_cell(connection, design["placement"]) if "placement" in design else None
    if holdout is not None and bandit_periods is None:
        for metric in metrics:
            versus[metric] = analyse_metric(
                metric,
                {UNIVERSAL_HOLDOUT: holdout.get(metric, EMPTY), **present[metric]},
                UNIVERSAL_HOLDOUT,
                alpha=design["alpha"],
                planned_n_per_cell=planned,
                use_cuped=cuped,
                horizon=horizon,
            )
    by_segment: dict[str, dict[str, dict[str, RegressionStats]]] = {}  # metric, segment, cell
    for row in repo.segment_statistics(connection, experiment_id):
        segment = by_segment.setdefault(row.metric, {}).setdefault(row.segment, {})
        segment[row.cell] = _statistics(row)
    segments = {
        metric: _segments(
            metric, by_segment.get(metric, {}), cells, design, planned, cuped, horizon
        )
        for metric in metrics
    }
    return {
        "experiment_id": experiment_id,
        "status": design["status"],
        "alpha": design["alpha"],
        "primary_metric": design["primary_metric"],
        "control": control,
        "cells": [{**c, "units": n} for c, n in zip(cells, counts, strict=True)],
        "sample_ratio": _finite_values({**asdict(ratio), "alarm": ratio.alarm}),
        # How the anytime-valid intervals spend alpha (``experiments.sequential``).
        "anytime_valid": {"tuned_for_units_per_cell": planned, "horizon": horizon},
        "metrics": {
            m: {
                "cuped": r.cuped,
                "cells": {
                    name: _summary(stats)
                    for name, stats in (
                        (c["name"], by_metric.get(m, {}).get(c["name"])) for c in cells
                    )
                    if stats is not None
                },
                "comparisons": [asdict(c) for c in r.comparisons],
                "vs_holdout": [asdict(c) for c in versus[m].comparisons] if m in versus else None,
                "group_sequential": sequential_groups.get(m),
                "segments": segments[m],
            }
            for m, r in metrics.items()
        },
        "recommendation": {
            "action": action,
            "reason": reason,
            # The cell the anytime-valid primary results crown (None while undecided).
            "winner": decisive_cell(primary, ratio, design["alpha"]),
        },
        "actions": [
            {**a, "created_at": a["created_at"].isoformat(), "decided_at": _iso(a["decided_at"])}
            for a in repo.feedback_actions_of(connection, experiment_id)
        ],
    }


def _segments(
    metric: str,
    by_segment: dict[str, dict[str, RegressionStats]],
    cells: list[dict[str, Any]],
    design: dict[str, Any],
    planned: float,
    cuped: bool,
    horizon: bool,
) -> list[dict[str, Any]]:
    """Uplift by segment of one metric, Benjamini-Hochberg across segments and cells."""
    names = [c["name"] for c in cells]
    complete = {s: {n: found.get(n, EMPTY) for n in names} for s, found in by_segment.items()}
    return [
        {
            "segment": s.segment,
            "units": {
                n: complete[s.segment][n].n for n in (s.comparison.control, s.comparison.cell)
            },
            **asdict(s.comparison),
        }
        for s in analyse_segments(
            metric,
            complete,
            names[0],
            alpha=design["alpha"],
            planned_n_per_cell=planned,
            use_cuped=cuped,
            horizon=horizon,
        )
    ]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _group_sequential(
    cells: dict[str, RegressionStats], control: str, design: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each cell against the control at the latest pre-registered look its units reached: the
    z statistic of the difference of means against the Lan-DeMets boundary of that look."""
    results = []
    base = cells[control].y
    for name, stats in cells.items():
        if name == control:
            continue
        treated = stats.y
        variance = (
            base.variance / base.n + treated.variance / treated.n
            if min(base.n, treated.n) > 1
            else float("nan")
        )
        z = (treated.mean - base.mean) / math.sqrt(variance) if variance > 0 else float("nan")
        result = decide_at(
            z,
            min(base.n, treated.n),
            design["planned_units_per_cell"],
            design["looks"],
            design["alpha"],
        )
        results.append({"cell": name, **_finite_values(asdict(result))})
    return results


def _group_sequential_recommendation(
    results: list[dict[str, Any]], ratio: SrmResult, action: str, reason: str
) -> tuple[str, str]:
    """A group-sequential design decides at its looks: ship on a boundary crossed upwards,
    stop when every cell crossed downwards; an SRM still stops it."""
    if ratio.alarm:
        return action, reason
    up = [r for r in results if r["reject"] and (r["z"] or 0.0) > 0]
    if up:
        best = max(up, key=lambda r: r["z"])
        return "ship", f"{best['cell']} crossed the look-{best['look']} boundary (group-sequential)"
    if results and all(r["reject"] for r in results):
        return "stop", "every cell crossed the lower boundary (group-sequential)"
    return "keep running", "no boundary crossed at the looks reached so far (group-sequential)"


def _holdout_cell(
    connection: Connection, placement: str | None
) -> dict[str, RegressionStats] | None:
    """The universal holdout's statistics per metric, to measure an experiment's cells against:
    the placement's own holdout where there is one, else the bank's; None without a holdout."""
    for holdout_id in ([placement] if placement is not None else []) + ["bank"]:
        if repo.load_document(connection, holdouts, "holdout_id", holdout_id) is None:
            continue
        return {
            row.metric: _statistics(row)
            for row in repo.cell_statistics(connection, HOLDOUT_PREFIX + holdout_id)
            if row.cell == "holdout"
        }
    return None


def _period_statistics(
    connection: Connection, experiment_id: str, metric: str, periods: int
) -> list[dict[str, SampleStats]]:
    """Per allocation period of a bandit experiment, each cell's statistics of ``metric``."""
    return [
        {
            row.cell: SampleStats(row.n, row.sum, row.sum_squares)
            for row in repo.cell_statistics(connection, f"{experiment_id}{PERIOD_SEPARATOR}{k}")
            if row.metric == metric
        }
        for k in range(periods)
    ]


def _statistics(row: Any) -> RegressionStats:
    """A stored ``cell_stats`` row as the analysis reads it (x: the CUPED covariate)."""
    return RegressionStats(row.n, row.sum_x, row.sum, row.sum_x2, row.sum_squares, row.sum_xy)


def _summary(stats: RegressionStats) -> dict[str, float | None]:
    return {
        "n": stats.n,
        "mean": stats.y.mean if stats.n else None,
        "variance": stats.y.variance if stats.n > 1 else None,
    }


def _finite_values(values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: a statistic that could not be computed is null."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()
    }


def _design(connection: Connection, experiment_id: str) -> dict[str, Any]:
    if experiment_id.startswith((HOLDOUT_PREFIX, OFFER_PREFIX)):
        # An offer's measure compares the bank holdout's ghost draws with the shown offers.
        offer = experiment_id.startswith(OFFER_PREFIX)
        holdout_id = "bank" if offer else experiment_id.removeprefix(HOLDOUT_PREFIX)
        document = repo.load_document(connection, holdouts, "holdout_id", holdout_id)
        if document is None:
            raise NotFound(f"no holdout {HOLDOUT_PREFIX + holdout_id!r}", field="experiment_id")
        share = holdout_from_document(document).share
        return {
            "cells": [
                {"name": "holdout", "weight": share},
                {"name": "shown" if offer else "campaign", "weight": 1 - share},
            ],
            "primary_metric": "conversion",
            "guardrail_metrics": ["value", "contacts"],
            "alpha": 0.05,
            "planned_units_per_cell": None,
            "status": "running",
        }
    experiment = get_experiment(connection, experiment_id)
    allocation = repo.load_document(connection, allocations, "experiment_id", experiment_id)
    return {
        "bandit_periods": (int(allocation["period"]) + 1 if allocation is not None else 1)
        if experiment.allocation == "bandit"
        else None,
        "cells": [{"name": c.name, "weight": c.weight} for c in experiment.cells],
        "placement": experiment.placement,  # only experiments are measured against a holdout
        "analysis": experiment.analysis,
        "looks": experiment.looks,
        "primary_metric": experiment.primary_metric,
        "guardrail_metrics": list(experiment.guardrail_metrics),
        "alpha": experiment.alpha,
        "planned_units_per_cell": experiment.planned_units_per_cell,
        "status": experiment.status,
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table."""
    lines = [
        f"experiment {report['experiment_id']} ({report['status']}), alpha {report['alpha']}, "
        f"control {report['control']}",
        "cells: "
        + ", ".join(
            f"{c['name']} {c['units']:,} units (weight {c['weight']:g})" for c in report["cells"]
        ),
        f"sample ratio: p = {_number(report['sample_ratio']['p_value'])}, "
        f"anytime-valid p = {_number(report['sample_ratio']['sequential_p_value'])}"
        + ("  MISMATCH" if report["sample_ratio"]["alarm"] else ""),
        _spending(report["anytime_valid"], report["alpha"]),
        "",
        f"{'metric':<11} {'cell':<12} {'lift':>10} {'relative':>9} {'95% CI (fixed)':>23} "
        f"{'anytime-valid CI':>23} {'p (anytime)':>11} {'p (Holm)':>9}",
    ]
    rows = [
        (metric, c["cell"], c)
        for metric, result in report["metrics"].items()
        for c in result["comparisons"]
    ]
    rows += [
        (metric, f"{c['cell']}/hold", c)  # the cell against the universal holdout
        for metric, result in report["metrics"].items()
        for c in result.get("vs_holdout") or ()
    ]
    lines += [f"{metric:<11} {label:<12} {_comparison_columns(c)}" for metric, label, c in rows]
    primary = report["metrics"][report["primary_metric"]]
    if primary["segments"]:
        lines += [
            "",
            f"uplift by segment ({report['primary_metric']}; last p: Benjamini-Hochberg)",
            f"{'segment':<24} {'lift':>10} {'relative':>9} {'95% CI (fixed)':>23} "
            f"{'anytime-valid CI':>23} {'p (anytime)':>11} {'p (BH)':>9}",
        ]
        lines += [
            f"{s['segment'] + ' ' + s['cell']:<24} {_comparison_columns(s)}"
            for s in primary["segments"]
        ]
    recommendation = report["recommendation"]
    lines += ["", f"recommendation: {recommendation['action']} ({recommendation['reason']})"]
    for action in report["actions"]:
        lines.append(
            f"action {action['kind']} {action['status']} at {action['created_at']}"
            f" ({action['details'].get('reason', '')})"
        )
    return "\n".join(lines)


def _spending(anytime: dict[str, Any], alpha: float) -> str:
    planned = anytime["tuned_for_units_per_cell"]
    if not anytime["horizon"]:
        return f"anytime-valid: normal mixture tuned for {planned:,} units per cell (no plan)"
    share = HORIZON_SHARE * alpha
    return (
        f"anytime-valid: {share:.3g} of alpha {alpha:g} spent up to the plan of {planned:,} units "
        f"per cell, {alpha - share:.3g} past it"
    )


def _comparison_columns(c: dict[str, Any]) -> str:
    return (
        f"{_number(c['lift']):>10} {_percent(c['relative_lift']):>9} {_interval(c['ci']):>23} "
        f"{_interval(c['sequential_ci']):>23} {_number(c['sequential_p_value']):>11} "
        f"{_number(c['adjusted_p_value']):>9}" + (f"  {c['error']}" if c["error"] else "")
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _interval(bounds: list[float] | tuple[float, float] | None) -> str:
    return "-" if bounds is None else f"[{bounds[0]:.4g}, {bounds[1]:.4g}]"
