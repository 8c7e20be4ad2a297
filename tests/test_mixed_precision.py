"""Mixed precision: bf16 params with float32 Adam moments and BatchNorm statistics.

A small BatchNorm MLP trained on sklearn's digits in bfloat16 (params, activations,
BatchNorm inputs) with float32 optimizer moments and float32 running statistics
reaches the float32 model's test accuracy within 1 percentage point. The dtype of
every output (params, updates, optimizer state, BatchNorm output and state) is
asserted.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests.helpers import TOL

STEPS = 300


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(x))
    x, y = x[perm] / 16.0, y[perm]
    split = 1400
    return (
        (jnp.asarray(x[:split], jnp.float32), jnp.asarray(y[:split], jnp.int32)),
        (jnp.asarray(x[split:], jnp.float32), jnp.asarray(y[split:], jnp.int32)),
    )


def init(dtype):
    k1, k2 = jax.random.split(jax.random.key(0))
    bn_params, bn_state = jaxnn.batchnorm_init(64, dtype)
    params = {
        "dense1": jaxnn.dense_init(k1, 64, 64),
        "bn": bn_params,
        "dense2": jaxnn.dense_init(k2, 64, 10),
    }
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    return params, bn_state


def forward(params, bn_state, x, *, training):
    x = x.astype(params["dense1"]["w"].dtype)
    h = jaxnn.dense(params["dense1"], x)
    h, bn_state = jaxnn.batchnorm(params["bn"], bn_state, h, training=training)
    return jaxnn.dense(params["dense2"], jaxnn.relu(h)), bn_state, h


def train(dtype, train_data):
    x, y = train_data
    params, bn_state = init(dtype)
    tx = jaxnn.adam(1e-2, mu_dtype=jnp.float32, nu_dtype=jnp.float32)

    @jax.jit
    def run(params, bn_state):
        def step(carry, _):
            params, bn_state, opt_state = carry

            def loss(params):
                logits, new_state, _ = forward(params, bn_state, x, training=True)
                return jnp.mean(
                    jaxnn.softmax_cross_entropy_with_integer_labels(logits, y)
                ), new_state

            grads, bn_state = jax.grad(loss, has_aux=True)(params)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (jaxnn.apply_updates(params, updates), bn_state, opt_state), (
                grads,
                updates,
            )

        carry = (params, bn_state, tx.init(params))
        carry, (grads, updates) = jax.lax.scan(step, carry, None, length=STEPS)
        return carry, grads, updates

    return run(params, bn_state)


# The evaluation passes, jitted (one compilation per dtype instead of op-by-op
# dispatch; the dtypes they return are the same).
jitted_forward = jax.jit(forward, static_argnames="training")


def accuracy(params, bn_state, data):
    x, y = data
    logits, _, _ = jitted_forward(params, bn_state, x, training=False)
    return float(jnp.mean(jnp.argmax(logits, -1) == y))


@pytest.fixture(scope="module")
def runs(digits):
    return {d: train(d, digits[0]) for d in (jnp.float32, jnp.bfloat16)}


def test_bf16_with_f32_moments_matches_f32_accuracy(runs, digits):
    acc = {
        d: accuracy(carry[0], carry[1], digits[1]) for d, (carry, _, _) in runs.items()
    }
    assert acc[jnp.float32] > 0.9, acc
    assert acc[jnp.bfloat16] >= acc[jnp.float32] - 0.01, acc


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_dtypes_of_every_output(runs, digits, dtype):
    (params, bn_state, opt_state), grads, updates = runs[dtype]
    for tree in (params, grads, updates):
        for leaf in jax.tree.leaves(tree):
            assert leaf.dtype == dtype, leaf.dtype
    adam_state, lr_state = opt_state
    assert isinstance(adam_state, jaxnn.ScaleByAdamState)
    assert adam_state.count.dtype == jnp.int32
    assert int(adam_state.count) == STEPS
    for leaf in jax.tree.leaves((adam_state.mu, adam_state.nu)):
        assert leaf.dtype == jnp.float32
    assert jax.tree.leaves(lr_state) == []
    # BatchNorm: statistics in float32 whatever the input; output in the input dtype.
    assert bn_state.mean.dtype == bn_state.var.dtype == jnp.float32
    logits, new_state, h = jitted_forward(params, bn_state, digits[1][0], training=True)
    assert h.dtype == logits.dtype == dtype
    assert new_state.mean.dtype == new_state.var.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(new_state.var)))
    # Computed in float32 internally, returned in the logits' dtype (documented).
    loss = jaxnn.softmax_cross_entropy_with_integer_labels(logits, digits[1][1])
    assert loss.dtype == dtype


def test_f32_moments_are_not_bf16_rounded(runs):
    # The float32 moments hold values a bf16 moment could not: not all of them
    # survive a bf16 round trip unchanged.
    (_, _, (adam_state, _)), _, _ = runs[jnp.bfloat16]
    mu = jnp.concatenate([m.ravel() for m in jax.tree.leaves(adam_state.mu)])
    rounded = mu.astype(jnp.bfloat16).astype(jnp.float32)
    assert bool(jnp.any(rounded != mu))


def _ulp(x, dtype):
    """The unit in the last place of `dtype` at |x| (normal numbers)."""
    info = jnp.finfo(dtype)
    exponent = np.floor(np.log2(np.maximum(np.abs(x), float(info.tiny))))
    return 2.0 ** (exponent - info.nmant)


@pytest.mark.parametrize(
    "dtype, as_stored", [("bfloat16", True), ("float16", False)], ids=str
)
@pytest.mark.parametrize("nesterov", [False, True], ids=["adam", "nadam"])
def test_adam_update_reads_the_moments_as_stored_where_they_keep_the_range(
    dtype, as_stored, nesterov
):
    # The moments are computed in float32 and stored in the params' dtype. With
    # bfloat16 (float32's range) the update is computed from them as stored (as
    # optax, which computes in that dtype); with float16, whose range cannot
    # hold g² (it flushes to 0 below |g| ~ 2e-4, and the update divided by a
    # flushed √v explodes), from the unrounded float32 values. Reference: the
    # formulas in float64.
    dtype = jnp.dtype(dtype)
    rng = np.random.default_rng(0)
    n, count, b1, b2, eps = 4000, 3, 0.9, 0.999, 1e-8
    g, m = (jnp.asarray(rng.normal(size=n), dtype) for _ in range(2))
    v = jnp.asarray(rng.uniform(0.5, 2.0, size=n), dtype)
    state = jaxnn.ScaleByAdamState(count=jnp.asarray(count, jnp.int32), mu=m, nu=v)
    out, new = jaxnn.scale_by_adam(b1, b2, eps, nesterov=nesterov).update(g, state)

    def f64(x):
        return np.asarray(x, np.float64)

    t = count + 1
    m_exact = b1 * f64(m) + (1 - b1) * f64(g)
    v_exact = b2 * f64(v) + (1 - b2) * f64(g) ** 2
    # Stored rounded to the params' dtype: within a unit in the last place.
    for got, exact in ((new.mu, m_exact), (new.nu, v_exact)):
        assert np.all(np.abs(f64(got) - exact) <= _ulp(f64(got), dtype))
    m_used, v_used = (f64(new.mu), f64(new.nu)) if as_stored else (m_exact, v_exact)
    m_hat = m_used / (1 - b1**t)
    if nesterov:
        m_hat = b1 * m_used / (1 - b1 ** (t + 1)) + (1 - b1) * f64(g) / (1 - b1**t)
    expected = m_hat / (np.sqrt(v_used / (1 - b2**t)) + eps)
    # The update is that value rounded once to the params' dtype. It agrees
    # exactly but where float32 arithmetic lands on the other side of a rounding
    # boundary (1 - β₂ᵗ in float32 is off by ~1e-5 relative at t = 4: 1.5% of the
    # float16 elements); computed from the other moments (stored instead of
    # unrounded, or the reverse), about 28% differ.
    same = f64(out) == f64(jnp.asarray(expected, dtype))
    assert same.mean() > 0.95


def test_float16_adam_with_tiny_gradients_takes_a_bounded_step():
    # g = 1e-4: (1 - β₂)g² = 1e-11 is 0 in float16. Adam's first step is
    # -lr·sign(g) (m̂ = g, v̂ = g²) whatever the dtype the moments are stored in.
    g = {"w": jnp.full((8,), 1e-4, jnp.float16)}
    tx = jaxnn.adam(1e-3)
    updates, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(
        np.asarray(updates["w"], np.float64), -1e-3, **TOL["float16_rounding"]
    )
