"""Run by tests/test_sharding.py in a subprocess with 8 forced CPU devices.

Params are sharded with `NamedSharding` over the first axis of large leaves and
replicated for small ones. For each optimizer: `init` (eager and jitted) and the
jitted `update` give state leaves with the params' sharding, a sharded training
run equals the unsharded one, the jitted train step is traced once, and `init`
accepts `jax.ShapeDtypeStruct` leaves (directly and via `jax.eval_shape`).
Prints one "OK <name>" line per optimizer; exits non-zero on a failure.
"""

import functools
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
)

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxnn
from tests import registry
from tests.helpers import TOL, counting_jit

jax.config.update("jax_numpy_rank_promotion", "raise")
assert jax.device_count() == 8, jax.devices()

MESH = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
REPLICATED = NamedSharding(MESH, P())
STEPS = 5

# The "sharding_devices" suite of tests/registry.py, at a small learning rate (the
# sharded and unsharded runs are compared at float32 tolerance after STEPS steps).
OPTIMIZERS = {
    e.name: functools.partial(e.make, learning_rate=1e-2)
    for e in registry.entries("sharding_devices")
}

rng = np.random.default_rng(0)
PARAMS = {
    "w1": jnp.asarray(rng.normal(size=(64, 32)) * 0.2, jnp.float32),
    "b1": jnp.asarray(rng.normal(size=(32,)) * 0.1, jnp.float32),
    "w2": jnp.asarray(rng.normal(size=(32, 8)) * 0.2, jnp.float32),
    "b2": jnp.zeros((8,), jnp.float32),
    "scale": jnp.ones((), jnp.float32),
}
X = jnp.asarray(rng.normal(size=(128, 64)), jnp.float32)
Y = jnp.asarray(rng.normal(size=(128, 8)), jnp.float32)


def param_sharding(x):
    """First axis over the mesh for leaves of >= 2 dims divisible by 8."""
    if x.ndim >= 2 and x.shape[0] % 8 == 0:
        return NamedSharding(MESH, P("data"))
    return REPLICATED


SHARDINGS = jax.tree.map(param_sharding, PARAMS)
SHARDED_PARAMS = jax.device_put(PARAMS, SHARDINGS)
assert not SHARDED_PARAMS["w1"].sharding.is_fully_replicated


def sharded_loss(params, x, y):
    # Gather the sharded weights for the small matmuls; the gradients come back
    # with the params' sharding (the transpose of the reshard).
    return loss(jax.sharding.reshard(params, jax.tree.map(lambda _: P(), params)), x, y)


def loss(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"][None, :])
    pred = params["scale"] * (h @ params["w2"] + params["b2"][None, :])
    return jnp.mean((pred - y) ** 2)


def check_state_sharding(state, where):
    """Every state leaf shaped like a param has that param's sharding."""
    by_shape = {
        p.shape: s
        for p, s in zip(
            jax.tree.leaves(PARAMS), jax.tree.leaves(SHARDINGS), strict=True
        )
    }
    n = 0
    for leaf in jax.tree.leaves(state):
        if leaf.ndim == 0:
            continue  # counts and norms: replicated or uncommitted scalars.
        want = by_shape[leaf.shape]
        assert leaf.sharding.is_equivalent_to(want, leaf.ndim), (
            where,
            leaf.shape,
            leaf.sharding,
            want,
        )
        n += 1
    return n


def run(name, make):
    tx = make()

    # init: eager, jitted, on ShapeDtypeStructs (directly and via eval_shape).
    state = tx.init(SHARDED_PARAMS)
    n_array_leaves = check_state_sharding(state, "eager init")
    assert n_array_leaves > 0, name
    # Under jit the zeros do not depend on the params' values, so (as in optax) a
    # jitted init needs explicit out_shardings; those of the eager init do.
    shardings = jax.tree.map(lambda x: x.sharding if x.ndim else REPLICATED, state)
    jitted = jax.jit(tx.init, out_shardings=shardings)(SHARDED_PARAMS)
    check_state_sharding(jitted, "jit init")
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        SHARDED_PARAMS,
    )
    from_abstract = tx.init(abstract)
    check_state_sharding(from_abstract, "init(ShapeDtypeStruct)")
    via_eval_shape = jax.eval_shape(tx.init, SHARDED_PARAMS)
    reference = tx.init(PARAMS)
    for a, b, c in zip(
        jax.tree.leaves(from_abstract),
        jax.tree.leaves(via_eval_shape),
        jax.tree.leaves(reference),
        strict=True,
    ):
        assert a.shape == b.shape == c.shape and a.dtype == b.dtype == c.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    assert jax.tree.structure(via_eval_shape) == jax.tree.structure(reference)

    # Jitted update and a jitted train step that must be traced exactly once.
    step = make_step(tx, sharded_loss)
    # The state comes from the jitted init: eager init leaves its int32 counts
    # uncommitted on one device, and after the first step they live on the mesh,
    # which would trace the step a second time (optax's init does the same).
    p_s, s_s, u_s = train(step, SHARDED_PARAMS, jitted)
    assert step.traces == 1, (name, step.traces)
    check_state_sharding(s_s, "jitted update")
    for p, want in zip(jax.tree.leaves(p_s), jax.tree.leaves(SHARDINGS), strict=True):
        assert p.sharding.is_equivalent_to(want, p.ndim), (name, p.sharding, want)
    for u, want in zip(jax.tree.leaves(u_s), jax.tree.leaves(SHARDINGS), strict=True):
        assert u.sharding.is_equivalent_to(want, u.ndim), (name, u.sharding, want)
    # Another sharded run reuses the compiled step.
    train(
        step, SHARDED_PARAMS, jax.jit(tx.init, out_shardings=shardings)(SHARDED_PARAMS)
    )
    assert step.traces == 1, (name, step.traces)

    # A plain jitted tx.update keeps the sharding too.
    grads = jax.device_put(jax.grad(loss)(PARAMS, X[:16], Y[:16]), SHARDINGS)
    _, s_u = jax.jit(tx.update)(grads, state, SHARDED_PARAMS)
    check_state_sharding(s_u, "jit(tx.update)")

    return tx, (p_s, s_s, u_s), n_array_leaves


def make_step(tx, loss_fn):
    @counting_jit
    def step(params, state, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return jaxnn.apply_updates(params, updates), state, updates

    return step


def train(step, params, state):
    for i in range(STEPS):
        x, y = X[16 * i : 16 * i + 16], Y[16 * i : 16 * i + 16]
        params, state, updates = step(params, state, x, y)
    return params, state, updates


for name, make in OPTIMIZERS.items():
    with jax.set_mesh(MESH):
        tx, sharded, n_array_leaves = run(name, make)
    # Results equal the unsharded single-device run.
    step = make_step(tx, loss)
    unsharded = train(step, PARAMS, tx.init(PARAMS))
    for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(unsharded), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a, b)
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), **TOL["trajectory"]
        )
    print(f"OK {name} ({n_array_leaves} array state leaves)")


print("sharding OK")
