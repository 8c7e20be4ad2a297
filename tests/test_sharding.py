"""Sharding: optimizer states follow the params' NamedSharding on 8 CPU devices.

The multi-device checks run in one subprocess (tests/_sharding_check.py) because
the forced device count must be set before jax is imported. In-process tests cover
abstract init with `jax.ShapeDtypeStruct` leaves for every entry of the "sharding"
suite of tests/registry.py; the subprocess runs its "sharding_devices" suite.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import registry
from tests.helpers import mlp_params, run_on_8_cpu_devices


def test_sharded_optimizers_on_8_cpu_devices():
    script = Path(__file__).with_name("_sharding_check.py")
    out = run_on_8_cpu_devices(script, expect="sharding OK")
    for name in registry.names("sharding_devices"):
        assert f"OK {name} " in out, out


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", registry.names("sharding"))
def test_init_accepts_shape_dtype_structs(name, dtype):
    # Regression: init used jnp.asarray(leaf).dtype and failed on ShapeDtypeStruct.
    params = mlp_params(0, dtype)
    tx = registry.BY_NAME[name].make()
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
