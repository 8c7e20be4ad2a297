"""Checkpoint and resume: optimizer and BatchNorm states survive a save/restore.

Two formats: a plain `numpy.savez` of the flattened pytree (restored with the
treedef of a freshly built state) and `orbax-checkpoint`'s StandardCheckpointer.
Training interrupted at step k and resumed from the checkpoint must give
bit-identical params and states to uninterrupted training, for every optimizer
and for a BatchNorm + dropout MLP whose dropout key is part of the saved state.
Each step function is jitted once per optimizer and shared by both runs.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests import registry
from tests.helpers import counting_jit, mlp_loss, mlp_params

# The "checkpoint" suite of tests/registry.py (one optimizer per kind of state), at a
# small learning rate: the trajectories stay well inside float32 range. Orbax round
# trips each optimizer of the "checkpoint_orbax" suite (a chain and skip_nonfinite).
OPTIMIZERS = {
    e.name: functools.partial(
        e.make, **({"learning_rate": 0.01} if "learning_rate" in e.hparams else {})
    )
    for e in registry.entries("checkpoint")
}
ORBAX_SUBSET = registry.names("checkpoint_orbax")
STEPS, RESUME_AT = 8, 3


# ---------------------------------------------------------------- save / restore


def savez_save(path, tree):
    """Saves the leaves of `tree` (typed PRNG keys as their raw key data)."""
    leaves = [
        jax.random.key_data(x)
        if jnp.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key)
        else x
        for x in jax.tree.leaves(tree)
    ]
    np.savez(path, *[np.asarray(x) for x in leaves])


def savez_restore(path, like):
    """Restores leaves saved by `savez_save` into the structure of `like`."""
    leaves, treedef = jax.tree.flatten(like)
    with np.load(path) as data:
        loaded = [data[f"arr_{i}"] for i in range(len(data.files))]
    assert len(loaded) == len(leaves)
    out = []
    for x, ref in zip(loaded, leaves, strict=True):
        if jnp.issubdtype(ref.dtype, jax.dtypes.prng_key):
            out.append(jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref)))
        elif x.dtype.kind == "V":
            # numpy has no bfloat16: savez writes it as raw 2-byte voids.
            out.append(jnp.asarray(x.view(ref.dtype)))
        else:
            out.append(jnp.asarray(x))
    return jax.tree.unflatten(treedef, out)


def _orbax():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import orbax.checkpoint as ocp
    return ocp


def orbax_roundtrip(directory, tree):
    """Saves `tree` with orbax's StandardCheckpointer and restores it."""
    ocp = _orbax()
    path = directory / "ckpt"
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, tree)
        ckptr.wait_until_finished()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
        return ckptr.restore(path, abstract)


def savez_roundtrip(directory, tree):
    path = directory / "ckpt.npz"
    savez_save(path, tree)
    return savez_restore(path, tree)


def assert_bitwise_equal(actual, expected):
    """Same structure (incl. NamedTuple types), dtypes, shapes and bits."""
    a_leaves, a_def = jax.tree.flatten(actual)
    e_leaves, e_def = jax.tree.flatten(expected)
    assert a_def == e_def, f"{a_def} != {e_def}"
    for a, e in zip(a_leaves, e_leaves, strict=True):
        if jnp.issubdtype(e.dtype, jax.dtypes.prng_key):
            a, e = jax.random.key_data(a), jax.random.key_data(e)
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, e.dtype)
        np.testing.assert_array_equal(
            a.reshape(-1).view(np.uint8), e.reshape(-1).view(np.uint8)
        )


# ------------------------------------------------------------------- optimizers


def make_step(tx, poison_every=0):
    """A jitted train step on `mlp_loss` that counts its traces (`step.traces`).

    With `poison_every` > 0 every such step's gradients are NaN (to exercise
    `skip_nonfinite`'s counters across a restart).
    """

    @counting_jit
    def step(params, opt_state, i):
        grads = jax.grad(mlp_loss)(params)
        if poison_every:
            bad = (i % poison_every) == poison_every - 1
            grads = jax.tree.map(lambda g: jnp.where(bad, jnp.nan, g), grads)
        updates, opt_state = tx.update(grads, opt_state, params)
        return jaxnn.apply_updates(params, updates), opt_state

    return step


def train(step, params, opt_state, start, stop):
    for i in range(start, stop):
        params, opt_state = step(params, opt_state, jnp.int32(i))
    return params, opt_state


@pytest.fixture(scope="module")
def trajectories():
    """Per optimizer: (tx, step, state at RESUME_AT, uninterrupted final state)."""
    out = {}
    for name, make in OPTIMIZERS.items():
        tx = make()
        poison = registry.BY_NAME[name].factory == "skip_nonfinite"
        step = make_step(tx, poison_every=3 if poison else 0)
        params = mlp_params(0)
        mid = train(step, params, tx.init(params), 0, RESUME_AT)
        final = train(step, *mid, RESUME_AT, STEPS)
        out[name] = (tx, step, mid, final)
    return out


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_resume_from_savez_is_bit_identical(name, trajectories, tmp_path):
    tx, step, mid, final = trajectories[name]
    params0 = mlp_params(0)
    path = tmp_path / "ckpt.npz"
    savez_save(path, mid)
    # Restore with the treedef of a fresh `tx.init(params)`, as a new process would.
    restored = savez_restore(path, (params0, tx.init(params0)))
    assert_bitwise_equal(restored, mid)
    resumed = train(step, *restored, RESUME_AT, STEPS)
    assert_bitwise_equal(resumed, final)
    assert step.traces == 1, "restored arrays must not retrace the step"
    # A non-empty state is not trivially equal to init: training moved it.
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(mid[1]), jax.tree.leaves(tx.init(params0)), strict=True
        )
    ]
    assert any(moved) or not moved


def test_skip_nonfinite_counters_survive_restart(trajectories):
    _, _, mid, final = trajectories["skip_nonfinite"]
    # Steps 2 and 5 are poisoned: one skip before the restart, two after.
    assert int(mid[1].total_skipped) == 1
    assert int(final[1].total_skipped) == 2
    assert int(final[1].inner_state[0].count) == STEPS - 2


@pytest.mark.parametrize("name", ORBAX_SUBSET)
def test_optimizer_resume_from_orbax_is_bit_identical(name, trajectories, tmp_path):
    _, step, mid, final = trajectories[name]
    restored = orbax_roundtrip(tmp_path, mid)
    assert_bitwise_equal(restored, mid)
    resumed = train(step, *restored, RESUME_AT, STEPS)
    assert_bitwise_equal(resumed, final)
    assert step.traces == 1


@pytest.mark.parametrize("roundtrip", [savez_roundtrip, orbax_roundtrip])
def test_every_optimizer_state_roundtrips(roundtrip, trajectories, tmp_path):
    # One checkpoint holding every optimizer's state at once keeps orbax cheap.
    states = {name: t[2][1] for name, t in trajectories.items()}
    assert_bitwise_equal(roundtrip(tmp_path, states), states)


# ------------------------------------------------- BatchNorm + dropout MLP model


def bn_model_init(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    bn_params, bn_state = jaxnn.batchnorm_init(16)
    params = {
        "dense1": jaxnn.dense_init(k1, 8, 16),
        "bn": bn_params,
        "dense2": jaxnn.dense_init(k2, 16, 3),
    }
    tx = jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.adamw(0.01))
    # Everything the step reads lives in the saved state, the dropout key included.
    state = {
        "params": params,
        "bn_state": bn_state,
        "opt_state": tx.init(params),
        "key": k3,
        "step": jnp.zeros((), jnp.int32),
    }
    return tx, state


def bn_data(step):
    rng = np.random.default_rng(step)
    x = jnp.asarray(rng.normal(size=(32, 8)) + 3.0, jnp.float32)
    y = jnp.asarray(rng.integers(0, 3, size=32), jnp.int32)
    return x, y


def bn_forward(params, bn_state, key, x):
    h = jaxnn.relu(jaxnn.dense(params["dense1"], x))
    h, bn_state = jaxnn.batchnorm(params["bn"], bn_state, h, training=True)
    h = jaxnn.dropout(key, h, 0.3)
    return jaxnn.dense(params["dense2"], h), bn_state


def make_bn_step(tx):
    @counting_jit
    def step(state, x, y):
        key, sub = jax.random.split(state["key"])

        def loss(params):
            logits, bn_state = bn_forward(params, state["bn_state"], sub, x)
            return jnp.mean(
                jaxnn.softmax_cross_entropy_with_integer_labels(logits, y)
            ), bn_state

        grads, bn_state = jax.grad(loss, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        return {
            "params": jaxnn.apply_updates(state["params"], updates),
            "bn_state": bn_state,
            "opt_state": opt_state,
            "key": key,
            "step": state["step"] + 1,
        }

    return step


def bn_train(step, state, stop):
    while int(state["step"]) < stop:
        state = step(state, *bn_data(int(state["step"])))
    return state


@pytest.fixture(scope="module")
def bn_run():
    """One jitted BN step for the module: (step, state at RESUME_AT, final state)."""
    tx, state0 = bn_model_init()
    step = make_bn_step(tx)
    final = bn_train(step, state0, STEPS)
    mid = bn_train(step, state0, RESUME_AT)
    return step, mid, final


@pytest.mark.parametrize("roundtrip", [savez_roundtrip, orbax_roundtrip])
def test_bn_dropout_model_resume_is_bit_identical(roundtrip, bn_run, tmp_path):
    step, mid, final = bn_run
    saved = mid
    if roundtrip is orbax_roundtrip:
        # orbax stores plain arrays: the typed key goes in as its key data.
        saved = {**mid, "key": jax.random.key_data(mid["key"])}
    restored = roundtrip(tmp_path, saved)
    if roundtrip is orbax_roundtrip:
        restored = {**restored, "key": jax.random.wrap_key_data(restored["key"])}
    assert_bitwise_equal(restored, mid)
    resumed = bn_train(step, restored, STEPS)
    assert_bitwise_equal(resumed, final)
    assert step.traces == 1
    # The running statistics moved away from their init (mean 0, var 1).
    assert float(jnp.max(jnp.abs(final["bn_state"].mean))) > 0.01
    assert isinstance(resumed["bn_state"], jaxnn.BatchNormState)


def test_bn_resume_without_the_saved_key_differs(bn_run):
    # The key really matters: resuming with a fresh key breaks bit-identity.
    step, mid, final = bn_run
    wrong = bn_train(step, {**mid, "key": jax.random.key(123)}, STEPS)
    assert not np.array_equal(
        np.asarray(wrong["params"]["dense2"]["w"]),
        np.asarray(final["params"]["dense2"]["w"]),
    )


@pytest.mark.parametrize("roundtrip", [savez_roundtrip, orbax_roundtrip])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_batchnorm_state_roundtrips(roundtrip, dtype, tmp_path):
    params, state = jaxnn.batchnorm_init(5, dtype)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 5)) + 2, dtype)
    _, state = jaxnn.batchnorm(params, state, x, training=True, momentum=0.5)
    tree = {"params": params, "state": state}
    restored = roundtrip(tmp_path, tree)
    assert_bitwise_equal(restored, tree)
    assert restored["state"].mean.dtype == jnp.float32
    assert restored["params"].scale.dtype == dtype
