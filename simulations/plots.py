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


def plot(result: SimulationResult, path: str | Path) -> Path:
    """Write the regret and spend panels of ``result`` to ``path`` (PNG); returns the path.

    Left: cumulative regret (oracle minus captured expected incremental value), EUR, by day.
    Right: cumulative contact spend, EUR, by day, with the budget and the even-pacing target
    when the scenario has a budget (a dashed drift marker where the scenario drifts).
    """
    spec = result.spec
    figure, (regret_ax, spend_ax) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    for run in result.runs:
        days = np.array([d.day + 1 for d in run.days])
        regret = np.cumsum([d.regret for d in run.days])
        regret_ax.plot(days, regret, marker="o", markersize=3, label=run.policy)
        if run.budget is not None:
            spent = np.array([d.budget_spent for d in run.days])
        else:
            spent = np.cumsum([d.spend for d in run.days])
        spend_ax.plot(days, spent, marker="o", markersize=3, label=run.policy)

    drift = spec.scenario.drifts(spec.days)
    for ax in (regret_ax, spend_ax):
        for d in drift:
            ax.axvline(d.day + 0.5, color="grey", linestyle=":", label=f"drift ({d.offer_id})")
    regret_ax.set_title("Cumulative regret against the oracle")
    regret_ax.set_xlabel("simulated day")
    regret_ax.set_ylabel("cumulative regret, EUR (expected incremental value)")

    if spec.budget is not None:
        x = np.arange(0, spec.days + 1)
        spend_ax.axhline(spec.budget, color="black", linestyle="--", label="budget")
        spend_ax.plot(
            x, spec.budget * x / spec.days, color="grey", linestyle="-.", label="even pacing"
        )
        spend_ax.set_title("Budget spent against the budget")
    else:
        spend_ax.set_title("Cumulative contact spend (no budget)")
    spend_ax.set_xlabel("simulated day")
    spend_ax.set_ylabel("cumulative spend, EUR")

    for ax in (regret_ax, spend_ax):
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, spec.days + 1)
        ax.legend(fontsize="small", loc="upper left")
    figure.suptitle(
        f"{spec.scenario.name}: {spec.customers:,} customers, {spec.days} days, "
        f"{spec.visits_per_day:,} visits/day on {', '.join(spec.scenario.channels)}, "
        f"seed {spec.seed}"
    )
    out = Path(path)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
