"""Smoke tests: every example runs with a tiny step count and shows its claim.

Each example is imported by path and its `main(steps=...)` called; the returned
dict is checked for finite losses and for the orderings the example claims where
they are robust even after a few steps. `data_parallel` runs in a subprocess,
because it must set XLA_FLAGS (8 CPU devices) before jax is imported. The examples
import their shared helpers (`examples/_common.py`, `examples/_plots.py`) by name,
as `python examples/NAME.py` allows: examples/ is put on `sys.path` here.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

from tests.helpers import TOL

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def load_example(name):
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", EXAMPLES / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart():
    r = load_example("quickstart").main(steps=100)
    assert math.isfinite(r["first_loss"]) and math.isfinite(r["last_loss"])
    # y = sin(3x) has variance ~0.5: 100 steps already fit most of it.
    assert r["last_loss"] < 0.2 * r["first_loss"]


def test_train_digits(tmp_path):
    r = load_example("train_digits").main(steps=40, plot=tmp_path / "d.png", quiet=True)
    assert math.isfinite(r["train_loss"]) and math.isfinite(r["test_loss"])
    assert r["test_accuracy"] > 0.5  # 40 steps already learn most digits
    assert (tmp_path / "d.png").stat().st_size > 0


def test_exploding_gradients(tmp_path):
    r = load_example("exploding_gradients").main(
        steps=30, plot=tmp_path / "e.png", quiet=True
    )
    assert r["none"]["diverged"]
    assert r["none"]["exploding_at_start"]
    for name, run in r.items():
        if name == "none":
            continue
        assert not run["diverged"], name
        assert math.isfinite(run["final_loss"]), name
        # The clip's state recorded the huge pre-clip norm of step 1.
        assert run["recorded_norm_first"] > 1e6, name
        assert run["final_loss"] < 1e-2 * run["best_loss"] or run["final_loss"] < 1e5
    assert (tmp_path / "e.png").stat().st_size > 0


def test_vanishing_gradients(tmp_path):
    only = [
        "sigmoid U(±0.05)", "relu zero", "relu he", "sigmoid U(±0.05) +BN",
        "sigmoid U(±0.05) +skip",
    ]  # fmt: skip
    r = load_example("vanishing_gradients").main(
        steps=3, plot=tmp_path / "v.png", only=only, quiet=True
    )
    assert r["chain 0.5"]["attenuation"] == pytest.approx(
        0.5**10, rel=TOL["reduction"]["rtol"]
    )
    assert r["chain 1.5"]["attenuation"] == pytest.approx(
        1.5**10, rel=TOL["reduction"]["rtol"]
    )
    # Sigmoid with small init: the first layer gets ~nothing; ReLU + He: healthy.
    assert r["sigmoid U(±0.05)"]["vanishing"]
    assert not r["relu he"]["vanishing"]
    assert r["sigmoid U(±0.05)"]["first"] < 1e-6 * r["relu he"]["first"]
    assert r["sigmoid U(±0.05)"]["attenuation"] < 1e-6
    # The remedies restore the first layer's gradient.
    for name in ("sigmoid U(±0.05) +BN", "sigmoid U(±0.05) +skip"):
        assert not r[name]["vanishing"], name
        assert r[name]["first"] > 1e6 * r["sigmoid U(±0.05)"]["first"], name
    assert r["relu zero"]["first"] == 0.0
    assert (tmp_path / "v.png").stat().st_size > 0


def test_compare_optimizers(tmp_path):
    r = load_example("compare_optimizers").main(
        steps=300, plot=tmp_path / "c.png", digits_steps=20, quiet=True
    )
    assert set(r) == {
        "gd", "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
        "nadam",
    }  # fmt: skip
    for name, run in r.items():
        assert math.isfinite(run["rosenbrock_loss"]), name
        assert math.isfinite(run["digits_loss"]), name
    # Momentum and Adam get further down the Rosenbrock valley than plain GD.
    for name in ("momentum", "nesterov", "adam"):
        assert r[name]["rosenbrock_loss"] < r["gd"]["rosenbrock_loss"], name
    assert (tmp_path / "c.png").stat().st_size > 0


def test_regularization_and_init(tmp_path):
    r = load_example("regularization_and_init").main(
        steps=60, plot=tmp_path / "r.png", quiet=True
    )
    l1 = r["l1_l2"]
    # Only the proximal step produces exact zeros; L1 gives more tiny weights
    # than L2 or no penalty.
    assert l1["L1 proximal"]["exact_zeros"] > 0.0
    assert l1["L1 penalty"]["exact_zeros"] == 0.0
    assert l1["L1 penalty"]["tiny"] > l1["L2 penalty"]["tiny"]
    # Zero init: all hidden units identical up to float32 rounding.
    assert r["zero_init"]["zero init"]["unit_spread"] < 1e-5
    assert r["zero_init"]["xavier init"]["unit_spread"] > 1e-2
    # Dead ReLU units stay dead (no gradient), so never fewer than at the start.
    dying = r["dying_relu"]
    assert dying["relu"]["dead_after"] >= dying["relu"]["dead_before"] > 0.1
    for run in r["dropout"].values():
        assert math.isfinite(run["test_loss"])
    assert (tmp_path / "r.png").stat().st_size > 0


def test_data_parallel_equals_single_device(tmp_path):
    plot = tmp_path / "p.png"
    code = (
        "import json, runpy, sys\n"
        f"ns = runpy.run_path({str(EXAMPLES / 'data_parallel.py')!r})\n"
        f"r = ns['main'](steps=10, plot={str(plot)!r}, quiet=True)\n"
        "print('RESULT', json.dumps(r))\n"
    )
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["JAX_PLATFORMS"] = "cpu"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(EXAMPLES), *filter(None, [env.get("PYTHONPATH")])]
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line.removeprefix("RESULT "))
    assert r["devices"] == 8
    assert math.isfinite(r["loss_parallel"])
    assert r["max_abs_diff"] < 1e-5
    assert r["max_loss_diff"] < 1e-5
    assert plot.stat().st_size > 0


def test_microbatching(tmp_path):
    r = load_example("microbatching").main(plot=tmp_path / "m.png", pieces=(1, 4))
    # XLA's scratch memory falls with the pieces; the gradient is the same.
    assert r["scratch_mb"][1] < 0.5 * r["scratch_mb"][0]
    assert r["relative_error"][1] < TOL["reduction"]["rtol"]
    assert (tmp_path / "m.png").stat().st_size > 0


def test_parameter_groups(tmp_path):
    r = load_example("parameter_groups").main(
        steps=20, plot=tmp_path / "p.png", quiet=True
    )
    runs = r["runs"]
    every, kernels = (
        runs["(a) decay on every leaf"],
        runs["(b) partition: kernels only"],
    )
    assert every["bias_norm_last"] < kernels["bias_norm_last"]
    assert r["partition_vs_mask_max_difference"] < 1e-6
    assert (tmp_path / "p.png").stat().st_size > 0


def test_optax_wrappers(tmp_path):
    r = load_example("optax_wrappers").main(
        steps=60, plot=tmp_path / "o.png", quiet=True
    )
    assert all(run["all_finite"] for run in r.values())
    assert r["apply_if_finite"]["skipped"] == 1  # step 50's NaN gradient
    assert r["inject_hyperparams"]["last_lr_factor"] == pytest.approx(0.1)
    assert (tmp_path / "o.png").stat().st_size > 0
