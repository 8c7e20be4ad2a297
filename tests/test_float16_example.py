"""Smoke test of examples/float16_training.py: (b) underflows, (c) trains like (a).

Runs float32, float16 and float16 + dynamic loss scaling for a few hundred steps
(the float32-master variant is left to the full run) and checks the example's
claims that already hold that early.
"""

import importlib.util
import math
from pathlib import Path

import matplotlib
import numpy as np

from tests.helpers import TOL

matplotlib.use("Agg")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "float16_training.py"


def load_example():
    spec = importlib.util.spec_from_file_location("example_float16", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_float16_example_shows_underflow_and_loss_scaling_cures_it(tmp_path):
    example = load_example()
    r = example.main(
        steps=STEPS,
        plot=tmp_path / "f16.png",
        variants=("float32", "float16", "float16 + loss scaling"),
        quiet=True,
    )
    f32, f16, scaled = r["float32"], r["float16"], r["float16 + loss scaling"]
    for run in r.values():
        assert math.isfinite(run["final_loss"])
    # (b): the first layers lose gradient entries to underflow. Layer 1 has
    # structural zeros (always-blank pixels) in every variant; the excess is
    # float16 underflow.
    excess = np.subtract(f16["layer_zero_fractions"], f32["layer_zero_fractions"])
    assert excess[:3].min() > 0.5, excess
    # (c): loss scaling brings the zeros back to float32's level and trains.
    np.testing.assert_allclose(
        scaled["layer_zero_fractions"],
        f32["layer_zero_fractions"],
        **TOL["zero_fraction_level"],
    )
    assert scaled["final_loss"] < 0.5 * math.log(10)  # below half the initial loss
    assert scaled["final_loss"] < f16["final_loss"]
    assert scaled["test_accuracy"] > 0.5
    assert scaled["scale_first"] == 2.0**15 and scaled["scale_last"] >= 2.0**15
    assert (tmp_path / "f16.png").stat().st_size > 0


STEPS = 300
