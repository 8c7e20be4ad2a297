"""Building blocks: scale_by_rss/rms/adam, trace, weight decay, L1, masked.

Each against its optax twin (eager and jitted) or a NumPy formula; plus saturating
counts, structure checks, and composition with optax in both directions.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests.helpers import TOL, assert_trees_close, random_tree

STEPS = 6


def _run(tx, params, steps=STEPS, update=None):
    """Updates for a fixed sequence of random gradients; returns the last updates."""
    state = tx.init(params)
    update = update or tx.update
    for i in range(steps):
        grads = random_tree(100 + i)
        updates, state = update(grads, state, params)
    return updates, state


PAIRS = [
    (lambda: jaxnn.scale_by_rss(), lambda: optax.scale_by_rss()),
    (lambda: jaxnn.scale_by_rss(0.0, 1e-3), lambda: optax.scale_by_rss(0.0, 1e-3)),
    (lambda: jaxnn.scale_by_rms(), lambda: optax.scale_by_rms()),
    (
        lambda: jaxnn.scale_by_rms(0.7, 1e-4, initial_scale=1.0),
        lambda: optax.scale_by_rms(0.7, 1e-4, initial_scale=1.0),
    ),
    (
        lambda: jaxnn.scale_by_rms(0.8, 1e-3, 0.5, centered=True),
        lambda: optax.scale_by_stddev(0.8, 1e-3, 0.5),
    ),
    (lambda: jaxnn.scale_by_adam(), lambda: optax.scale_by_adam()),
    (
        lambda: jaxnn.scale_by_adam(0.5, 0.9, 1e-4, 1e-6),
        lambda: optax.scale_by_adam(0.5, 0.9, 1e-4, 1e-6),
    ),
    (
        lambda: jaxnn.scale_by_adam(0.8, 0.99, nesterov=True),
        lambda: optax.scale_by_adam(0.8, 0.99, nesterov=True),
    ),
    (lambda: jaxnn.trace(0.9), lambda: optax.trace(0.9)),
    (lambda: jaxnn.trace(0.5, nesterov=True), lambda: optax.trace(0.5, nesterov=True)),
]


PAIR_IDS = [
    "rss",
    "rss_zero_init",
    "rms",
    "rms_nondefault",
    "rms_centered",
    "adam",
    "adam_nondefault",
    "nadam",
    "trace",
    "trace_nesterov",
]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=PAIR_IDS)
def test_building_blocks_match_optax(ours, theirs, maybe_jit):
    params = random_tree(0)
    tx_o, tx_t = ours(), theirs()
    u_o, _ = _run(tx_o, params, update=maybe_jit(tx_o.update))
    u_t, _ = _run(tx_t, params, update=maybe_jit(tx_t.update))
    assert_trees_close(u_o, u_t)


def test_adam_state_and_saturating_count():
    params = random_tree(0)
    tx = jaxnn.scale_by_adam()
    _, state = _run(tx, params, steps=3)
    assert state.count.dtype == jnp.int32 and int(state.count) == 3
    top = jnp.iinfo(jnp.int32).max
    state = state._replace(count=jnp.asarray(top, jnp.int32))
    updates, state = jax.jit(tx.update)(random_tree(1), state)
    assert int(state.count) == top
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(updates))


def test_rss_zero_accumulator_gives_zero_update():
    tx = jaxnn.scale_by_rss(initial_accumulator_value=0.0)
    g = {"a": jnp.zeros(3), "b": jnp.ones(2)}
    updates, _ = tx.update(g, tx.init(g))
    np.testing.assert_array_equal(updates["a"], np.zeros(3))
    np.testing.assert_allclose(updates["b"], 1 / np.sqrt(1 + 1e-7), **TOL["roundings"])


@pytest.mark.parametrize(
    "tx",
    [
        jaxnn.scale_by_rss(),
        jaxnn.scale_by_rms(centered=True),
        jaxnn.scale_by_adam(),
        jaxnn.trace(0.9),
        jaxnn.adamw(1e-3),
    ],
)
def test_state_from_other_params_raises_naming_state(tx):
    state = tx.init({"w": jnp.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"state|params"):
        tx.update({"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}, state, None)
    with pytest.raises(ValueError, match=r"shape"):
        tx.update({"w": jnp.zeros((2, 3))}, state, {"w": jnp.zeros((2, 3))})


def test_mu_nu_dtype():
    params = random_tree(0, jnp.bfloat16)
    tx = jaxnn.scale_by_adam(mu_dtype=jnp.float32, nu_dtype="float32")
    updates, state = _run(tx, params, steps=2)
    assert {x.dtype for x in jax.tree.leaves(state.mu)} == {jnp.dtype(jnp.float32)}
    assert {x.dtype for x in jax.tree.leaves(state.nu)} == {jnp.dtype(jnp.float32)}
    # Incoming float32 gradients give float32 updates (their own dtype).
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}


def test_complex_params_with_real_nu_dtype_match_optax():
    """v = E|g|² is real: a real nu_dtype holds it for complex params (optax keeps
    v complex, with a zero imaginary part); the updates equal optax's."""
    params = jax.tree.map(
        lambda x: (x + 1j * jnp.flip(x)).astype(jnp.complex64), random_tree(1)
    )
    grads = jax.tree.map(lambda p: jnp.sin(p) + 0.1, params)
    ours = jaxnn.adam(0.1, nesterov=True, nu_dtype=jnp.float32)
    theirs = optax.adam(0.1, nesterov=True)
    s1, s2 = ours.init(params), theirs.init(params)
    for _ in range(3):
        u1, s1 = ours.update(grads, s1, params)
        u2, s2 = theirs.update(grads, s2, params)
        for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True):
            assert a.dtype == b.dtype == jnp.complex64
            np.testing.assert_allclose(a, b, **TOL["reduction"])
    assert {x.dtype for x in jax.tree.leaves(s1[0].nu)} == {jnp.dtype(jnp.float32)}
    assert {x.dtype for x in jax.tree.leaves(s1[0].mu)} == {jnp.dtype(jnp.complex64)}


# --- weight decay, L1, masks ---------------------------------------------------------


def _np(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


MASK_TREE = {
    "dense": {"w": True, "b": False},
    "conv": (True, False),
    "stack": [True, False],
}


def _mask_fn(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


@pytest.mark.parametrize("mask", [None, MASK_TREE, _mask_fn])
@pytest.mark.parametrize("kind", ["decay", "l1"])
def test_decay_and_l1_formula_and_masks(kind, mask, maybe_jit):
    params, grads = random_tree(0), random_tree(1)
    params["stack"][0] = params["stack"][0].at[0, 0, 0].set(0.0)  # sign(0) = 0
    lam = 0.3
    if kind == "decay":
        tx, term = jaxnn.add_decayed_weights(lam, mask), lambda p: p
    else:
        tx, term = jaxnn.add_l1(lam, mask), np.sign
    updates, _ = maybe_jit(tx.update)(grads, tx.init(params), params)
    mask_tree = jax.tree.map(lambda p: True, params)
    if mask is not None:
        mask_tree = mask(params) if callable(mask) else mask
    expected = jax.tree.map(
        lambda g, p, m: g + lam * term(p) if m else g,
        _np(grads),
        _np(params),
        mask_tree,
    )
    assert_trees_close(updates, expected)
    if kind == "decay":
        ref = optax.add_decayed_weights(lam, mask)
        assert_trees_close(updates, ref.update(grads, ref.init(params), params)[0])


def test_decay_schedule_and_needs_params():
    tx = jaxnn.add_decayed_weights(lambda count: 0.1 * (count + 1))
    p = jnp.ones(3)
    state = tx.init(p)
    u0, state = tx.update(jnp.zeros(3), state, p)
    u1, state = tx.update(jnp.zeros(3), state, p)
    np.testing.assert_allclose(u0, 0.1 * np.ones(3), **TOL["roundings"])
    np.testing.assert_allclose(u1, 0.2 * np.ones(3), **TOL["roundings"])
    with pytest.raises(ValueError, match="params"):
        jaxnn.add_l1(0.1).update(p, jaxnn.add_l1(0.1).init(p), None)


@pytest.mark.parametrize(
    "mask", [MASK_TREE, _mask_fn, {"dense": True, "conv": False, "stack": True}]
)
def test_masked_matches_optax(mask, maybe_jit):
    params = random_tree(0)
    ours = jaxnn.masked(jaxnn.scale_by_adam(), mask)
    theirs = optax.masked(optax.scale_by_adam(), mask)
    u_o, s_o = _run(ours, params, update=maybe_jit(ours.update))
    u_t, s_t = _run(theirs, params, update=maybe_jit(theirs.update))
    assert_trees_close(u_o, u_t)
    # Unselected leaves pass through: the last raw gradients come out unchanged.
    last = random_tree(100 + STEPS - 1)
    mask_tree = mask(params) if callable(mask) else mask
    kept = jax.tree.map(lambda m, g: g if not m else None, mask_tree, last)
    out = jax.tree.map(lambda m, u: u if not m else None, mask_tree, u_o)
    chex.assert_trees_all_equal(out, kept)
    # The inner state holds only the selected leaves, as optax's.
    assert len(jax.tree.leaves(s_o.inner_state.mu)) == len(
        jax.tree.leaves(s_t.inner_state.mu)
    )


def test_mask_not_matching_params_raises():
    tx = jaxnn.masked(jaxnn.scale_by_adam(), {"w": True})
    with pytest.raises(ValueError, match="mask"):
        tx.init({"w": jnp.zeros(2), "b": jnp.zeros(2)})


# --- composition with optax, validation -----------------------------------------------


def test_composes_with_optax_both_ways():
    params = random_tree(0)
    a = optax.chain(
        jaxnn.scale_by_adam(), optax.add_decayed_weights(0.1), jaxnn.scale(-0.01)
    )
    b = jaxnn.chain(
        optax.scale_by_adam(), jaxnn.add_decayed_weights(0.1), optax.scale(-0.01)
    )
    ref = optax.adamw(0.01, weight_decay=0.1)
    u_ref, _ = _run(ref, params)
    assert_trees_close(_run(a, params)[0], u_ref)
    assert_trees_close(_run(b, params)[0], u_ref)


BAD = [
    (
        jaxnn.scale_by_rss,
        dict(initial_accumulator_value=-1.0),
        "initial_accumulator_value",
    ),
    (jaxnn.scale_by_rss, dict(eps=-1.0), "eps"),
    (jaxnn.scale_by_rms, dict(decay=1.0), "decay"),
    (jaxnn.scale_by_rms, dict(decay=-0.1), "decay"),
    (jaxnn.scale_by_rms, dict(initial_scale=-1.0), "initial_scale"),
    (jaxnn.scale_by_adam, dict(b1=1.0), "b1"),
    (jaxnn.scale_by_adam, dict(b2=1.5), "b2"),
    (jaxnn.scale_by_adam, dict(eps_root=-1.0), "eps_root"),
    (jaxnn.trace, dict(decay=1.0), "decay"),
    (jaxnn.add_decayed_weights, dict(weight_decay=-0.1), "weight_decay"),
    (jaxnn.add_l1, dict(strength=-0.1), "strength"),
]


@pytest.mark.parametrize(("factory", "kwargs", "arg"), BAD)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        factory(**kwargs)


def test_non_floating_moment_dtype_is_a_type_error():
    with pytest.raises(TypeError, match=r"\bnu_dtype\b"):
        jaxnn.scale_by_adam(nu_dtype=jnp.int8)
