"""SequentialLift against GrowthBook's gbstats ``SequentialTwoSidedTTest`` (separate venv)."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from experiments import SampleStats, SequentialLift

SCRIPT = """
import json, sys
from gbstats.frequentist.tests import SequentialTwoSidedTTest, SequentialConfig
from gbstats.models.statistics import SampleMeanStatistic
out = []
for c in json.load(sys.stdin):
    a = SampleMeanStatistic(n=c["a"][0], sum=c["a"][1], sum_squares=c["a"][2])
    b = SampleMeanStatistic(n=c["b"][0], sum=c["b"][1], sum_squares=c["b"][2])
    cfg = SequentialConfig(alpha=c["alpha"], difference_type="absolute",
                           sequential_tuning_parameter=c["planned"])
    r = SequentialTwoSidedTTest(a, b, cfg).compute_result()
    out.append({"ci": [float(x) for x in r.ci], "p": float(r.p_value)})
json.dump(out, sys.stdout)
"""


@pytest.mark.skipif(
    not os.environ.get("DECISIONING_GBSTATS_PYTHON"),
    reason="DECISIONING_GBSTATS_PYTHON (a Python with gbstats, which pins numpy < 2) is not set",
)
def test_sequential_lift_matches_gbstats() -> None:
    rng = np.random.default_rng(21)
    cases = []
    for _ in range(15):
        a = rng.binomial(1, 0.1, int(rng.integers(200, 30_000))).astype(float)
        b = rng.normal(0.11, 0.4, int(rng.integers(200, 30_000)))
        cases.append(
            {
                "a": [a.size, float(a.sum()), float(a @ a)],
                "b": [b.size, float(b.sum()), float(b @ b)],
                "alpha": float(rng.choice([0.01, 0.05, 0.1])),
                "planned": 2 * int(rng.integers(1000, 50_000)),
            }
        )
    ref = json.loads(
        subprocess.run(
            [os.environ["DECISIONING_GBSTATS_PYTHON"], "-c", SCRIPT],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    for case, r in zip(cases, ref, strict=True):
        ours = SequentialLift(alpha=case["alpha"], planned_n_per_cell=case["planned"] / 2).compute(
            SampleStats(*case["a"]), SampleStats(*case["b"])
        )
        assert ours.ci_low == pytest.approx(r["ci"][0], abs=1e-6)
        assert ours.ci_high == pytest.approx(r["ci"][1], abs=1e-6)
