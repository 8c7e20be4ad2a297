"""Run by tests/test_batchnorm.py in a subprocess with 8 forced CPU devices.

Checks that `batchnorm(..., axis_name=...)` under `jax.shard_map` over 8 devices
gives the single-device result on the whole batch: outputs, running statistics and
gradients w.r.t. x, scale and bias. Exits non-zero (AssertionError) on a mismatch.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
)

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

import jaxnn
from tests.helpers import TOL

assert jax.device_count() == 8, jax.devices()

rng = np.random.default_rng(0)
x = jnp.asarray(1e3 + rng.normal(size=(32, 4, 4, 6)), jnp.float32)
dy = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
params, state = jaxnn.batchnorm_init(6)
params = jaxnn.BatchNormParams(
    jnp.asarray(rng.uniform(0.5, 2, 6), jnp.float32),
    jnp.asarray(rng.normal(size=6), jnp.float32),
)
state = jaxnn.BatchNormState(
    jnp.asarray(rng.normal(size=6), jnp.float32),
    jnp.asarray(rng.uniform(0.5, 2, 6), jnp.float32),
)
mesh = jax.make_mesh((8,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))


def sharded(params, x):
    def local(params, x):
        return jaxnn.batchnorm(params, state, x, training=True, axis_name="batch")

    return jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P("batch")), out_specs=(P("batch"), P())
    )(params, x)


def whole(params, x):
    return jaxnn.batchnorm(params, state, x, training=True)


def loss(fn):
    return lambda params, x: jnp.sum(fn(params, x)[0] * dy)


y_s, st_s = jax.jit(sharded)(params, x)
y_w, st_w = jax.jit(whole)(params, x)
g_s = jax.jit(jax.grad(loss(sharded), argnums=(0, 1)))(params, x)
g_w = jax.jit(jax.grad(loss(whole), argnums=(0, 1)))(params, x)

for name, a, b in [
    ("y", y_s, y_w),
    ("state.mean", st_s.mean, st_w.mean),
    ("state.var", st_s.var, st_w.var),
    ("grad scale", g_s[0].scale, g_w[0].scale),
    ("grad bias", g_s[0].bias, g_w[0].bias),
    ("grad x", g_s[1], g_w[1]),
]:
    np.testing.assert_allclose(
        np.asarray(a), np.asarray(b), **TOL["batch_gradient"], err_msg=name
    )
print("shard_map batchnorm OK")
