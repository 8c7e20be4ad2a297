"""Smoke test: examples/sweep_learning_rates.py runs and shows its claims.

A few steps and rates: the vmapped sweep compiles once, the sequential baseline
once per rate, and both train the same models (same accuracy per rate).
"""

import importlib.util
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sweep_learning_rates.py"


def test_sweep_learning_rates(tmp_path):
    spec = importlib.util.spec_from_file_location("example_sweep", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = module.main(steps=4, plot=tmp_path / "s.png", num_rates=3, quiet=True)
    assert r["sweep_compilations"] == 1
    assert r["sequential_compilations"] == 3
    assert len(r["test_accuracy"]) == 3
    assert all(math.isfinite(a) for a in r["test_accuracy"])
    # One test example is 1/360 of the accuracy: the vmapped models are the
    # sequential ones, up to float rounding in batched matmuls.
    assert r["max_accuracy_difference"] <= 1 / 360 + 1e-6
    assert (tmp_path / "s.png").stat().st_size > 0
