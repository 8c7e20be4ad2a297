"""Sharding: optimizer states follow the params' NamedSharding on 8 CPU devices.

The multi-device checks run in one subprocess (tests/_sharding_check.py) because
the forced device count must be set before jax is imported. In-process tests cover
abstract init with `jax.ShapeDtypeStruct` leaves for every optimizer.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests.helpers import mlp_params, run_on_8_cpu_devices

SHARDED_OPTIMIZERS = ["adam", "adamw_clip", "sgd_momentum", "adagrad", "rmsprop"]

OPTIMIZERS = {
    "gd": lambda: jaxnn.gd(0.1),
    "momentum": lambda: jaxnn.momentum(0.1),
    "nesterov": lambda: jaxnn.nesterov(0.1),
    "adagrad": lambda: jaxnn.adagrad(0.1),
    "rmsprop": lambda: jaxnn.rmsprop(0.1, centered=True, momentum=0.9),
    "adam_f32_moments": lambda: jaxnn.adam(
        0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32
    ),
    "adamw_clip": lambda: jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.adamw(0.1)),
    "nadam": lambda: jaxnn.nadam(0.1),
    "skip_nonfinite": lambda: jaxnn.skip_nonfinite(jaxnn.adam(0.1)),
    "clip_by_layer_norm": lambda: jaxnn.clip_by_layer_norm(1.0),
}


def test_sharded_optimizers_on_8_cpu_devices():
    script = Path(__file__).with_name("_sharding_check.py")
    out = run_on_8_cpu_devices(script, expect="sharding OK")
    for name in SHARDED_OPTIMIZERS:
        assert f"OK {name} " in out, out


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_init_accepts_shape_dtype_structs(name, dtype):
    # Regression: init used jnp.asarray(leaf).dtype and failed on ShapeDtypeStruct.
    tx = OPTIMIZERS[name]()
    params = mlp_params(0, dtype)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    expected = tx.init(params)
    for got in (tx.init(abstract), jax.eval_shape(tx.init, abstract)):
        assert jax.tree.structure(got) == jax.tree.structure(expected)
        for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            assert g.shape == e.shape and g.dtype == e.dtype, (g, e)
    for g, e in zip(
        jax.tree.leaves(tx.init(abstract)), jax.tree.leaves(expected), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))
        assert not getattr(g, "weak_type", False)
