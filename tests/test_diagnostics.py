"""Tests for jaxnn.diagnostics: gradient_norms and gradient_report against NumPy."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests.helpers import TOL, assert_trees_close, counting_jit, random_tree


def np_norm(x):
    x = np.asarray(x, np.float64)
    return np.sqrt(np.sum(np.abs(x) ** 2))


def mlp_grads(depth, width, activation, w_scale, seed=0, batch=16):
    """Gradients of a depth-layer MLP, as a list of {"w", "b"} in network order.

    The hidden layers run under `lax.scan` over stacked weights so a 30-layer net
    compiles in a moment; the report gets the usual list of per-layer dicts.
    """
    kw, kx, ky = jax.random.split(jax.random.key(seed), 3)
    stacked = {
        "w": jax.random.normal(kw, (depth, width, width)) * w_scale(width),
        "b": jnp.zeros((depth, width)),
    }
    x = jax.random.normal(kx, (batch, width))
    y = jax.random.normal(ky, (batch, width))

    def loss(p):
        def layer(h, wb):
            w, b = wb
            return activation(h @ w + b[None, :]), None

        h, _ = jax.lax.scan(layer, x, (p["w"][:-1], p["b"][:-1]))
        out = h @ p["w"][-1] + p["b"][-1][None, :]
        return jnp.mean((out - y) ** 2)

    def unstack(t):
        # In NumPy: 2·depth slices as outputs of the jitted program would multiply
        # its compile time by ten.
        t = jax.tree.map(np.asarray, t)
        return [
            {"w": jnp.asarray(t["w"][i]), "b": jnp.asarray(t["b"][i])}
            for i in range(depth)
        ]

    return unstack(jax.jit(jax.grad(loss))(stacked)), unstack(stacked)


# --- gradient_norms -------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_gradient_norms_match_numpy(maybe_jit, dtype):
    tree = random_tree(0, dtype=dtype, scale=3.0)
    norms = maybe_jit(jaxnn.gradient_norms)(tree)
    expected = jax.tree.map(np_norm, tree)
    chex.assert_trees_all_equal_structs(norms, tree)
    assert_trees_close(norms, expected, dtype=jnp.float32)
    for n in jax.tree.leaves(norms):
        assert n.shape == () and n.dtype == jnp.float32


def test_gradient_norms_float16_does_not_overflow():
    # 1e3² · 1000 elements = 1e9 overflows float16 (max 65504) if summed in it.
    tree = {"g": jnp.full((1000,), 1e3, jnp.float16)}
    norms = jaxnn.gradient_norms(tree)
    np.testing.assert_allclose(norms["g"], np_norm(tree["g"]), **TOL["roundings"])
    assert np.isfinite(norms["g"])


def test_gradient_norms_keep_none_leaves():
    tree = {"a": jnp.ones((2, 2)), "b": None}
    norms = jaxnn.gradient_norms(tree)
    assert norms["b"] is None
    np.testing.assert_allclose(norms["a"], 2.0)


def test_gradient_norms_equal_global_norm_leafwise():
    tree = random_tree(1)
    norms = jaxnn.gradient_norms(tree)
    np.testing.assert_allclose(
        np.sqrt(sum(float(n) ** 2 for n in jax.tree.leaves(norms))),
        jaxnn.global_norm(tree),
        **TOL["roundings"],
    )


# --- gradient_report: numbers -------------------------------------------------


def test_report_list_of_layers_matches_numpy(maybe_jit):
    rng = np.random.default_rng(0)
    grads = [
        {"w": jnp.asarray(rng.normal(size=(4, 3)) * s, jnp.float32), "b": jnp.ones(3)}
        for s in (1e-3, 0.1, 10.0)
    ]
    report = maybe_jit(jaxnn.gradient_report)(grads)
    layer = [np.sqrt(np_norm(g["w"]) ** 2 + np_norm(g["b"]) ** 2) for g in grads]
    assert report.layer_norms.shape == (3,)
    np.testing.assert_allclose(report.layer_norms, layer, **TOL["roundings"])
    np.testing.assert_allclose(report.global_norm, np.sqrt(np.sum(np.square(layer))))
    np.testing.assert_allclose(report.min_norm, min(layer), **TOL["roundings"])
    np.testing.assert_allclose(report.max_norm, max(layer), **TOL["roundings"])
    np.testing.assert_allclose(
        report.attenuation, layer[0] / layer[-1], **TOL["roundings"]
    )
    assert report.relative_norms is None
    assert report.num_nonfinite == 0 and report.num_nonfinite.dtype == jnp.int32
    assert report.vanishing.dtype == jnp.bool_ and report.exploding.dtype == jnp.bool_


def test_report_dict_uses_tree_leaves_order():
    grads = {"b_last": jnp.full((2,), 3.0), "a_first": jnp.full((4,), 0.5)}
    report = jaxnn.gradient_report(grads)
    # jax.tree.leaves sorts dict keys: a_first, then b_last.
    np.testing.assert_allclose(
        report.layer_norms, [1.0, np.sqrt(18.0)], **TOL["roundings"]
    )
    np.testing.assert_allclose(
        report.attenuation, 1.0 / np.sqrt(18.0), **TOL["roundings"]
    )


def test_report_single_array_is_one_layer():
    report = jaxnn.gradient_report(jnp.array([3.0, 4.0]))
    np.testing.assert_allclose(report.layer_norms, [5.0])
    np.testing.assert_allclose(report.attenuation, 1.0)


def test_report_skips_layers_without_arrays():
    grads = [{"w": jnp.ones(4)}, {}, (), {"w": jnp.ones(1)}]
    report = jaxnn.gradient_report(grads)
    np.testing.assert_allclose(report.layer_norms, [2.0, 1.0])


def test_report_relative_norms_match_numpy():
    rng = np.random.default_rng(3)
    params = [{"w": jnp.asarray(rng.normal(size=(5, 5)), jnp.float32)} for _ in "ab"]
    params.append({"w": jnp.zeros((5, 5))})  # norm floored at eps
    grads = [{"w": jnp.asarray(rng.normal(size=(5, 5)), jnp.float32)} for _ in "abc"]
    report = jaxnn.gradient_report(grads, params, eps=1e-3)
    expected = [
        np_norm(g["w"]) / max(np_norm(p["w"]), 1e-3)
        for g, p in zip(grads, params, strict=True)
    ]
    np.testing.assert_allclose(report.relative_norms, expected, **TOL["roundings"])


def test_report_counts_nonfinite_and_flags_exploding():
    grads = [
        {"w": jnp.array([1.0, jnp.nan, 2.0])},
        {"w": jnp.array([jnp.inf, -jnp.inf, 0.5])},
    ]
    report = jax.jit(jaxnn.gradient_report)(grads)
    assert int(report.num_nonfinite) == 3
    assert bool(report.exploding)
    assert not bool(report.vanishing)  # NaN comparisons are False, not vanishing


def test_report_float16_large_gradients_are_finite():
    grads = [jnp.full((1000,), 1e3, jnp.float16), jnp.full((10,), 1.0, jnp.float16)]
    report = jaxnn.gradient_report(grads, exploding_threshold=1e6, ratio_threshold=1e5)
    assert report.global_norm.dtype == jnp.float32
    np.testing.assert_allclose(report.layer_norms[0], np.sqrt(1e9), **TOL["roundings"])
    assert not bool(report.exploding)


# --- gradient_report: flags -----------------------------------------------------


def test_30_layer_sigmoid_small_init_is_vanishing():
    grads, _ = mlp_grads(30, 32, jax.nn.sigmoid, lambda n: 0.05 / np.sqrt(3))
    # Eager: the report's jitted core is compiled once for the 30-layer structure
    # and shared with the two tests below (jit is tested on its own further down).
    report = jaxnn.gradient_report(grads)
    assert bool(report.vanishing)
    assert not bool(report.exploding)
    assert float(report.attenuation) < 1e-6


def test_relu_he_init_is_healthy():
    grads, params = mlp_grads(30, 32, jax.nn.relu, lambda n: np.sqrt(2.0 / n))
    report = jaxnn.gradient_report(grads)
    assert not bool(report.vanishing)
    assert not bool(report.exploding)
    assert 1e-2 < float(report.attenuation) < 1e2
    assert not bool(jaxnn.gradient_report(grads, params).vanishing)


def test_large_init_linear_chain_is_exploding():
    grads, _ = mlp_grads(30, 32, lambda h: h, lambda n: 1.5 / np.sqrt(n))
    report = jaxnn.gradient_report(grads)
    assert bool(report.exploding)
    assert not bool(report.vanishing)
    # Weight gradients h_{k-1}ᵀ δ_k of a linear chain: h grows forward as δ grows
    # backward, so every layer's norm is huge, not only the first one's.
    assert float(report.min_norm) > 1e3


def bias_chain_grads(a, depth):
    """h_k = a · h_{k-1} + b_k, L = h_depth: dL/db_k = a ** (depth - k)."""

    def loss(biases):
        h = jnp.array(1.0)
        for b in biases:
            h = a * h + b
        return h

    return jax.grad(loss)([jnp.zeros(()) for _ in range(depth)])


@pytest.mark.parametrize(
    "a, depth, vanishing, exploding",
    [(0.5, 11, True, False), (1.5, 11, False, False), (1.5, 21, False, True)],
)
def test_linear_chain_gives_the_notes_arithmetic(a, depth, vanishing, exploding):
    # First over last layer = a ** (depth - 1): 0.5¹⁰ ≈ 0.001, 1.5¹⁰ ≈ 58.
    report = jaxnn.gradient_report(bias_chain_grads(a, depth))
    np.testing.assert_allclose(report.attenuation, a ** (depth - 1), **TOL["roundings"])
    np.testing.assert_allclose(
        report.layer_norms,
        [a ** (depth - k) for k in range(1, depth + 1)],
        **TOL["roundings"],
    )
    assert bool(report.vanishing) == vanishing
    assert bool(report.exploding) == exploding


def test_thresholds_are_overridable():
    grads = [jnp.full((4,), 1e-3), jnp.full((4,), 1.0)]
    default = jaxnn.gradient_report(grads)
    assert not bool(default.vanishing) and not bool(default.exploding)
    assert bool(jaxnn.gradient_report(grads, vanishing_threshold=1e-2).vanishing)
    assert bool(jaxnn.gradient_report(grads, ratio_threshold=100.0).vanishing)
    assert bool(jaxnn.gradient_report(grads, exploding_threshold=1.0).exploding)


def test_thresholds_may_be_traced():
    grads = [jnp.full((4,), 1e-3), jnp.full((4,), 1.0)]

    @jax.jit
    def f(thr):
        return jaxnn.gradient_report(grads, vanishing_threshold=thr).vanishing

    assert bool(f(1e-2)) and not bool(f(1e-4))


# --- jit ---------------------------------------------------------------------------


def test_report_under_jit_equals_eager_and_traces_once():
    grads, params = mlp_grads(5, 8, jnp.tanh, lambda n: 1 / np.sqrt(n))

    @counting_jit
    def step(grads, params):
        return jaxnn.gradient_report(grads, params)

    jitted = step(grads, params)
    step(jax.tree.map(lambda g: 2 * g, grads), params)
    assert step.traces == 1
    chex.assert_trees_all_close(jitted, jaxnn.gradient_report(grads, params))


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("grads", [{}, [], [{}, ()], None])
def test_report_empty_tree_is_an_error(grads):
    with pytest.raises(ValueError, match="at least one gradient array"):
        jaxnn.gradient_report(grads)


@pytest.mark.parametrize(
    "grads", [{"w": jnp.ones(3, jnp.int32)}, {"w": "abc"}, [jnp.ones(2), True]]
)
def test_non_floating_leaves_are_an_error(grads):
    with pytest.raises(TypeError, match="floating-point"):
        jaxnn.gradient_report(grads)
    with pytest.raises(TypeError, match="floating-point"):
        jaxnn.gradient_norms(grads)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(vanishing_threshold=-1.0),
        dict(exploding_threshold=float("nan")),
        dict(ratio_threshold=0.5),
        dict(eps=-1e-3),
    ],
)
def test_bad_thresholds_are_an_error(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        jaxnn.gradient_report([jnp.ones(3)], **kwargs)


def test_params_with_other_structure_is_an_error():
    grads = [{"w": jnp.ones((2, 2))}, {"w": jnp.ones(2)}]
    with pytest.raises(ValueError, match="params"):
        jaxnn.gradient_report(grads, [{"w": jnp.ones((2, 2))}])
    with pytest.raises(ValueError, match="shape"):
        jaxnn.gradient_report(grads, [{"w": jnp.ones((2, 3))}, {"w": jnp.ones(2)}])


# --- exact zeros (float16 underflow) ----------------------------------------------


def _underflowing_grads(seed):
    """float16 gradients with magnitudes 10^U(-10, -2): many round to exactly 0."""
    rng = np.random.default_rng(seed)

    def arr(*shape):
        x = rng.normal(size=shape) * 10.0 ** rng.uniform(-10, -2, size=shape)
        return x.astype(np.float32)

    return [{"w": arr(6, 5), "b": arr(5)}, {"w": arr(5, 4), "b": arr(4)}, arr(4)]


def test_zero_counts_match_numpy_and_show_float16_underflow():
    exact = _underflowing_grads(0)
    grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float16), exact)
    # Element-wise and leaf-wise masks; the last layer is frozen entirely.
    rows = np.arange(6)[:, None] < 4
    trainable = [{"w": jnp.asarray(rows), "b": False}, {"w": True, "b": True}, False]
    masks = [
        [np.broadcast_to(rows, (6, 5)), np.zeros(5, bool)],
        [np.ones((5, 4), bool), np.ones(4, bool)],
        [np.zeros(4, bool)],
    ]
    leaves = [[e["w"], e["b"]] for e in exact[:2]] + [[exact[2]]]
    # NumPy: round to float16, count exact zeros where the mask is True.
    zeros = [
        sum(int(np.sum((np.float16(g) == 0) & m)) for g, m in zip(ls, ms, strict=True))
        for ls, ms in zip(leaves, masks, strict=True)
    ]
    counted = [sum(int(m.sum()) for m in ms) for ms in masks]
    # Underflow is the only source of zeros here: the float32 values have none,
    # and every float16 zero came from a magnitude of at most 2^-25.
    assert all(np.all(g != 0) for ls in leaves for g in ls)
    assert sum(zeros) > 0

    for report in (
        jaxnn.gradient_report(grads, trainable=trainable),
        jax.jit(lambda g: jaxnn.gradient_report(g, trainable=trainable))(grads),
    ):
        assert report.num_zero.dtype == jnp.int32
        assert int(report.num_zero) == sum(zeros)
        np.testing.assert_allclose(
            report.zero_fraction, sum(zeros) / sum(counted), **TOL["roundings"]
        )
        expected = [z / n if n else 0.0 for z, n in zip(zeros, counted, strict=True)]
        np.testing.assert_allclose(
            report.layer_zero_fractions, expected, **TOL["roundings"]
        )

    # Without a mask every entry counts; the float32 originals have no zeros.
    everything = jaxnn.gradient_report(grads)
    total = sum(int(np.sum(np.float16(g) == 0)) for ls in leaves for g in ls)
    assert int(everything.num_zero) == total
    assert int(jaxnn.gradient_report(exact).num_zero) == 0


def test_trainable_may_be_a_callable_of_the_params():
    grads = {"w": jnp.asarray([0.0, 1.0, 0.0]), "b": jnp.asarray([0.0, 0.0])}
    params = {"w": jnp.ones(3), "b": jnp.ones(2)}
    report = jaxnn.gradient_report(
        grads, params, trainable=lambda p: jax.tree.map(lambda x: x.size > 2, p)
    )
    assert int(report.num_zero) == 2  # the two zeros of "w"; "b" is frozen
    # Leaves are layers in tree_leaves order: "b" first.
    np.testing.assert_allclose(report.layer_zero_fractions, [0.0, 2 / 3])


@pytest.mark.parametrize(
    "trainable, error, match",
    [
        ({"w": True}, ValueError, "trainable does not match"),
        ({"w": 1, "b": True}, TypeError, r"trainable\['w'\] must be a bool"),
        ({"w": jnp.ones(2, bool), "b": True}, ValueError, "not broadcastable"),
    ],
)
def test_bad_trainable_is_an_error(trainable, error, match):
    grads = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    with pytest.raises(error, match=match):
        jaxnn.gradient_report(grads, trainable=trainable)
