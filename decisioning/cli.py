"""The ``decisioning`` command: serve, migrate, keys, demo data, learner and benchmarks."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from decisioning.settings import Settings
from simulations.cli import add_simulate_parser

EXIT_USAGE = 2


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app
    from api.security import create_key
    from decisioning.engine import DecisionEngine
    from decisioning.sample import load_sample_catalog
    from decisioning.sql import repositories as repo
    from decisioning.sql.session import unit_of_work
    from decisioning.sql.tables import offers

    engine = DecisionEngine.open(settings)
    if args.demo:
        with unit_of_work(engine.db) as connection:
            if repo.count_rows(connection, offers) == 0:
                load_sample_catalog(connection)
        channel_key = create_key(engine.db, "channel", "demo channel")
        marketer_key = create_key(engine.db, "marketer", "demo marketer")
        base = f"http://{args.host}:{args.port}"
        print(f"decisioning on {base} (database: {settings.url})")
        print(f"  channel key:  {channel_key}")
        print(f"  marketer key: {marketer_key}")
        print(f"  API docs:     {base}/docs")
        print("  try:")
        print(
            f"  curl -s -X POST {base}/v1/decisions -H 'Authorization: Bearer {channel_key}'"
            ' -H \'Content-Type: application/json\' -d \'{"customer_id": "c-1", "channel":'
            ' "app_banner", "context": {"age": 35, "segment": "affluent",'
            ' "risk_tolerance": "C3", "lifecycle": "mature"}, "limit": 2}\''
        )
        sys.stdout.flush()
    if args.workers > 1:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="warning",
        )
    else:
        uvicorn.run(
            create_app(settings, engine), host=args.host, port=args.port, log_level="warning"
        )
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from decisioning.sql.session import make_engine, migrate

    migrate(make_engine(settings.url))
    print(f"schema is current on {settings.url}")
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    from api.security import create_key
    from decisioning.sql.session import make_engine, migrate

    engine = make_engine(settings.url)
    migrate(engine)
    print(create_key(engine, args.role, args.name))
    return 0


def _learn(args: argparse.Namespace, settings: Settings) -> int:
    import time
    from datetime import timedelta

    from decisioning.engine import DecisionEngine
    from decisioning.learning import Learner, RewardDefinition, run_periodic_jobs

    engine = DecisionEngine.open(settings)
    reward = RewardDefinition(args.reward, timedelta(hours=args.window_hours))
    while True:
        if args.policy:
            learnt = {args.policy: Learner(engine, args.policy, default_reward=reward).run_once()}
        else:
            learnt = run_periodic_jobs(engine, reward)
        print(", ".join(f"{name}: learnt {n} rounds" for name, n in learnt.items()), flush=True)
        if args.once:
            return 0
        time.sleep(args.interval)


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    import json
    from datetime import timedelta

    from bandits.base import PolicyError
    from decisioning.engine import DecisionEngine
    from decisioning.errors import InvalidInput
    from decisioning.learning import RewardDefinition
    from decisioning.policy_evaluation import evaluate_log, format_evaluation

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not JSON: {exc}", field="--params") from None
    if not isinstance(params, dict):
        raise InvalidInput("must be a JSON object", field="--params")
    engine = DecisionEngine.open(settings)
    try:
        result = evaluate_log(
            engine,
            args.policy,
            RewardDefinition(args.reward, timedelta(hours=args.window_hours)),
            since=args.since,
            until=args.until or datetime.now(UTC),
            snapshot=args.snapshot,
            params=params,
        )
    except PolicyError as exc:
        option = "--policy" if exc.parameter == "name" else "--params"
        raise InvalidInput(str(exc), field=option) from None
    print(format_evaluation(result))
    return 0


def _timestamp(text: str) -> datetime:
    """An ISO-8601 date or time; UTC when it names no zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 date or time: {text!r}") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _experiment(args: argparse.Namespace, settings: Settings) -> int:
    import json
    from datetime import UTC, datetime

    from decisioning import catalog
    from decisioning.errors import InvalidInput
    from decisioning.sql.session import make_engine, migrate, unit_of_work

    engine = make_engine(settings.url)
    migrate(engine)
    if args.experiment_command == "list":
        with engine.connect() as connection:
            for document in catalog.list_experiment_documents(connection):
                print(json.dumps(document))
        return 0
    try:
        document = json.loads(args.file.read())
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not JSON: {exc}", field="--file") from None
    experiment = catalog.experiment_from_document({**document, "experiment_id": args.id})
    with unit_of_work(engine) as connection:
        created = catalog.put_experiment(connection, experiment, datetime.now(UTC))
    print(f"experiment {args.id} {'created' if created else 'updated'}")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from decisioning.reports import experiment_report, format_report
    from decisioning.sql.session import make_engine

    with make_engine(settings.url).connect() as connection:
        report = experiment_report(connection, args.experiment, cuped=not args.no_cuped)
    print(format_report(report))
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from decisioning import bench

    return bench.main(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="decisioning", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="load the sample retail-bank catalogue if empty and print keys and a curl line",
    )
    serve.set_defaults(run=_serve)

    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        run=_migrate
    )

    keys = commands.add_parser("keys", help="API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make a key and print it once")
    create.add_argument(
        "--role", required=True, choices=["channel", "marketer", "analyst", "admin"]
    )
    create.add_argument("--name", default="")
    create.set_defaults(run=_keys)

    learn = commands.add_parser(
        "learn",
        help="learn every policy in use from closed decisions, publish snapshots, act on "
        "decisive experiments",
    )
    learn.add_argument(
        "--policy", default=None, help="learn only this policy (and take no feedback actions)"
    )
    learn.add_argument(
        "--reward", default="accept", choices=["click", "accept", "convert", "value_minus_cost"]
    )
    learn.add_argument("--window-hours", type=float, default=24.0, help="attribution window")
    learn.add_argument("--interval", type=float, default=10.0, help="seconds between runs")
    learn.add_argument("--once", action="store_true", help="run once and exit")
    learn.set_defaults(run=_learn)

    evaluate = commands.add_parser(
        "evaluate", help="off-policy value of a policy on the decision log (IPS, SNIPS, DR)"
    )
    evaluate.add_argument("--policy", required=True, help="registered policy name")
    evaluate.add_argument("--since", type=_timestamp, default=None, help="ISO date or time")
    evaluate.add_argument("--until", type=_timestamp, default=None, help="default: now")
    evaluate.add_argument(
        "--reward", default="accept", choices=["click", "accept", "convert", "value_minus_cost"]
    )
    evaluate.add_argument("--window-hours", type=float, default=24.0, help="attribution window")
    evaluate.add_argument(
        "--snapshot",
        choices=["latest", "fresh"],
        default="latest",
        help="the policy's newest published snapshot (default) or an untrained one",
    )
    evaluate.add_argument(
        "--params", default="{}", help="JSON parameters of an untrained policy, e.g. '{\"v\": 0.5}'"
    )
    evaluate.set_defaults(run=_evaluate)

    add_simulate_parser(commands)

    experiment = commands.add_parser("experiment", help="create, change and list experiments")
    experiment_commands = experiment.add_subparsers(dest="experiment_command", required=True)
    put = experiment_commands.add_parser("put", help="create or change one from a JSON design")
    put.add_argument("id", help="experiment id")
    put.add_argument("--file", type=argparse.FileType("r"), required=True, help="JSON design")
    put.set_defaults(run=_experiment)
    experiment_commands.add_parser("list", help="every stored design").set_defaults(run=_experiment)

    report = commands.add_parser("report", help="an experiment's report as a readable table")
    report.add_argument("experiment", metavar="EXPERIMENT", help="experiment id, or holdout:bank")
    report.add_argument("--no-cuped", action="store_true", help="report unadjusted means")
    report.set_defaults(run=_report)

    bench_parser = commands.add_parser("bench", help="benchmarks that print a table")
    bench_parser.add_argument("target", choices=["decide", "http", "report"])
    bench_parser.add_argument("--decisions", type=int, default=20_000)
    bench_parser.add_argument("--offers", type=int, nargs="+", default=[20, 50, 100])
    bench_parser.add_argument(
        "--group", type=int, default=1, help="decisions committed together (decide)"
    )
    bench_parser.add_argument(
        "--seconds", type=float, default=10.0, help="(http) of each endpoint, split into rounds"
    )
    bench_parser.add_argument(
        "--rounds", type=int, default=5, help="(http) paired runs of decisions and empty"
    )
    bench_parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (http)")
    bench_parser.add_argument("--exposures", type=int, default=10_000_000, help="(report)")
    bench_parser.add_argument(
        "--database-url",
        help="PostgreSQL to run on, in a scratch schema dropped afterwards (decide, http); "
        "default: a temporary SQLite file",
    )
    bench_parser.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from decisioning.errors import DecisioningError

    try:
        return int(args.run(args, Settings()))
    except DecisioningError as exc:
        print(f"error: {exc.field + ': ' if exc.field else ''}{exc.message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
