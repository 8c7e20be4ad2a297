"""jaxnn code runs under strict dtype promotion and keeps float32/bfloat16 dtypes.

optax cannot run under `jax_numpy_dtype_promotion="strict"` (it mixes Python floats
with int32 counts), so the suite-wide config cannot be strict; this module runs every
jaxnn transform and layer inside the strict context instead, so an implicit promotion
in jaxnn (a silent float32 -> float64 or bfloat16 -> float32 upcast) is an error.

Promotion errors and dtypes are decided when JAX traces a function, so the
optimizer steps are traced with `jax.eval_shape` (every op of init, update and
apply_updates goes through the strict rules) without compiling a program per
entry; their values are tested against optax in tests/test_optimizers.py. The
transforms are the "strict_dtypes" suite of tests/registry.py.
"""

import jax
import jax.numpy as jnp
import pytest

import jaxnn
from tests import registry


def _params(dtype):
    return {
        "w": jnp.linspace(-1.0, 1.0, 12, dtype=dtype).reshape(3, 4),
        "b": jnp.zeros(4, dtype),
    }


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", registry.names("strict_dtypes"))
def test_optimizer_under_strict_promotion_keeps_dtypes(name, dtype):
    params = _params(dtype)
    with jax.numpy_dtype_promotion("strict"):
        tx = registry.BY_NAME[name].make()
        state = tx.init(params)

        def step(params, state):
            grads = jax.tree.map(lambda p: (0.5 * p + 0.1).astype(p.dtype), params)
            updates, new_state = tx.update(grads, state, params)
            return jaxnn.apply_updates(params, updates), updates, new_state

        for _ in range(3):
            params, updates, new_state = jax.eval_shape(step, params, state)
            assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(
                lambda x: x.dtype, state
            )
            state = new_state
    assert all(x.dtype == dtype for x in jax.tree.leaves(params))
    assert all(x.dtype == dtype for x in jax.tree.leaves(updates))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_layers_under_strict_promotion_keep_dtypes(dtype):
    # One jitted program runs every layer (hyperparameters are Python numbers in
    # the closure, so the concrete-value paths are the eager ones; the norm's
    # rescaling `lax.cond` traces both branches): the dtypes are asserted at
    # trace time, the finiteness on the returned values.
    key = jax.random.key(0)
    x = jax.random.normal(key, (8, 5), dtype)

    @jax.jit
    def layers(x, key):
        finite = {}
        for act in (jaxnn.sigmoid, jaxnn.tanh, jaxnn.relu, jaxnn.leaky_relu):
            assert act(x).dtype == dtype
            assert jax.grad(lambda v, f=act: jnp.sum(f(v)))(x).dtype == dtype
        bn_params, bn_state = jaxnn.batchnorm_init(5, dtype=dtype)
        y, new_state = jaxnn.batchnorm(bn_params, bn_state, x, training=True)
        assert y.dtype == dtype
        assert jax.tree.map(lambda a: a.dtype, new_state) == jax.tree.map(
            lambda a: a.dtype, bn_state
        )
        y, _ = jaxnn.batchnorm(bn_params, new_state, x, training=False)
        assert y.dtype == dtype
        assert jaxnn.dropout(key, x, 0.25).dtype == dtype
        assert (
            jaxnn.dropout(key, x, 0.25, inverted=False, deterministic=True).dtype
            == dtype
        )
        layer = jaxnn.dense_init(key, 5, 3)
        layer = jax.tree.map(lambda a: a.astype(dtype), layer)
        logits = jaxnn.dense(layer, x)
        assert logits.dtype == dtype
        labels = jnp.arange(8) % 3
        finite["softmax_cross_entropy_with_integer_labels"] = (
            jaxnn.softmax_cross_entropy_with_integer_labels(logits, labels)
        )
        probs = jnp.full(logits.shape, 1 / 3, dtype)
        finite["softmax_cross_entropy"] = jaxnn.softmax_cross_entropy(logits, probs)
        finite["mean_squared_error"] = jaxnn.mean_squared_error(logits, logits)
        finite["l1_penalty"] = jaxnn.l1_penalty(layer, 0.1)
        finite["l2_penalty"] = jaxnn.l2_penalty(layer, 0.1)
        for init in (
            jaxnn.zeros(),
            jaxnn.constant(0.5),
            jaxnn.uniform(),
            jaxnn.normal(),
            jaxnn.xavier_uniform(),
            jaxnn.xavier_normal(),
            jaxnn.he_uniform(),
            jaxnn.he_normal(),
            jaxnn.lecun_normal(),
        ):
            assert init(key, (4, 3), dtype).dtype == dtype
        finite["gradient_report"] = jaxnn.gradient_report(layer, layer).global_norm
        return finite

    with jax.numpy_dtype_promotion("strict"):
        finite = layers(x, key)
    for name, value in finite.items():
        assert jnp.isfinite(value).all(), name
