"""Adversarial gradients: every transform and optimizer against extreme inputs.

Gradients (float32, 3 steps, the same gradient each step): all zero; all 1e-30
(subnormal in float16, also run in bfloat16/float16); all 1e30; mixed signs across
40 orders of magnitude (±1e-20 … ±1e20); and one element +inf, −inf or NaN among
normal values. One jitted function per transform, compiled once for every kind.

Guarantees held (see docs/guarantees.md for the table):
- Finite gradients give finite updates and finite states, with these documented
  exceptions, all forced by float32 range (|g| > ~1.8e19 makes g² overflow):
  * scale_by_rss / scale_by_rms / scale_by_adam (and adagrad, rmsprop, adam, nadam,
    adamw) with 1e30: the second-moment state overflows to +inf and the update is
    g / √inf = 0 (finite, but the step is lost; adamw's update is its weight decay
    term only). In the mixed case the same happens only in the elements with
    |g| > ~1.8e19; all other elements stay finite and correct.
  * scale_by_rms(centered=True) / rmsprop(centered=True) with 1e30: G − m² is
    inf − inf = NaN, so the updates are NaN (mixed case: only where
    |g| > ~1.8e19 may they be non-finite).
- Clipping (clip_by_value, clip_by_global_norm, clip_by_layer_norm,
  adaptive_grad_clip) never returns a non-finite value for finite input, and the
  norm clips keep the clipped norm <= the threshold even at 1e30 (norms are
  computed with rescaling, not by squaring in float32).
- Non-finite gradients are not masked: ±inf and NaN reach the updates of every
  transform (except clip_by_value, which maps ±inf to ±max_abs; NaN stays NaN).
- `skip_nonfinite` protects every transform: on a NaN/±inf step the updates are
  zero and the inner state is unchanged bit for bit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests import registry

# The transforms: the "adversarial" suite of tests/registry.py, whose flags say which
# documented exception applies (`squares`, `centered`, `param_term`, kind "clip").
ENTRIES = {e.name: e for e in registry.entries("adversarial")}
NAMES = sorted(ENTRIES)
STEPS = 3
FINITE_KINDS = ["zero", "tiny", "huge", "mixed"]
NONFINITE_KINDS = ["+inf", "-inf", "nan"]

_rng = np.random.default_rng(0)
PARAMS = {
    "w": jnp.asarray(_rng.normal(size=(4, 11)), jnp.float32),
    "b": jnp.asarray(_rng.normal(size=(10,)), jnp.float32),
    "s": jnp.float32(0.5),
}
# ±1e-20 … ±1e20 with alternating signs; `w` (44 elements) holds every magnitude.
_MIXED = np.array([(-1.0) ** k * 10.0**k for k in range(-20, 21)])


def grads_of(kind, dtype=jnp.float32):
    rng = np.random.default_rng(1)

    def leaf(p):
        n = p.size
        if kind == "zero":
            v = np.zeros(n)
        elif kind == "tiny":
            v = np.full(n, 1e-30)
        elif kind == "huge":
            v = np.full(n, 1e30)
        elif kind == "mixed":
            v = np.resize(_MIXED, n)
        else:
            v = rng.normal(size=n)
            v[0] = {"+inf": np.inf, "-inf": -np.inf, "nan": np.nan}[kind]
        return jnp.asarray(v.reshape(p.shape), dtype)

    return jax.tree.map(leaf, PARAMS)


@functools.cache
def runner(name):
    """One jitted function per transform: `STEPS` updates with the same grads."""
    tx = ENTRIES[name].make()

    @jax.jit
    def run(grads, params):
        state = tx.init(params)
        updates = []
        for _ in range(STEPS):
            u, state = tx.update(grads, state, params)
            updates.append(u)
        return updates, state

    return run


def _finite(tree):
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def _all_zero(tree):
    return all(bool(jnp.all(x == 0)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("kind", FINITE_KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_finite_gradients(name, kind):
    grads = grads_of(kind)
    updates, state = runner(name)(grads, PARAMS)
    overflow = kind in ("huge", "mixed")  # holds |g| > 1.8e19: g² overflows
    big = jax.tree.map(lambda g: jnp.abs(g) > 1.8e19, grads)
    entry = ENTRIES[name]
    if overflow and entry.centered:
        # Documented: G − m² = inf − inf = NaN where g² overflows; the other
        # elements stay finite.
        assert not _finite(state)
        assert _finite(updates) != (kind == "huge")
        for u in updates:
            jax.tree.map(
                lambda x, b: np.testing.assert_(np.isfinite(x[~b]).all()), u, big
            )
        return
    assert _finite(updates), f"{name} turned finite {kind} gradients into NaN/inf"
    if overflow and entry.squares:
        # Documented: the second moment overflows to +inf; the step is g/√inf = 0.
        assert not _finite(state)
        if not entry.param_term:
            for u in updates:
                jax.tree.map(
                    lambda x, b: np.testing.assert_array_equal(x[b], 0), u, big
                )
        return
    assert _finite(state), f"{name} state became non-finite for {kind} gradients"
    if kind == "zero" and not entry.param_term:
        assert _all_zero(updates)


@pytest.mark.parametrize("kind", ["huge", "mixed"])
@pytest.mark.parametrize("name", ["clip_by_global_norm", "clip_by_layer_norm"])
def test_norm_clips_rescale_instead_of_zeroing(name, kind):
    """Norms of 1e30 gradients do not overflow: the clipped norm equals max_norm."""
    max_norm = ENTRIES[name].hparams["max_norm"]
    updates, _ = runner(name)(grads_of(kind), PARAMS)
    if name == "clip_by_global_norm":
        norms = [jaxnn.global_norm(updates[-1])]
    else:  # the leaf `w` holds the huge elements in both kinds
        norms = [jaxnn.global_norm(updates[-1]["w"])]
    for n in norms:
        assert 0.99 * max_norm < float(n) <= max_norm * (1.0 + 1e-5)


def test_clip_by_value_clips_infinities():
    max_abs = ENTRIES["clip_by_value"].hparams["max_abs"]
    g = grads_of("+inf")
    updates, _ = runner("clip_by_value")(g, PARAMS)
    assert float(updates[0]["w"][0, 0]) == max_abs
    updates, _ = runner("clip_by_value")(grads_of("-inf"), PARAMS)
    assert float(updates[0]["w"][0, 0]) == -max_abs


@pytest.mark.parametrize("kind", NONFINITE_KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_gradients_are_not_masked(name, kind):
    """Without skip_nonfinite, NaN/±inf reach the updates (nothing hides them)."""
    updates, _ = runner(name)(grads_of(kind), PARAMS)
    if name == "clip_by_value" and kind != "nan":
        assert _finite(updates)
    else:
        assert not _finite(updates)


@functools.cache
def skip_runner(name):
    """skip_nonfinite(tx): one finite step, then one step with the given grads."""
    tx = jaxnn.skip_nonfinite(ENTRIES[name].make())

    @jax.jit
    def run(finite, grads, params):
        _, state = tx.update(finite, tx.init(params), params)
        updates, new_state = tx.update(grads, state, params)
        return state, updates, new_state

    return run


@pytest.mark.parametrize("kind", NONFINITE_KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_skip_nonfinite_protects_state(name, kind):
    before, updates, after = skip_runner(name)(
        grads_of("mixed"), grads_of(kind), PARAMS
    )
    assert _all_zero(updates)
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
        after.inner_state,
        before.inner_state,
    )
    assert int(after.total_skipped) == 1 and int(after.consecutive) == 1


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_tiny_low_precision(dtype):
    """1e-30 (normal in bfloat16, 0 in float16) stays finite for every transform.

    All transforms run in one jitted function per dtype (one compilation).
    """
    params = jax.tree.map(lambda p: p.astype(dtype), PARAMS)
    grads = grads_of("tiny", dtype)
    txs = {name: entry.make() for name, entry in ENTRIES.items()}

    @jax.jit
    def run(grads, params):
        out = {}
        for name, tx in txs.items():
            state = tx.init(params)
            for _ in range(STEPS):
                u, state = tx.update(grads, state, params)
            out[name] = (u, state)
        return out

    for name, (u, state) in run(grads, params).items():
        assert _finite(u) and _finite(state), name
        assert all(x.dtype == dtype for x in jax.tree.leaves(u)), name
