"""Test helpers: the one tolerance table, random pytrees, optax trajectories."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

# One place for tolerances. float32 results compared with optax or a float64 NumPy
# reference agree to a few ulps per step; over 100 optimizer steps errors accumulate,
# hence rtol 1e-5 with a small atol for elements that pass through zero.
TOLERANCES = {
    "float64": dict(rtol=1e-10, atol=1e-12),
    "float32": dict(rtol=1e-5, atol=1e-6),
    "bfloat16": dict(rtol=2e-2, atol=1e-2),
    "float16": dict(rtol=2e-3, atol=1e-3),
}

# The suite's named bounds, each with where it comes from: `assert_allclose(a, e,
# **TOL["roundings"])`. float32 has eps = 2**-23 ≈ 1.2e-7 (one rounding: eps/2);
# float16 eps = 2**-10 ≈ 9.8e-4; bfloat16 eps = 2**-7 ≈ 7.8e-3. The "sampling_"
# bounds are not rounding at all: they bound the spread of a statistic of random
# draws (fixed keys, so each check is deterministic; the bounds are wide enough that
# another key would pass too). Sampling bounds that depend on a test's own data
# (dropout's means, drop fractions) are computed there from the law's variance.
TOL = {
    # Bit-identical: the same operations in the same order (identity, wrappers).
    "exact": dict(rtol=0, atol=0),
    # One float32 rounding of the exact value: eps/2 ≈ 6e-8 relative.
    "one_rounding": dict(rtol=1e-7),
    # A few float32 roundings (elementwise ops, a norm, a short sum, a schedule
    # value) against float64 NumPy, a closed form or optax's same formula: ~8 ulps.
    "roundings": dict(rtol=1e-6),
    # "roundings" where results cancel to (near) zero: a cosine schedule's end,
    # softmax minus one-hot, params crossing zero. The atol (far below an ulp of 1)
    # only admits results within a rounding of zero, where rtol alone asks for 0.
    "roundings_near_zero": dict(rtol=1e-6, atol=1e-9),
    # float32 roundings that compound: a reduction of n terms in another order
    # (logsumexp over classes, a matmul, a batch variance), a longer formula, a
    # few optimizer steps against optax: errors grow with n, ~100 ulps.
    "reduction": dict(rtol=1e-5),
    # float32 trajectories over several steps (or shards/microbatches summed in
    # another order) against optax or a single-device run: TOLERANCES["float32"].
    "trajectory": TOLERANCES["float32"],
    # BatchNorm outputs (x - mean) / std, O(1), against flax or a formula that gets
    # the variance another way (flax: E[x²] - E[x]², which loses digits to the
    # mean): ~1e-5 of the unit output scale.
    "batch_normalized": dict(rtol=1e-5, atol=1e-5),
    # Gradients through a batch's mean and variance: sums over the batch of products
    # of O(1) terms, differentiated through 1/std (relative accuracy ~1e-5).
    "batch_gradient": dict(rtol=1e-4, atol=1e-4),
    # Data offset by 1e4 with unit spread: one float32 ulp at 1e4 is ~1e-3, so
    # statistics and gradients relative to the spread are good to ~1e-3.
    "offset_1e4": dict(rtol=1e-3),
    # One float16 rounding (half an ulp: ≤ 4.9e-4 relative).
    "float16_rounding": dict(rtol=1e-3),
    # A bfloat16 result of a few roundings (eps_bf16 ≈ 7.8e-3).
    "bfloat16_rounding": dict(rtol=1e-2),
    # Half-precision outputs of unit scale (normalized activations, |y| < 8): one
    # bfloat16 rounding there is at most half an ulp at 4-8, 2^-6 ≈ 0.016.
    "bfloat16_unit_scale": dict(atol=2e-2),
    # For `assert not np.allclose(...)`: results that must differ by far more than
    # any rounding above (a different algorithm, not a different order).
    "distinct": dict(rtol=1e-2),
    # Sampling: the variance of ≥ 5e4 i.i.d. draws has relative standard deviation
    # ≤ sqrt(2 / 5e4) ≈ 0.006; 0.02 is > 3 of them (the std's bound is half this).
    "sampling_variance": dict(rtol=0.02),
    # Sampling: the largest |w| of ~5e4 draws of the same bounded or truncated law
    # lies next to the bound, so two such maxima are within 5% of each other.
    "sampling_max": dict(rtol=0.05),
    # Measured, not derived: per-layer fractions of zero gradient entries of two
    # training runs (float32, loss-scaled float16) agree to one percentage point.
    "zero_fraction_level": dict(atol=0.01),
}


ROOT = Path(__file__).resolve().parents[1]


def run_on_8_cpu_devices(script: str | Path, *, expect: str, timeout: int = 600) -> str:
    """Runs `script` in a fresh interpreter with 8 forced CPU devices; returns stdout.

    The one multi-device runner of the suite. The device count must be forced
    before jax is imported, hence the subprocess; each test module that needs 8
    devices runs all of its checks in one such process (one import of jax and
    one set of compilations per module). `script` is a file (tests/_*check.py)
    or Python source; warnings are errors there too (`-W error`). Fails the
    calling test, with the script's output, unless it exits 0 and prints `expect`.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=8".strip(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    source = ["-c", script] if isinstance(script, str) else [str(script)]
    proc = subprocess.run(
        [sys.executable, "-W", "error", *source],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = proc.stdout[-4000:] + proc.stderr[-8000:]
    assert proc.returncode == 0, output
    assert expect in proc.stdout, output
    return proc.stdout


class counting_jit:  # lower case: used as a decorator, like jax.jit
    """`jax.jit(fn)` that counts its traces: the suite's one "compiles once" check.

    JAX traces (and compiles) a jitted function again whenever the abstract
    values, pytree structure or static arguments of a call differ from those of
    every earlier call; a step whose `traces` stays 1 over several calls was
    compiled once. Use as `@counting_jit` or `counting_jit(fn, **jit_kwargs)`.
    """

    def __init__(self, fn, **jit_kwargs):
        self.traces = 0

        @functools.wraps(fn)
        def counted(*args, **kwargs):
            self.traces += 1
            return fn(*args, **kwargs)

        self._jitted = jax.jit(counted, **jit_kwargs)

    def __call__(self, *args, **kwargs):
        return self._jitted(*args, **kwargs)

    def lower(self, *args, **kwargs):
        return self._jitted.lower(*args, **kwargs)


def tol(dtype) -> dict:
    """rtol/atol for comparing arrays of `dtype`."""
    return TOLERANCES[jnp.dtype(dtype).name]


def assert_trees_close(actual, expected, dtype=jnp.float32, **overrides):
    """Asserts two pytrees have equal structure and leaves close within `tol(dtype)`."""
    kw = {**tol(dtype), **overrides}
    a_def, e_def = jax.tree.structure(actual), jax.tree.structure(expected)
    assert a_def == e_def, f"structures differ: {a_def} vs {e_def}"
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(e, np.float64), **kw
        )


def random_tree(seed: int, dtype=jnp.float32, scale: float = 1.0):
    """A nested pytree (dict, tuple, list, scalar, 1-D to 4-D leaves) of normals."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        return jnp.asarray(rng.normal(size=shape) * scale, dtype)

    return {
        "dense": {"w": arr(5, 3), "b": arr(3)},
        "conv": (arr(3, 3, 2, 4), arr(4)),
        "stack": [arr(2, 3, 4), arr()],
    }


def run_steps(tx, params, grads_fn, steps: int, apply):
    """Runs `steps` updates of `tx`; returns the list of params after each step.

    `apply(params, updates)` is the library's apply_updates, so that optax and jaxnn
    trajectories can each be run with their own.
    """
    state = tx.init(params)
    update = jax.jit(tx.update)
    out = []
    for _ in range(steps):
        grads = grads_fn(params)
        updates, state = update(grads, state, params)
        params = apply(params, updates)
        out.append(params)
    return out


def mlp_params(seed: int, dtype=jnp.float32):
    """A small nested MLP (dict, list, tuple, scalar leaf) for the optimizer tests."""
    rng = np.random.default_rng(seed)

    def arr(*shape, s=0.5):
        return jnp.asarray(rng.normal(size=shape) * s, dtype)

    return {
        "layers": [
            {"w": arr(4, 6), "b": arr(6, s=0.1)},
            {"w": arr(6, 3), "b": arr(3, s=0.1)},
        ],
        "head": (arr(3), arr()),
    }


def mlp_loss(params, seed: int = 0):
    """Mean squared error of the MLP of `mlp_params` on fixed synthetic data.

    A real loss: gradients differ per leaf in scale and sign and change as the
    params move, unlike a fixed gradient sequence.
    """
    rng = np.random.default_rng(1000 + seed)
    x = jnp.asarray(rng.normal(size=(16, 4)), jnp.float32)
    y = jnp.asarray(np.sin(rng.normal(size=(16,))), jnp.float32)
    h = x.astype(params["layers"][0]["w"].dtype)
    for layer in params["layers"]:
        h = jnp.tanh(h @ layer["w"] + layer["b"][None, :])
    scale, offset = params["head"]
    pred = (h @ scale + offset).astype(jnp.float32)
    return jnp.mean((pred - y) ** 2)


def scan_trajectories(runs, params, loss, steps: int):
    """Params after each of `steps` updates, for several `(tx, apply)` runs at once.

    All runs start from `params` and are compiled together into one program (one
    `lax.scan` per run under a single `jax.jit`), so comparing an optimizer with
    its optax twin, with two settings each, costs one compilation. `apply` is the
    library's apply_updates. Returns one pytree per run whose leaves have a
    leading axis of length `steps`.
    """

    @jax.jit
    def run(params):
        out = []
        for tx, apply in runs:

            def step(carry, _, tx=tx, apply=apply):
                p, s = carry
                u, s = tx.update(jax.grad(loss)(p), s, p)
                p = apply(p, u)
                return (p, s), p

            init = (params, tx.init(params))
            out.append(jax.lax.scan(step, init, None, length=steps)[1])
        return out

    return run(params)


def scan_trajectory(tx, params, loss, steps: int, apply):
    """`scan_trajectories` for a single run."""
    return scan_trajectories([(tx, apply)], params, loss, steps)[0]
