"""Clipping transforms against optax and a NumPy float64 implementation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests.helpers import TOL, assert_trees_close, counting_jit, random_tree

SEEDS_AND_SCALES = [(0, 1e-3), (1, 1.0), (2, 30.0)]


def _np(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def np_global_norm(tree):
    return np.sqrt(sum(np.sum(x**2) for x in jax.tree.leaves(_np(tree))))


def np_clip_by_global_norm(tree, c):
    n = np_global_norm(tree)
    return jax.tree.map(lambda x: x * c / n if n > c else x, _np(tree))


def np_clip_by_layer_norm(tree, c):
    def leaf(x):
        n = np.sqrt(np.sum(x**2))
        return x * c / n if n > c else x

    return jax.tree.map(leaf, _np(tree))


def np_unitwise_norm(x):
    if np.squeeze(x).ndim <= 1:
        axes = None
    elif x.ndim in (2, 3):
        axes = (0,)
    else:
        axes = tuple(range(x.ndim - 1))
    return np.broadcast_to(np.sqrt(np.sum(x**2, axis=axes, keepdims=True)), x.shape)


def np_agc(grads, params, clipping, eps):
    def leaf(g, p):
        g_norm = np_unitwise_norm(g)
        limit = clipping * np.maximum(np_unitwise_norm(p), eps)
        return np.where(g_norm > limit, g * limit / np.maximum(g_norm, 1e-300), g)

    return jax.tree.map(leaf, _np(grads), _np(params))


@pytest.mark.parametrize(("seed", "scale"), SEEDS_AND_SCALES)
@pytest.mark.parametrize("max_abs", [0.0, 0.01, 0.5, 100.0])
def test_clip_by_value(seed, scale, max_abs):
    g = random_tree(seed, scale=scale)
    tx = jaxnn.clip_by_value(max_abs)
    out, state = jax.jit(tx.update)(g, tx.init(g))
    assert_trees_close(
        out, jax.tree.map(lambda x: np.clip(x, -max_abs, max_abs), _np(g))
    )
    ref, _ = optax.clip(max_abs).update(g, optax.clip(max_abs).init(g))
    assert_trees_close(out, ref, **TOL["exact"])
    np.testing.assert_allclose(state.norm, np_global_norm(g), **TOL["roundings"])


@pytest.mark.parametrize(("seed", "scale"), SEEDS_AND_SCALES)
@pytest.mark.parametrize("max_norm", [0.01, 1.0, 10.0, 1e4])
def test_clip_by_global_norm(seed, scale, max_norm):
    g = random_tree(seed, scale=scale)
    tx = jaxnn.clip_by_global_norm(max_norm)
    out, state = jax.jit(tx.update)(g, tx.init(g))
    assert_trees_close(out, np_clip_by_global_norm(g, max_norm))
    ref_tx = optax.clip_by_global_norm(max_norm)
    ref, _ = ref_tx.update(g, ref_tx.init(g))
    assert_trees_close(out, ref)
    np.testing.assert_allclose(state.norm, np_global_norm(g), **TOL["roundings"])
    assert jaxnn.global_norm(out) <= max_norm * (1 + 1e-6)


@pytest.mark.parametrize(("seed", "scale"), SEEDS_AND_SCALES)
@pytest.mark.parametrize("max_norm", [0.01, 1.0, 10.0])
def test_clip_by_layer_norm(seed, scale, max_norm):
    g = random_tree(seed, scale=scale)
    tx = jaxnn.clip_by_layer_norm(max_norm)
    out, state = jax.jit(tx.update)(g, tx.init(g))
    assert_trees_close(out, np_clip_by_layer_norm(g, max_norm))
    assert_trees_close(
        state.layer_norms,
        np.stack([np.sqrt(np.sum(x**2)) for x in jax.tree.leaves(_np(g))]),
    )
    np.testing.assert_allclose(state.norm, np_global_norm(g), **TOL["roundings"])


@pytest.mark.parametrize(("seed", "scale"), SEEDS_AND_SCALES)
@pytest.mark.parametrize(("clipping", "eps"), [(0.01, 1e-3), (0.1, 1e-3), (1.0, 0.5)])
def test_adaptive_grad_clip(seed, scale, clipping, eps):
    g = random_tree(seed, scale=scale)
    p = random_tree(seed + 10)
    p["dense"]["b"] = jnp.zeros_like(p["dense"]["b"])  # exercises the eps floor
    tx = jaxnn.adaptive_grad_clip(clipping, eps)
    out, state = jax.jit(tx.update)(g, tx.init(p), p)
    assert_trees_close(out, np_agc(g, p, clipping, eps))
    ref_tx = optax.adaptive_grad_clip(clipping, eps)
    ref, _ = ref_tx.update(g, ref_tx.init(p), p)
    assert_trees_close(out, ref)
    np.testing.assert_allclose(state.norm, np_global_norm(g), **TOL["roundings"])


@pytest.mark.parametrize(
    "make",
    [
        lambda: jaxnn.clip_by_value(0.1),
        lambda: jaxnn.clip_by_global_norm(1.0),
        lambda: jaxnn.clip_by_layer_norm(1.0),
        lambda: jaxnn.adaptive_grad_clip(0.05),
    ],
)
def test_eager_equals_jit(make):
    g, p = random_tree(0, scale=3.0), random_tree(1)
    tx = make()
    eager = tx.update(g, tx.init(p), p)
    jitted = jax.jit(tx.update)(g, tx.init(p), p)
    assert_trees_close(eager, jitted)


@pytest.mark.parametrize(
    "shape", [(), (7,), (1, 7), (4, 5), (3, 4, 5), (3, 3, 4, 8), (2, 2, 2, 3, 4)]
)
def test_unitwise_norm_units(shape):
    x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
    ours = jaxnn.unitwise_norm(x)
    assert ours.shape == x.shape
    np.testing.assert_allclose(
        ours, np_unitwise_norm(np.asarray(x, np.float64)), **TOL["roundings"]
    )
    np.testing.assert_allclose(
        ours, optax.transforms.unitwise_norm(x), **TOL["roundings"]
    )


def test_unitwise_norm_rejects_rank_6():
    with pytest.raises(ValueError, match="rank <= 5"):
        jaxnn.unitwise_norm(jnp.ones((1, 2, 1, 2, 1, 2)))


def _fp16_grads():
    # Squares of 1000 overflow float16 (max 65504) but the clipped result is tame.
    return {"w": jnp.full((100,), 1000.0, jnp.float16), "b": jnp.ones(4, jnp.float16)}


def test_global_norm_clip_survives_float16_overflow():
    g = _fp16_grads()
    tx = jaxnn.clip_by_global_norm(1.0)
    out, state = tx.update(g, tx.init(g))
    assert out["w"].dtype == jnp.float16
    assert_trees_close(out, np_clip_by_global_norm(g, 1.0), dtype=jnp.float16)
    np.testing.assert_allclose(state.norm, np_global_norm(g), **TOL["roundings"])


def test_optax_global_norm_clip_overflows_in_float16():
    """The weakness the test above guards against: optax sums squares in float16."""
    g = _fp16_grads()
    tx = optax.clip_by_global_norm(1.0)
    out, _ = tx.update(g, tx.init(g))
    expected = np_clip_by_global_norm(g, 1.0)
    assert not np.allclose(
        np.asarray(out["w"], np.float64), expected["w"], **TOL["distinct"]
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: jaxnn.clip_by_global_norm(0.0),
        lambda: jaxnn.clip_by_layer_norm(0.0),
        lambda: jaxnn.adaptive_grad_clip(0.0, eps=0.0),
        lambda: jaxnn.clip_by_value(0.0),
    ],
)
def test_zero_threshold_with_zero_gradients_gives_zeros(make, maybe_jit):
    g = jax.tree.map(jnp.zeros_like, random_tree(0))
    tx = make()
    out, state = maybe_jit(tx.update)(g, tx.init(g), g)
    for leaf in jax.tree.leaves(out):
        np.testing.assert_array_equal(leaf, 0.0)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state))


def test_optax_gives_nan_for_zero_norm_and_zero_threshold():
    """The 0/0 that jaxnn avoids (documents why the test above exists)."""
    g = {"w": jnp.zeros(3)}
    tx = optax.clip_by_global_norm(0.0)
    out, _ = tx.update(g, tx.init(g))
    assert np.all(np.isnan(out["w"]))


def test_pre_clip_norm_is_readable_from_chain_state_inside_jit():
    g = random_tree(1, scale=5.0)
    tx = jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.sgd(0.1))

    @jax.jit
    def step(grads, state):
        _, state = tx.update(grads, state)
        return state[0].norm

    np.testing.assert_allclose(
        step(g, tx.init(g)), np_global_norm(g), **TOL["roundings"]
    )


@pytest.mark.parametrize(
    ("make", "reference"),
    [
        (jaxnn.clip_by_value, lambda g: jax.tree.map(lambda x: np.clip(x, -1, 1), g)),
        (jaxnn.clip_by_global_norm, lambda g: np_clip_by_global_norm(g, 1.0)),
        (jaxnn.clip_by_layer_norm, lambda g: np_clip_by_layer_norm(g, 1.0)),
    ],
)
def test_clipped_bfloat16_keeps_dtype(make, reference):
    g = random_tree(2, dtype=jnp.bfloat16, scale=10.0)
    tx = make(1.0)
    out, state = tx.update(g, tx.init(g))
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(out))
    assert state.norm.dtype == jnp.float32
    assert_trees_close(out, reference(_np(g)), dtype=jnp.bfloat16)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda v: jaxnn.clip_by_value(v), "max_abs"),
        (lambda v: jaxnn.clip_by_global_norm(v), "max_norm"),
        (lambda v: jaxnn.clip_by_layer_norm(v), "max_norm"),
        (lambda v: jaxnn.adaptive_grad_clip(v), "clipping"),
        (lambda v: jaxnn.adaptive_grad_clip(0.1, eps=v), "eps"),
    ],
)
@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_bad_thresholds_are_rejected_with_the_argument_name(make, name, bad):
    with pytest.raises(ValueError, match=rf"{name} must be in \[0\.0, inf\], got"):
        make(bad)


def test_traced_threshold_is_accepted():
    g = random_tree(3, scale=10.0)

    @jax.jit
    def clip(c, grads):
        tx = jaxnn.clip_by_global_norm(c)
        return tx.update(grads, tx.init(grads))[0]

    assert_trees_close(clip(2.0, g), np_clip_by_global_norm(g, 2.0))


def test_agc_needs_matching_params():
    g = random_tree(4)
    tx = jaxnn.adaptive_grad_clip(0.1)
    with pytest.raises(ValueError, match="needs the params"):
        tx.update(g, tx.init(g))
    with pytest.raises(ValueError, match="params does not match the structure"):
        tx.update(g, tx.init(g), {"other": jnp.ones(3)})


def test_layer_norm_state_mismatch_is_reported():
    tx = jaxnn.clip_by_layer_norm(1.0)
    state = tx.init({"a": jnp.ones(3)})
    with pytest.raises(ValueError, match=r"state\.layer_norms does not match"):
        tx.update({"a": jnp.ones(3), "b": jnp.ones(2)}, state)


def _trajectory(tx, apply, steps=20):
    target = random_tree(5)

    def loss(p):
        return sum(
            jnp.sum(jnp.cosh(a - b))
            for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(target), strict=True)
        )

    params = jax.tree.map(lambda x: 3.0 * jnp.ones_like(x), target)
    state = tx.init(params)
    update, grad = jax.jit(tx.update), jax.jit(jax.grad(loss))
    for _ in range(steps):
        updates, state = update(grad(params), state, params)
        params = apply(params, updates)
    return params


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            lambda: jaxnn.clip_by_global_norm(1.0),
            lambda: optax.clip_by_global_norm(1.0),
        ),
        (lambda: jaxnn.clip_by_value(0.3), lambda: optax.clip(0.3)),
        (
            lambda: jaxnn.adaptive_grad_clip(0.05),
            lambda: optax.adaptive_grad_clip(0.05),
        ),
    ],
)
def test_interop_both_directions(ours, theirs):
    reference = _trajectory(
        optax.chain(theirs(), optax.adam(0.05)), optax.apply_updates
    )
    # A jaxnn clip inside optax.chain.
    mixed_a = _trajectory(optax.chain(ours(), optax.adam(0.05)), optax.apply_updates)
    # An optax transform (and an optax clip) inside jaxnn.chain.
    mixed_b = _trajectory(jaxnn.chain(ours(), optax.adam(0.05)), jaxnn.apply_updates)
    mixed_c = _trajectory(jaxnn.chain(theirs(), optax.adam(0.05)), jaxnn.apply_updates)
    for got in (mixed_a, mixed_b, mixed_c):
        assert_trees_close(got, reference, **TOL["trajectory"])


def test_clipping_never_returns_non_finite_for_finite_input():
    g = {
        "tiny": jnp.full((3,), 1e-30),
        "huge": jnp.full((3,), 1e30),
        "zero": jnp.zeros(2),
    }
    for tx in (
        jaxnn.clip_by_value(1.0),
        jaxnn.clip_by_global_norm(1.0),
        jaxnn.clip_by_layer_norm(1.0),
        jaxnn.adaptive_grad_clip(0.1),
    ):
        out, _ = tx.update(g, tx.init(g), g)
        assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(out)), tx


@pytest.mark.parametrize(
    "make",
    [lambda: jaxnn.clip_by_layer_norm(1.0), lambda: jaxnn.adaptive_grad_clip(0.1)],
)
def test_no_retrace_on_second_update(make):
    g = random_tree(6)
    tx = make()

    @counting_jit
    def step(grads, state):
        return tx.update(grads, state, grads)

    state = tx.init(g)
    for _ in range(3):
        _, state = step(g, state)
    assert step.traces == 1


@pytest.mark.parametrize("magnitude", [1e-30, 1e30])
def test_global_norm_clip_keeps_direction_at_extreme_magnitudes(magnitude):
    g = {"a": jnp.asarray([3.0, -4.0]) * magnitude, "b": jnp.full((2,), magnitude)}
    tx = jaxnn.clip_by_global_norm(0.0 if magnitude < 1 else 1.0)
    out, _ = tx.update(g, tx.init(g))
    expected = np_clip_by_global_norm(g, 0.0 if magnitude < 1 else 1.0)
    assert_trees_close(out, expected)


def test_agc_on_zero_size_leaves_matches_optax():
    # Unit norms of a (2, 0) leaf have shape (1, 0): nothing to combine.
    for p in ({"a": jnp.zeros((2, 0))}, {"a": jnp.zeros((2, 0)), "b": jnp.ones(3)}):
        tx, ref = jaxnn.adaptive_grad_clip(1.0), optax.adaptive_grad_clip(1.0)
        out, state = tx.update(p, tx.init(p), p)
        expected, _ = ref.update(p, ref.init(p), p)
        assert_trees_close(out, expected)
        np.testing.assert_allclose(state.norm, np_global_norm(p), **TOL["roundings"])
