"""Plots of a simulation: cumulative regret per policy, and spend against the budget.

One PNG with two panels side by side; days on the x-axis, EUR on the y-axes, one line per
policy. Matplotlib runs headless (the Agg backend).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from simulations.runner import SimulationResult

LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "x", "P")


def plot(result: SimulationResult, path: str | Path) -> Path:
    """Write the regret and spend panels of ``result`` to ``path`` (PNG); returns the path.

    Left: cumulative regret (oracle minus captured expected incremental value), EUR, by day.
    Right: cumulative contact spend, EUR, by day, with the budget and the even-pacing target
    when the scenario has a budget (a dashed drift marker where the scenario drifts).
    """
    spec = result.spec
    figure, (regret_ax, spend_ax) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    for k, run in enumerate(result.runs):
        # Day 0 is the start (nothing spent, no regret); a point per simulated day after it.
        days = np.arange(len(run.days) + 1)
        regret = np.concatenate([[0.0], np.cumsum([d.regret for d in run.days])])
        if run.budget is not None:
            spent = np.array([0.0] + [d.budget_spent for d in run.days])
        else:
            spent = np.concatenate([[0.0], np.cumsum([d.spend for d in run.days])])
        # Distinct line styles and markers, so policies whose lines coincide stay visible.
        style = {
            "linestyle": LINESTYLES[k % len(LINESTYLES)],
            "marker": MARKERS[k % len(MARKERS)],
            "markersize": 4,
            "label": run.policy,
        }
        regret_ax.plot(days, regret, **style)
        spend_ax.plot(days, spent, **style)

    drift = spec.scenario.drifts(spec.days)
    for ax in (regret_ax, spend_ax):
        for d in drift:
            ax.axvline(d.day, color="grey", linestyle=":", label=f"drift starts ({d.offer_id})")
    regret_ax.set_title("Cumulative regret against the oracle")
    regret_ax.set_xlabel("simulated day")
    regret_ax.set_ylabel("cumulative regret, EUR (expected incremental value)")

    if spec.budget is not None:
        x = np.arange(0, spec.days + 1)
        spend_ax.axhline(
            spec.budget, color="black", linewidth=2, label=f"budget (EUR {spec.budget:,.2f})"
        )
        spend_ax.plot(
            x,
            spec.budget * x / spec.days,
            color="grey",
            linewidth=3,
            alpha=0.4,
            label="even pacing target",
        )
        spend_ax.set_title("Budget spent against the budget")
    else:
        spend_ax.set_title("Cumulative contact spend (no budget)")
    spend_ax.set_xlabel("simulated day")
    spend_ax.set_ylabel("cumulative spend, EUR")

    for ax in (regret_ax, spend_ax):
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, spec.days + 0.5)
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    regret_ax.legend(fontsize="small", loc="upper left")
    spend_ax.legend(fontsize="small", loc="best")
    figure.suptitle(
        f"{spec.scenario.name}: {spec.customers:,} customers, {spec.days} days, "
        f"{spec.visits_per_day:,} visits/day on {', '.join(spec.scenario.channels)}, "
        f"seed {spec.seed}"
    )
    out = Path(path)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
