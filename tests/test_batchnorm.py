"""BatchNorm against flax.linen.BatchNorm, offset accuracy, axis_name, validation."""

from functools import partial
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from jaxnn import BatchNormParams, BatchNormState, batchnorm, batchnorm_init
from tests.helpers import TOL, assert_trees_close, run_on_8_cpu_devices

SHAPES = {"NC": ((64, 5), -1), "NHWC": ((8, 6, 6, 4), -1), "NCHW": ((8, 4, 6, 6), 1)}


def random_params_state(c, seed=0):
    rng = np.random.default_rng(seed)
    params = BatchNormParams(
        jnp.asarray(rng.uniform(0.5, 2.0, c), jnp.float32),
        jnp.asarray(rng.normal(size=c), jnp.float32),
    )
    state = BatchNormState(
        jnp.asarray(rng.normal(size=c), jnp.float32),
        jnp.asarray(rng.uniform(0.5, 2.0, c), jnp.float32),
    )
    return params, state


@partial(jax.jit, static_argnames=("training", "momentum", "axis", "fast_variance"))
def flax_bn(
    params, state, x, *, training, momentum=0.99, eps=1e-5, axis=-1, fast_variance=False
):
    """flax.linen.BatchNorm with the same parameters, state and hyperparameters.

    The accurate two-pass variance is the reference unless `fast_variance`.
    """
    mod = nn.BatchNorm(
        use_running_average=not training,
        momentum=momentum,
        epsilon=eps,
        axis=axis,
        use_fast_variance=fast_variance,
    )
    variables = {
        "params": {"scale": params.scale, "bias": params.bias},
        "batch_stats": {"mean": state.mean, "var": state.var},
    }
    y, upd = mod.apply(variables, x, mutable=["batch_stats"])
    stats = upd["batch_stats"]
    return y, BatchNormState(stats["mean"], stats["var"])


def data(shape, seed=1, offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(offset + scale * rng.normal(size=shape), jnp.float32)


def test_init():
    params, state = batchnorm_init(3)
    assert_trees_close(params, BatchNormParams(jnp.ones(3), jnp.zeros(3)))
    assert_trees_close(state, BatchNormState(jnp.zeros(3), jnp.ones(3)))
    p16, s16 = batchnorm_init(3, jnp.bfloat16)
    assert p16.scale.dtype == jnp.bfloat16 and s16.mean.dtype == jnp.float32


@pytest.mark.parametrize("layout", SHAPES)
def test_training_matches_flax(layout, maybe_jit):
    shape, axis = SHAPES[layout]
    params, state = random_params_state(shape[axis])
    x = data(shape, offset=3.0, scale=2.0)
    fn = maybe_jit(lambda p, s, x: batchnorm(p, s, x, training=True, axis=axis))
    y, new_state = fn(params, state, x)
    y_ref, state_ref = flax_bn(params, state, x, training=True, axis=axis)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_trees_close(y, y_ref, **TOL["batch_normalized"])
    assert_trees_close(new_state, state_ref)


@pytest.mark.parametrize("layout", SHAPES)
def test_running_stats_and_eval_after_steps_match_flax(layout):
    shape, axis = SHAPES[layout]
    params, state = random_params_state(shape[axis])
    kw = dict(momentum=0.9, eps=1e-3, axis=axis)
    ours = ref = state
    step = jax.jit(lambda s, x: batchnorm(params, s, x, training=True, **kw))
    for i in range(5):
        x = data(shape, seed=10 + i, offset=i - 2.0, scale=1.0 + i)
        _, ours = step(ours, x)
        _, ref = flax_bn(params, ref, x, training=True, **kw)
    assert_trees_close(ours, ref)
    x = data(shape, seed=99, offset=1.0)
    y, same = batchnorm(params, ours, x, training=False, **kw)
    y_ref, _ = flax_bn(params, ref, x, training=False, **kw)
    assert same is ours
    assert_trees_close(y, y_ref)


def test_eval_returns_state_unchanged(maybe_jit):
    params, state = random_params_state(5)
    x = data((16, 5))
    y, new_state = maybe_jit(lambda s: batchnorm(params, s, x, training=False))(state)
    assert_trees_close(new_state, state, **TOL["exact"])
    x64, mean, var, scale, bias = (
        np.asarray(a, np.float64) for a in (x, *state, *params)
    )
    expected = (x64 - mean) / np.sqrt(var + 1e-5) * scale + bias
    assert_trees_close(y, expected)


@pytest.mark.parametrize("layout", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_gradients_match_flax(layout, training):
    shape, axis = SHAPES[layout]
    params, state = random_params_state(shape[axis])
    x = data(shape, offset=2.0, scale=3.0)
    dy = data(shape, seed=7)

    # A loss that is not linear in y, so the gradient exercises every term.
    def loss(fn):
        def f(p, x):
            y = fn(p, state, x, training=training, axis=axis)[0]
            return jnp.sum(y * dy) + 0.1 * jnp.sum(y**2)

        return f

    def flax_fn(p, s, x, **kw):
        return flax_bn(p, s, x, **kw)

    g = jax.jit(jax.grad(loss(batchnorm), argnums=(0, 1)))(params, x)
    g_ref = jax.jit(jax.grad(loss(flax_fn), argnums=(0, 1)))(params, x)
    # Sums over the batch of products of O(1) terms: relative accuracy ~1e-5.
    assert_trees_close(g, g_ref, **TOL["batch_gradient"])


def test_offset_data_variance_is_accurate_where_flax_default_is_not():
    x = data((4096, 8), seed=3, offset=1e4)
    params, state = batchnorm_init(8)
    y, new_state = jax.jit(
        lambda x: batchnorm(params, state, x, training=True, momentum=0.0)
    )(x)
    np.testing.assert_allclose(
        np.std(np.asarray(y, np.float64), axis=0), 1, **TOL["offset_1e4"]
    )
    x64 = np.asarray(x, np.float64)
    np.testing.assert_allclose(new_state.var, x64.var(axis=0), **TOL["offset_1e4"])
    np.testing.assert_allclose(new_state.mean, x64.mean(axis=0), **TOL["roundings"])
    y_flax, _ = flax_bn(params, state, x, training=True, fast_variance=True)
    flax_err = np.max(np.abs(np.std(np.asarray(y_flax, np.float64), axis=0) - 1))
    assert flax_err > 0.1, "flax's default fast variance was expected to fail here"


def test_offset_data_gradients_are_accurate():
    x64 = 1e4 + np.random.default_rng(4).normal(size=(512, 3))
    dy = np.random.default_rng(5).normal(size=x64.shape)
    x = jnp.asarray(x64, jnp.float32)
    params, state = batchnorm_init(3)
    g = jax.grad(lambda x: jnp.sum(batchnorm(params, state, x, training=True)[0] * dy))(
        x
    )
    # float64 formula: dx = (dy - mean(dy) - x̂·mean(dy·x̂)) / σ.
    x32 = np.asarray(x, np.float64)
    mu, sd = x32.mean(0), np.sqrt(x32.var(0) + 1e-5)
    xhat = (x32 - mu) / sd
    ref = (dy - dy.mean(0) - xhat * (dy * xhat).mean(0)) / sd
    np.testing.assert_allclose(g, ref, **TOL["offset_1e4"])


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_statistics_in_float32(dtype):
    x = data((256, 4), offset=100.0, scale=1.0).astype(dtype)
    params, state = batchnorm_init(4, dtype)
    y, new_state = batchnorm(params, state, x, training=True, momentum=0.0)
    assert y.dtype == dtype and new_state.mean.dtype == jnp.float32
    x64 = np.asarray(x.astype(jnp.float32), np.float64)
    np.testing.assert_allclose(new_state.mean, x64.mean(0), **TOL["roundings"])
    np.testing.assert_allclose(new_state.var, x64.var(0), **TOL["reduction"])
    expected = (x64 - x64.mean(0)) / np.sqrt(x64.var(0) + 1e-5)
    np.testing.assert_allclose(
        np.asarray(y, np.float64), expected, **TOL["bfloat16_unit_scale"]
    )


def test_vmap_axis_name_equals_whole_batch():
    params, state = random_params_state(4)
    x = data((4, 8, 4), offset=50.0)
    dy = data(x.shape, seed=2)

    def per_shard(p, x):
        return jax.vmap(
            lambda xs: batchnorm(p, state, xs, training=True, axis_name="b"),
            axis_name="b",
        )(x)

    y, st = jax.jit(per_shard)(params, x)
    y_ref, st_ref = batchnorm(params, state, x.reshape(32, 4), training=True)
    assert_trees_close(y.reshape(32, 4), y_ref, **TOL["batch_normalized"])
    assert_trees_close(jax.tree.map(lambda a: a[0], st), st_ref)
    g = jax.jit(jax.grad(lambda p, x: jnp.sum(per_shard(p, x)[0] * dy), (0, 1)))(
        params, x
    )
    g_ref = jax.jit(
        jax.grad(
            lambda p, x: jnp.sum(
                batchnorm(p, state, x.reshape(32, 4), training=True)[0]
                * dy.reshape(32, 4)
            ),
            (0, 1),
        )
    )(params, x)
    assert_trees_close(g, g_ref, **TOL["batch_gradient"])


def test_shard_map_axis_name_equals_whole_batch_on_8_devices():
    script = Path(__file__).with_name("_batchnorm_shard_map_check.py")
    run_on_8_cpu_devices(script, expect="shard_map batchnorm OK")


def test_gradient_wrt_eps_matches_flax():
    params, state = random_params_state(3)
    x = data((32, 3), offset=1.0)
    dy = data(x.shape, seed=3)
    g = jax.grad(
        lambda e: jnp.sum(batchnorm(params, state, x, training=True, eps=e)[0] * dy)
    )(0.3)
    g_ref = jax.grad(
        lambda e: jnp.sum(flax_bn(params, state, x, training=True, eps=e)[0] * dy)
    )(0.3)
    np.testing.assert_allclose(g, g_ref, **TOL["reduction"])


def test_one_element_per_feature_in_training_raises():
    params, state = batchnorm_init(3)
    with pytest.raises(ValueError, match="more than one element per feature"):
        batchnorm(params, state, jnp.ones((1, 3)), training=True)
    y, _ = batchnorm(params, state, jnp.ones((1, 3)), training=False)  # eval is fine
    assert y.shape == (1, 3)


def test_feature_mismatch_raises():
    params, state = batchnorm_init(3)
    with pytest.raises(ValueError, match=r"params.scale has shape \(3,\).*4 features"):
        batchnorm(params, state, jnp.ones((8, 4)), training=True)
    with pytest.raises(ValueError, match=r"state\.var"):
        batchnorm(
            params, state._replace(var=jnp.ones(4)), jnp.ones((8, 3)), training=False
        )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(axis=2), ValueError, "axis 2 is out of range"),
        (dict(axis=-3), ValueError, "out of range"),
        (dict(axis=1.0), TypeError, "axis must be an int"),
        (dict(momentum=1.5), ValueError, "momentum"),
        (dict(eps=-1.0), ValueError, "eps"),
        (dict(training=None), TypeError, "training must be a Python bool"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    params, state = batchnorm_init(3)
    kwargs = {"training": True, **kwargs}
    with pytest.raises(error, match=match):
        batchnorm(params, state, jnp.ones((4, 3)), **kwargs)


def test_training_is_required_and_keyword_only():
    params, state = batchnorm_init(3)
    with pytest.raises(TypeError):
        batchnorm(params, state, jnp.ones((4, 3)))
    with pytest.raises(TypeError):
        batchnorm(params, state, jnp.ones((4, 3)), True)


def test_bad_input_dtype_and_init_raise():
    params, state = batchnorm_init(3)
    with pytest.raises(TypeError, match="floating"):
        batchnorm(params, state, jnp.ones((4, 3), jnp.int32), training=True)
    with pytest.raises(ValueError, match="num_features"):
        batchnorm_init(0)
    with pytest.raises(TypeError, match="dtype"):
        batchnorm_init(3, jnp.int32)


def test_public_names():
    for name in ["BatchNormParams", "BatchNormState", "batchnorm", "batchnorm_init"]:
        assert hasattr(jaxnn, name)
