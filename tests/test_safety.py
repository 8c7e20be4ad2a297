"""skip_nonfinite: NaN/inf steps are skipped and never reach the inner state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests.helpers import TOL, assert_trees_close, random_tree


def _grads(seed, bad=None):
    g = random_tree(seed)
    if bad is not None:
        g["dense"]["w"] = g["dense"]["w"].at[1, 2].set(bad)
    return g


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
def test_non_finite_step_is_skipped_and_state_kept(bad, maybe_jit):
    params = random_tree(0)
    tx = jaxnn.skip_nonfinite(optax.adam(1e-2))
    update = maybe_jit(tx.update)
    state = tx.init(params)
    _, state = update(_grads(1), state, params)
    before = state
    updates, state = update(_grads(2, bad), state, params)
    for leaf in jax.tree.leaves(updates):
        np.testing.assert_array_equal(leaf, 0.0)
    _assert_trees_equal(state.inner_state, before.inner_state)
    assert int(state.consecutive) == 1 and int(state.total_skipped) == 1
    _, state = update(_grads(3), state, params)
    assert int(state.consecutive) == 0 and int(state.total_skipped) == 1


def test_protected_adam_equals_adam_on_the_finite_steps_only():
    params0 = random_tree(4)
    sequence = [_grads(10 + i, jnp.nan if i in (2, 5, 6) else None) for i in range(10)]

    def run(tx, grads_seq):
        params, state = params0, tx.init(params0)
        for g in grads_seq:
            updates, state = jax.jit(tx.update)(g, state, params)
            params = jaxnn.apply_updates(params, updates)
        return params, state

    ours, state = run(jaxnn.skip_nonfinite(optax.adam(1e-2)), sequence)
    finite_only = [g for i, g in enumerate(sequence) if i not in (2, 5, 6)]
    reference, _ = run(optax.adam(1e-2), finite_only)
    assert_trees_close(ours, reference)
    assert int(state.total_skipped) == 3
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(ours))


def test_max_consecutive_applies_the_update_after_k_skips():
    params = {"w": jnp.ones(3)}
    tx = jaxnn.skip_nonfinite(jaxnn.sgd(0.1, momentum=0.9), max_consecutive=2)
    state = tx.init(params)
    good, bad = {"w": jnp.ones(3)}, {"w": jnp.array([1.0, jnp.inf, 1.0])}
    _, state = tx.update(good, state)
    applied = []
    for _ in range(4):
        updates, state = tx.update(bad, state)
        applied.append(not np.all(np.asarray(updates["w"]) == 0))
    # Two skips, then the inner update goes through while the run stays non-finite.
    assert applied == [False, False, True, True]
    assert int(state.consecutive) == 4 and int(state.total_skipped) == 2
    assert np.isinf(np.asarray(state.inner_state[0].trace["w"])).any()
    _, state = tx.update(good, state)
    assert int(state.consecutive) == 0


def test_max_consecutive_zero_never_skips():
    tx = jaxnn.skip_nonfinite(jaxnn.gd(1.0), max_consecutive=0)
    updates, state = tx.update({"w": jnp.array([jnp.nan])}, tx.init({"w": jnp.ones(1)}))
    assert np.isnan(updates["w"]).all() and int(state.total_skipped) == 0


def test_plain_optax_inner_and_extra_args():
    params = random_tree(5)
    tx = jaxnn.skip_nonfinite(optax.clip(0.1))
    out, _ = tx.update(_grads(6), tx.init(params), params, unknown_kwarg=1)
    ref, _ = optax.clip(0.1).update(_grads(6), optax.EmptyState())
    assert_trees_close(out, ref, **TOL["exact"])


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_max_consecutive_validation(value, error):
    with pytest.raises(error, match="max_consecutive"):
        jaxnn.skip_nonfinite(jaxnn.gd(0.1), max_consecutive=value)


def test_all_finite():
    assert bool(jaxnn.all_finite({"a": jnp.ones(2), "b": [jnp.zeros((0,))]}))
    assert not bool(jaxnn.all_finite({"a": jnp.array([1.0, jnp.nan])}))
    assert bool(jaxnn.all_finite({}))


def test_no_retrace_and_state_dtypes_stable():
    params = random_tree(7)
    tx = jaxnn.skip_nonfinite(
        jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.gd(0.1))
    )
    traces = []

    @jax.jit
    def step(g, s):
        traces.append(None)
        return tx.update(g, s, params)

    state = tx.init(params)
    dtypes = jax.tree.map(lambda x: x.dtype, state)
    for i in range(4):
        _, state = step(_grads(i, jnp.nan if i == 1 else None), state)
    assert len(traces) == 1
    assert jax.tree.map(lambda x: x.dtype, state) == dtypes
