"""The benchmark scripts run (smoke test at small sizes; timings are not checked)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_optimizer_benchmark_runs_and_reports_both_libraries():
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "optimizers.py"),
            "--quick",
            "--only",
            "sgd",
            "clip+adamw",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("clip+adamw")]
    assert len(rows) == 2  # the single leaf and the tree
    for row in rows:
        # traffic column "jaxnn/optax" in units of the parameter bytes: the clip
        # adds one read of g to adamw's 10 for jaxnn, a written copy for optax.
        traffic = [c for c in row if c.count("/") == 1 and "." in c][1]
        ours, theirs = (float(x) for x in traffic.split("/"))
        assert ours < theirs
