"""jaxnn transforms inside the ecosystem's containers train exactly as optax does.

Each test trains a tiny model for a few steps twice in the same container: once with
a jaxnn transform, once with its optax twin, and compares the params after every
step (float32 tolerance). The containers are the real ones users train with:
`flax.nnx.Optimizer`, flax.linen's `TrainState`, an equinox model under
`eqx.filter_jit`, and optax's wrappers (`inject_hyperparams`, `MultiSteps`,
`partition`, `contrib.reduce_on_plateau`); the last test saves and restores a
`TrainState` holding a jaxnn state with orbax mid-training.

Compilations are kept few: each test jits one step function that advances both runs.
Hyperparameters are passed to both libraries by keyword, so these tests check the
containers, not the positional signatures (tests/test_optax_signatures.py does).
"""

from __future__ import annotations

import warnings

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from flax.training import train_state

import jaxnn
from tests.helpers import assert_trees_close

STEPS = 5

_rng = np.random.default_rng(0)
X = jnp.asarray(_rng.normal(size=(16, 4)), jnp.float32)
Y = jnp.asarray(_rng.normal(size=(16, 3)), jnp.float32)


def mlp_params(seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        "hidden": {
            "w": jnp.asarray(rng.normal(size=(4, 8)) * 0.5, jnp.float32),
            "b": jnp.asarray(rng.normal(size=(8,)) * 0.1, jnp.float32),
        },
        "out": {
            "w": jnp.asarray(rng.normal(size=(8, 3)) * 0.5, jnp.float32),
            "b": jnp.zeros((3,), jnp.float32),
        },
    }


def mlp_loss(params, x=X, y=Y):
    h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"][None, :])
    pred = h @ params["out"]["w"] + params["out"]["b"][None, :]
    return jnp.mean((pred - y) ** 2)


def run_pair(tx_jaxnn, tx_optax, steps=STEPS, params=None, extra=None):
    """Params after each step for both transforms, from one jitted step function.

    `extra(i, params) -> dict` gives extra keyword arguments for `update` (e.g.
    `value=loss` for reduce_on_plateau).
    """
    params = mlp_params() if params is None else params
    runs = [
        (tx_jaxnn, jaxnn.apply_updates),
        (tx_optax, optax.apply_updates),
    ]

    @jax.jit
    def step(carries):
        out = []
        for (tx, apply), (p, s) in zip(runs, carries, strict=True):
            loss, g = jax.value_and_grad(mlp_loss)(p)
            kwargs = {} if extra is None else extra(loss)
            u, s = tx.update(g, s, p, **kwargs)
            out.append((apply(p, u), s))
        return out

    carries = [(params, tx.init(params)) for tx, _ in runs]
    history = []
    for _ in range(steps):
        carries = step(carries)
        history.append(carries)
    return history


def assert_same_trajectory(history):
    for i, ((p_j, _), (p_o, _)) in enumerate(history):
        try:
            assert_trees_close(p_j, p_o)
        except AssertionError as e:
            raise AssertionError(f"params differ after step {i + 1}: {e}") from e


# ----------------------------------------------------------------- flax.nnx


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(4, 8, rngs=rngs)
        self.out = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))


def test_flax_nnx_optimizer():
    """nnx.Optimizer(model, jaxnn chain) trains as with the optax chain."""
    txs = [
        jaxnn.chain(
            jaxnn.clip_by_global_norm(0.5),
            jaxnn.adamw(learning_rate=0.02, weight_decay=0.1),
        ),
        optax.chain(
            optax.clip_by_global_norm(0.5),
            optax.adamw(learning_rate=0.02, weight_decay=0.1),
        ),
    ]
    models = [NnxMLP(nnx.Rngs(0)) for _ in txs]
    opts = [
        nnx.Optimizer(m, tx, wrt=nnx.Param) for m, tx in zip(models, txs, strict=True)
    ]

    def loss_fn(model, x, y):
        return jnp.mean((model(x) - y) ** 2)

    @nnx.jit
    def step(m0, o0, m1, o1, x, y):
        for m, o in ((m0, o0), (m1, o1)):
            o.update(m, nnx.grad(loss_fn)(m, x, y))

    for i in range(STEPS):
        step(models[0], opts[0], models[1], opts[1], X, Y)
        p_j, p_o = (nnx.to_pure_dict(nnx.state(m, nnx.Param)) for m in models)
        try:
            assert_trees_close(p_j, p_o)
        except AssertionError as e:
            raise AssertionError(f"params differ after step {i + 1}: {e}") from e
    assert int(opts[0].step[...]) == STEPS


# -------------------------------------------------------------- flax.linen


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(jnp.tanh(nn.Dense(8)(x)))


def test_flax_linen_train_state():
    """TrainState(tx=jaxnn.nadam) trains as TrainState(tx=optax.nadam)."""
    model = LinenMLP()
    params = model.init(jax.random.key(0), X)["params"]
    states = [
        train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)
        for tx in (
            jaxnn.nadam(learning_rate=0.02),
            optax.nadam(learning_rate=0.02),
        )
    ]

    def loss_fn(params, state, x, y):
        return jnp.mean((state.apply_fn({"params": params}, x) - y) ** 2)

    @jax.jit
    def step(states, x, y):
        return [
            s.apply_gradients(grads=jax.grad(loss_fn)(s.params, s, x, y))
            for s in states
        ]

    for i in range(STEPS):
        states = step(states, X, Y)
        try:
            assert_trees_close(states[0].params, states[1].params)
        except AssertionError as e:
            raise AssertionError(f"params differ after step {i + 1}: {e}") from e
    assert int(states[0].step) == STEPS


# ----------------------------------------------------------------- equinox


def test_equinox_filter_jit():
    """An eqx.nn.MLP trained under eqx.filter_jit with jaxnn.sgd matches optax."""
    model = eqx.nn.MLP(4, 3, width_size=8, depth=1, key=jax.random.key(0))
    txs = [
        jaxnn.sgd(learning_rate=0.05, momentum=0.9, nesterov=True),
        optax.sgd(learning_rate=0.05, momentum=0.9, nesterov=True),
    ]
    models = [model, model]
    states = [tx.init(eqx.filter(model, eqx.is_inexact_array)) for tx in txs]

    def loss_fn(model, x, y):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    @eqx.filter_jit
    def step(models, states, x, y):
        out_m, out_s = [], []
        for tx, m, s in zip(txs, models, states, strict=True):
            grads = eqx.filter_grad(loss_fn)(m, x, y)
            u, s = tx.update(grads, s, eqx.filter(m, eqx.is_inexact_array))
            out_m.append(eqx.apply_updates(m, u))
            out_s.append(s)
        return out_m, out_s

    for i in range(STEPS):
        models, states = step(models, states, X, Y)
        p_j, p_o = (eqx.filter(m, eqx.is_inexact_array) for m in models)
        try:
            assert_trees_close(p_j, p_o)
        except AssertionError as e:
            raise AssertionError(f"params differ after step {i + 1}: {e}") from e


# ------------------------------------------------------------ optax wrappers


def test_inject_hyperparams_adam_and_adamw_lr_changed_mid_run():
    """optax.inject_hyperparams(jaxnn.adam / adamw): same run, lr changed mid-run."""
    pairs = [
        (
            optax.inject_hyperparams(jaxnn.adam)(learning_rate=0.02, b1=0.8),
            optax.inject_hyperparams(optax.adam)(learning_rate=0.02, b1=0.8),
        ),
        (
            optax.inject_hyperparams(jaxnn.adamw)(learning_rate=0.02, weight_decay=0.3),
            optax.inject_hyperparams(optax.adamw)(learning_rate=0.02, weight_decay=0.3),
        ),
    ]
    txs = [tx for pair in pairs for tx in pair]
    params = mlp_params()

    @jax.jit
    def step(carries):
        out = []
        for i, (tx, (p, s)) in enumerate(zip(txs, carries, strict=True)):
            apply = jaxnn.apply_updates if i % 2 == 0 else optax.apply_updates
            u, s = tx.update(jax.grad(mlp_loss)(p), s, p)
            out.append((apply(p, u), s))
        return out

    carries = [(params, tx.init(params)) for tx in txs]
    for i in range(2 * STEPS):
        if i == STEPS:
            for _, s in carries:
                s.hyperparams["learning_rate"] = jnp.asarray(0.005)
                if "weight_decay" in s.hyperparams:
                    s.hyperparams["weight_decay"] = jnp.asarray(0.05)
        carries = step(carries)
        for k in (0, 2):
            try:
                assert_trees_close(carries[k][0], carries[k + 1][0])
            except AssertionError as e:
                name = "adam" if k == 0 else "adamw"
                raise AssertionError(f"{name}: differ after step {i + 1}: {e}") from e
    # The change took effect (the run is not one long constant-lr run).
    assert float(carries[0][1].hyperparams["learning_rate"]) == np.float32(0.005)


def test_multisteps_accumulates_jaxnn_adam():
    """optax.MultiSteps(jaxnn.adam(...), 3) matches optax.MultiSteps(optax.adam)."""
    history = run_pair(
        optax.MultiSteps(jaxnn.adam(learning_rate=0.05), every_k_schedule=3),
        optax.MultiSteps(optax.adam(learning_rate=0.05), every_k_schedule=3),
        steps=7,
    )
    assert_same_trajectory(history)
    # Params moved only at steps 3 and 6 (the accumulation took place).
    p0 = mlp_params()
    moved = [
        not np.array_equal(
            history[i][0][0]["out"]["w"], history[i - 1][0][0]["out"]["w"]
        )
        if i
        else not np.array_equal(history[0][0][0]["out"]["w"], p0["out"]["w"])
        for i in range(7)
    ]
    assert moved == [False, False, True, False, False, True, False], moved


def test_optax_partition_with_jaxnn_transforms():
    """optax.partition routes leaves to jaxnn transforms as to optax ones."""

    def labels(params):
        return jax.tree.map(lambda x: "decay" if x.ndim == 2 else "plain", params)

    history = run_pair(
        optax.partition(
            {
                "decay": jaxnn.adamw(learning_rate=0.02, weight_decay=0.5),
                "plain": jaxnn.rmsprop(learning_rate=0.01, centered=True),
            },
            labels,
        ),
        optax.partition(
            {
                "decay": optax.adamw(learning_rate=0.02, weight_decay=0.5),
                "plain": optax.rmsprop(learning_rate=0.01, centered=True),
            },
            labels,
        ),
    )
    assert_same_trajectory(history)


def test_reduce_on_plateau_after_jaxnn_optimizer():
    """optax.chain(jaxnn.adam, contrib.reduce_on_plateau) matches the optax chain."""

    def plateau():
        return optax.contrib.reduce_on_plateau(
            factor=0.5, patience=1, rtol=0.5, cooldown=0
        )

    history = run_pair(
        optax.chain(jaxnn.adam(learning_rate=0.05), plateau()),
        optax.chain(optax.adam(learning_rate=0.05), plateau()),
        steps=8,
        extra=lambda loss: {"value": loss},
    )
    assert_same_trajectory(history)
    scale_j = float(history[-1][0][1][1].scale)
    scale_o = float(history[-1][1][1][1].scale)
    assert scale_j == scale_o
    assert scale_o < 1.0, "the plateau never reduced the lr: the test is too easy"


# ------------------------------------------------------------------- orbax


def _orbax():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import orbax.checkpoint as ocp
    return ocp


def test_orbax_save_restore_mid_training_is_bit_identical(tmp_path):
    """A TrainState with a jaxnn state, saved and restored by orbax, resumes exactly.

    The optimizer wraps jaxnn in optax's containers too (inject_hyperparams inside
    a jaxnn chain with skip_nonfinite), so the checkpoint holds dicts, NamedTuples
    of both libraries and empty states.
    """
    ocp = _orbax()
    model = LinenMLP()
    params = model.init(jax.random.key(1), X)["params"]
    tx = jaxnn.skip_nonfinite(
        jaxnn.chain(
            jaxnn.clip_by_global_norm(1.0),
            optax.inject_hyperparams(jaxnn.adamw)(learning_rate=0.02, weight_decay=0.1),
        )
    )
    state0 = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    def loss_fn(params, x, y):
        return jnp.mean((model.apply({"params": params}, x) - y) ** 2)

    @jax.jit
    def step(state, i):
        grads = jax.grad(loss_fn)(state.params, X, Y)
        # Step 2 (0-based) has a NaN gradient: skip_nonfinite's counters must
        # survive the restart too.
        grads = jax.tree.map(lambda g: jnp.where(i == 2, jnp.nan, g), grads)
        return state.apply_gradients(grads=grads)

    uninterrupted = state0
    for i in range(6):
        uninterrupted = step(uninterrupted, i)

    state = state0
    for i in range(3):
        state = step(state, i)
    path = tmp_path / "ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with ocp.StandardCheckpointer() as ckptr:
            ckptr.save(path, state)
            ckptr.wait_until_finished()
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state0)
            restored = ckptr.restore(path, abstract)
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for i in range(3, 6):
        restored = step(restored, i)

    a_leaves, a_def = jax.tree.flatten(restored)
    e_leaves, e_def = jax.tree.flatten(uninterrupted)
    assert a_def == e_def
    for a, e in zip(a_leaves, e_leaves, strict=True):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(
            a.reshape(-1).view(np.uint8), e.reshape(-1).view(np.uint8)
        )
    assert int(restored.opt_state.total_skipped) == 1
