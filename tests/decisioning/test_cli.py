"""The command line as a newcomer uses it: the README's demo server answers its own curl line."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from decisioning.cli import main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_server_prints_a_working_curl_line(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "DECISIONING_SQLITE_PATH": str(tmp_path / "demo.db")}
    env.pop("DECISIONING_DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "decisioning.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        while not any(line.strip().startswith("curl") for line in lines):
            line = server.stdout.readline()  # type: ignore[union-attr]
            assert line, "the server exited before printing its curl line: " + "".join(lines)
            lines.append(line)
        curl = shlex.split(next(line for line in lines if line.strip().startswith("curl")))
        headers = dict(curl[i + 1].split(": ", 1) for i, arg in enumerate(curl) if arg == "-H")
        body = curl[curl.index("-d") + 1].encode()
        url = next(arg for arg in curl if arg.startswith("http://"))
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
                break
            except urllib.error.HTTPError:
                raise
            except OSError:  # not listening yet
                assert time.monotonic() < deadline, "the demo server never answered"
                time.sleep(0.2)
        assert answer["offers"], answer  # the sample catalogue has offers for this customer
        assert re.fullmatch(r"[0-9a-f]{32}", answer["decision_id"])
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_keys_create_prints_a_key(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DECISIONING_DATABASE_URL", f"sqlite:///{tmp_path / 'k.db'}")
    assert main(["keys", "create", "--role", "analyst"]) == 0
    assert capsys.readouterr().out.strip().startswith("dk_")


def test_bad_role_is_a_usage_error(capsys) -> None:
    try:
        main(["keys", "create", "--role", "boss"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "--role" in capsys.readouterr().err


def test_report_prints_a_table(tmp_path: Path, capsys, monkeypatch) -> None:
    from decisioning.catalog import put_holdout
    from decisioning.domain import DecisionRequest
    from decisioning.sql.session import unit_of_work
    from experiments.design import Holdout
    from tests.conftest import open_engine
    from tests.support import NOW, configure, offer

    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = open_engine(url)
    configure(engine, [offer("loan")])
    with unit_of_work(engine.db) as connection:
        put_holdout(connection, Holdout(share=0.3), NOW)
    engine.catalog.invalidate()
    for i in range(50):
        engine.decide(DecisionRequest(f"c-{i}", "app_banner", context={}), now=NOW)
    monkeypatch.setenv("DECISIONING_DATABASE_URL", url)
    assert main(["report", "holdout:bank"]) == 0
    out = capsys.readouterr().out
    assert "holdout" in out and "campaign" in out and "recommendation:" in out
    assert main(["report", "nope"]) == 2


def test_experiment_put_and_list(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("DECISIONING_DATABASE_URL", f"sqlite:///{tmp_path / 'e.db'}")
    design = tmp_path / "design.json"
    design.write_text(
        json.dumps(
            {
                "name": "copy test",
                "layer": "banner",
                "primary_metric": "conversion",
                "cells": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}],
                "planned_units_per_cell": 500,
            }
        )
    )
    assert main(["experiment", "put", "e1", "--file", str(design)]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["experiment", "list"]) == 0
    assert json.loads(capsys.readouterr().out)["experiment_id"] == "e1"
    design.write_text(json.dumps({**json.loads(design.read_text()), "alpha": 0.9}))
    assert main(["experiment", "put", "e1", "--file", str(design)]) == 2
    assert "alpha" in capsys.readouterr().err
