"""Test helpers: the one tolerance table, random pytrees, optax trajectories."""

from __future__ import annotations

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
