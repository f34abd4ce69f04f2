"""``decisioning simulate SCENARIO``: run a named scenario against the real engine.

Wire it into ``decisioning/cli.py``'s ``build_parser`` with::

    from simulations.cli import add_simulate_parser
    add_simulate_parser(commands)

The sub-command calls :func:`run_simulate`, which returns the exit code: 0; 1 when the engine
broke a cap or overspent a budget; 2 with a message naming the bad option (unknown scenario or
policy, negative sizes, a budget that cannot be met).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

EXIT_USAGE = 2
EXIT_BROKEN = 1  # the run finished but the engine broke a cap or overspent a budget


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``simulate`` to ``subparsers`` (the object ``add_subparsers`` returned)."""
    from simulations.scenarios import scenario_names

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run a simulated bank against the engine and print a table",
        description=(
            "Drive the real engine with simulated customers: decide, send the outcome events, "
            "learn once per simulated day; print value against the oracle, regret, spend "
            "against budget and cap violations. Scenarios: " + ", ".join(scenario_names())
        ),
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario name")
    parser.add_argument("--customers", type=int, default=None, help="population size")
    parser.add_argument("--days", type=int, default=None, help="simulated days")
    parser.add_argument(
        "--policy",
        action="append",
        default=None,
        help="policy to run (repeat, or comma-separate; 'all' = every registered policy and "
        "the random and segment-rules baselines); default depends on the scenario",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random")
    parser.add_argument(
        "--visits-per-day",
        type=int,
        default=None,
        help="visits simulated per day (default: the scenario's rate, capped)",
    )
    parser.add_argument(
        "--budget", type=float, default=None, help="money budget for the catalogue, EUR"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: cores, <= 2)"
    )
    parser.add_argument("--json", metavar="FILE", default=None, help="write every metric as JSON")
    parser.add_argument("--plot", metavar="FILE.png", default=None, help="write the plots (PNG)")
    parser.add_argument("--http", action="store_true", help="decide and send events over HTTP")
    parser.add_argument(
        "--runs",
        type=int,
        default=1,
        help="aa-test and holdout-uplift: seeded runs to repeat (seeds --seed, --seed+1, ...)",
    )
    parser.add_argument(
        "--plant",
        action="store_true",
        help="holdout-uplift: add a no-uplift and a negative-uplift offer; retire and re-value "
        "against propensity-based arbitration on the same seed",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=lambda args, _settings=None: run_simulate(args))
    return parser


def _error(option: str, message: str) -> int:
    print(f"error: {option}: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``args.scenario`` and print the table, then the timings.

    Returns
    -------
    int
        0 on success; 1 when a run found a cap violation or a budget overspend; 2 on bad input
        (the message names the option).
    """
    from decisioning.settings import Settings
    from simulations.scenarios import SimulationInputError, build_spec

    if args.plot is not None and not str(args.plot).lower().endswith(".png"):
        return _error("--plot", f"must name a .png file, got {args.plot!r}")
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        return _error("--workers", f"must be >= 1, got {workers}")
    try:
        spec = build_spec(
            args.scenario,
            customers=args.customers,
            days=args.days,
            seed=args.seed,
            policies=args.policy,
            default_policy=Settings().default_policy,
            visits_per_day=args.visits_per_day,
            budget=args.budget,
            http=args.http,
        )
    except SimulationInputError as exc:
        return _error(exc.option, exc.message)
    if args.runs < 1:
        return _error("--runs", f"must be >= 1, got {args.runs}")
    if spec.scenario.study is not None:
        return _run_study(spec, args, workers)
    if args.plant:
        return _error("--plant", "plants offers in holdout-uplift only")
    if args.runs != 1:
        return _error("--runs", "repeats only the aa-test and holdout-uplift studies")

    from tqdm import tqdm

    from simulations.runner import format_table, format_timing, run_simulation, to_json

    total = spec.days * len(spec.policies)
    with tqdm(
        total=total,
        desc=f"{spec.scenario.name} ({len(spec.policies)} policies)",
        unit="day",
        disable=args.no_progress,
        mininterval=0.5,
        file=sys.stderr,
    ) as bar:
        result = run_simulation(spec, workers=workers, progress=bar.update)
    print(format_table(result))
    print()
    print(format_timing(result))
    failed = [
        f"{run.policy}: {run.cap_violations} cap violation(s) {run.violations_by_kind}, "
        f"overspend EUR {run.overspend:g}"
        for run in result.runs
        if run.cap_violations or run.overspend > 0
    ]
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(to_json(result), handle, indent=2)
        print(f"metrics written to {args.json}")
    if args.plot is not None:
        from simulations.plots import plot

        print(f"plots written to {plot(result, args.plot)}")
    for line in failed:
        print(f"FAILED: the engine broke its contact policy or budget: {line}", file=sys.stderr)
    return EXIT_BROKEN if failed else 0


def _run_study(spec: Any, args: argparse.Namespace, workers: int) -> int:
    """An experiment study (``simulations.experiment_studies``): the table, the summary over
    ``--runs`` seeds, the first run's plot."""
    from dataclasses import asdict

    from tqdm import tqdm

    from simulations.experiment_studies import format_study, plot_study, run_studies, summarise

    if args.http:
        return _error("--http", "the studies run in-process")
    if args.plant:
        return _run_planted(spec, args, workers)
    with tqdm(
        total=args.runs,
        desc=f"{spec.scenario.name} ({args.runs} run(s))",
        unit="run",
        disable=args.no_progress,
        file=sys.stderr,
    ) as bar:
        runs = run_studies(spec, args.runs, workers=workers, progress=bar.update)
    print(format_study(spec, runs))
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"runs": [asdict(run) for run in runs], "summary": summarise(runs)},
                handle,
                indent=2,
            )
        print(f"metrics written to {args.json}")
    if args.plot is not None:
        print(f"plot written to {plot_study(runs[0], args.plot)}")
    return 0


def _run_planted(spec: Any, args: argparse.Namespace, workers: int) -> int:
    """``holdout-uplift --plant``: the feedback arms on one seed, as a table."""
    from dataclasses import asdict

    from simulations.experiment_studies import format_planted, run_planted

    if spec.scenario.name != "holdout-uplift":
        return _error("--plant", "plants offers in holdout-uplift only")
    if args.runs != 1:
        return _error("--runs", "--plant compares its arms on one seed")
    runs = run_planted(spec, workers=workers)
    print(format_planted(spec, runs))
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({arm: asdict(run) for arm, run in runs.items()}, handle, indent=2)
        print(f"metrics written to {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the sub-command alone: ``python -m simulations.cli simulate SCENARIO ...``."""
    parser = argparse.ArgumentParser(prog="decisioning")
    commands = parser.add_subparsers(dest="command", required=True)
    add_simulate_parser(commands)
    return run_simulate(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
