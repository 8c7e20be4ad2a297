"""dynamic_loss_scale and loss_scale against a NumPy reference of GradScaler's rules.

The reference (`reference_trajectory`) is written from PyTorch's
`_amp_update_scale_` (aten/src/ATen/native/cpu/AmpGradScalerKernels.cpp) plus
jaxnn's `min_scale` floor. Sequences of finite and non-finite steps run through
one jitted `lax.scan` whose hyperparameters are traced arguments, so every
hyperparameter set shares one compilation (and the traced path is exercised).
The inner optimizer is optax's Adam, checked against optax's Adam run on the
finite steps' unscaled gradients only.
"""

import textwrap
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests.helpers import TOL, counting_jit, run_on_8_cpu_devices

ROOT = Path(__file__).resolve().parents[1]
F32_MAX = float(np.finfo(np.float32).max)


def reference_trajectory(
    finite, init_scale, growth_factor, backoff_factor, growth_interval, min_scale
):
    """GradScaler's scale update, step by step, in NumPy float32.

    Returns arrays (scale before each step, scale after, good_steps after,
    total_skipped after).
    """
    s, good, skipped = np.float32(init_scale), 0, 0
    before, after, goods, skips = [], [], [], []
    for ok in finite:
        before.append(s)
        if not ok:
            s = max(s * np.float32(backoff_factor), np.float32(min_scale))
            good, skipped = 0, skipped + 1
        else:
            good += 1
            if good == growth_interval:
                with np.errstate(over="ignore"):
                    grown = s * np.float32(growth_factor)
                if np.isfinite(grown):
                    s = grown
                good = 0
        after.append(s)
        goods.append(good)
        skips.append(skipped)
    return tuple(np.asarray(v) for v in (before, after, goods, skips))


INNER = optax.adam(1e-2)


@jax.jit
def run_sequence(params, grads, hyper):
    """Runs dynamic_loss_scale(optax.adam) over the stacked scaled gradients.

    `hyper` (a dict of arrays) is traced, so all hyperparameter sets share this
    compilation. Returns per-step (updates, state) and the final params.
    """
    tx = jaxnn.dynamic_loss_scale(INNER, **hyper)

    def step(carry, g):
        params, state = carry
        updates, new_state = tx.update(g, state, params)
        return (optax.apply_updates(params, updates), new_state), (updates, new_state)

    (params, _), (updates, states) = jax.lax.scan(
        step, (params, tx.init(params)), grads
    )
    return params, updates, states


def make_grads(finite, magnitude, seed):
    """Scaled gradients {"w": (T, 3, 2), "b": (T, 2)}; NaN/±inf on bad steps."""
    rng = np.random.default_rng(seed)
    t = len(finite)
    g = {
        "w": rng.normal(size=(t, 3, 2)).astype(np.float32) * magnitude,
        "b": rng.normal(size=(t, 2)).astype(np.float32) * magnitude,
    }
    bad_values = [np.nan, np.inf, -np.inf]
    for i, ok in enumerate(finite):
        if not ok:
            leaf = "w" if i % 2 else "b"
            g[leaf][i].flat[i % g[leaf][i].size] = bad_values[i % 3]
    return g


SEQUENCES = {
    # GradScaler's defaults except a short interval: growth, backoff, resets.
    "defaults": (
        dict(init_scale=2.0**15, growth_factor=2.0, backoff_factor=0.5,
             growth_interval=3, min_scale=1.0),
        [1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1],
        1e3,
    ),
    # Runs of overflows hit the floor and stay there; then growth resumes.
    "floor": (
        dict(init_scale=8.0, growth_factor=2.0, backoff_factor=0.5,
             growth_interval=2, min_scale=2.0),
        [0, 0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 1],
        1.0,
    ),
    # Growth past float32's maximum is refused (scale kept, tracker reset).
    "float32_max": (
        dict(init_scale=2.0**125, growth_factor=2.0, backoff_factor=0.5,
             growth_interval=2, min_scale=1.0),
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1],
        1e30,
    ),
    # Factors that are not powers of two, interval 1 (grow after every good step).
    "odd_factors": (
        dict(init_scale=1000.0, growth_factor=1.7, backoff_factor=0.3,
             growth_interval=1, min_scale=0.5),
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1],
        1.0,
    ),
}  # fmt: skip


SEQUENCE_LENGTH = max(len(finite) for _, finite, _ in SEQUENCES.values())


def _hyper_arrays(hyper):
    return {
        k: jnp.asarray(v, jnp.int32 if k == "growth_interval" else jnp.float32)
        for k, v in hyper.items()
    }


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_sequence_matches_gradscaler_reference(name):
    hyper, finite, magnitude = SEQUENCES[name]
    # Padded with finite steps to one length, so that all sequences share one
    # compilation of `run_sequence` (the scan's length is part of its shape).
    finite = np.asarray(finite + [1] * (SEQUENCE_LENGTH - len(finite)), bool)
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    grads = make_grads(finite, magnitude, seed=len(name))
    final, updates, states = run_sequence(params, grads, _hyper_arrays(hyper))

    before, after, goods, skips = reference_trajectory(finite, **hyper)
    np.testing.assert_array_equal(states.scale, after)
    assert states.scale.dtype == jnp.float32
    np.testing.assert_array_equal(states.good_steps, goods)
    np.testing.assert_array_equal(states.total_skipped, skips)
    if name == "floor":
        assert after.min() == hyper["min_scale"]
    if name == "float32_max":
        assert after.max() == 2.0**127 and np.all(np.isfinite(after))

    # Bad steps: zero updates, inner state bit-identical to the step before.
    inner = states.inner_state
    initial = INNER.init(params)
    for i in np.flatnonzero(~finite):
        for u in jax.tree.leaves(updates):
            np.testing.assert_array_equal(u[i], 0.0)
        prev = jax.tree.map(lambda x, i=i: x[i - 1], inner) if i else initial
        now = jax.tree.map(lambda x, i=i: x[i], inner)
        chex.assert_trees_all_equal(now, prev)

    # Finite steps: optax.adam on the unscaled gradients G / S, in order.
    ref_params, ref_state = params, initial
    for i in np.flatnonzero(finite):
        g = jax.tree.map(lambda x, i=i: x[i] / before[i], grads)
        u, ref_state = INNER.update(g, ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, u)
    chex.assert_trees_all_close(final, ref_params, **TOL["roundings_near_zero"])


def test_non_power_of_two_factors_within_one_ulp_of_pytorch():
    """PyTorch forms S·factor in double and rounds once; jaxnn multiplies in float32."""
    tx = jaxnn.dynamic_loss_scale(jaxnn.identity(), growth_factor=1.1,
                                  backoff_factor=0.3, growth_interval=1,
                                  min_scale=1e-30)  # fmt: skip
    update = jax.jit(tx.update)
    rng = np.random.default_rng(0)
    scales = np.float32(2.0) ** rng.uniform(-40, 100, 50).astype(np.float32)
    for bad in (False, True):
        g = {"w": jnp.asarray([np.nan if bad else 1.0], jnp.float32)}
        factor = 0.3 if bad else 1.1
        for s in scales:
            state = tx.init(g)._replace(scale=jnp.float32(s))
            _, new = update(g, state)
            expected = np.float32(np.float64(s) * factor)
            np.testing.assert_array_max_ulp(np.asarray(new.scale), expected, 1)


def test_float16_params_and_gradients_keep_a_float32_scale():
    params = {"w": jnp.ones((4, 3), jnp.float16), "b": jnp.zeros(3, jnp.float16)}
    tx = jaxnn.dynamic_loss_scale(
        jaxnn.chain(
            jaxnn.clip_by_global_norm(1.0),
            jaxnn.adamw(1e-3, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
        ),
        init_scale=2.0**15,
        growth_interval=1,
    )
    state = tx.init(params)
    update = jax.jit(tx.update)
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, jnp.float16), params)
    # 2^15 → 2^16 → ... : a float16 scale would be inf after the first growth
    # (65536 > 65504, jmp issue 47); the float32 one keeps growing.
    for _ in range(3):
        updates, state = update(grads, state, params)
        params = jaxnn.apply_updates(params, updates)
    assert state.scale.dtype == jnp.float32
    assert float(state.scale) == 2.0**18
    assert float(jaxnn.loss_scale(state)) == 2.0**18
    for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.float32  # the inner chain's dtype for float32 grads
    for p in jax.tree.leaves(params):
        assert p.dtype == jnp.float16
    adam_state = state.inner_state[1][0]
    assert adam_state.mu["w"].dtype == jnp.float32


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_strict_promotion_and_stable_state_dtypes(dtype):
    """No implicit promotion; updates are float32 (inner's dtype for float32 grads)."""
    params = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3)}
    with jax.numpy_dtype_promotion("strict"):
        tx = jaxnn.dynamic_loss_scale(
            jaxnn.adamw(0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
            growth_interval=1,
        )
        state = tx.init(params)
        dtypes = jax.tree.map(lambda x: x.dtype, state)
        for bad in (False, True, False):
            grads = {"w": jnp.full((2, 3), jnp.nan if bad else 0.5, dtype)}
            updates, state = tx.update(grads, state, params)
            params = jaxnn.apply_updates(params, updates)
            assert jax.tree.map(lambda x: x.dtype, state) == dtypes
            assert updates["w"].dtype == jnp.float32
    assert params["w"].dtype == dtype
    assert state.scale.dtype == jnp.float32 and float(state.scale) == 2.0**16


def test_scaled_float16_gradients_survive_unscaling():
    """Values that underflow in float16 reach inner, in float32, via the scale."""
    true = np.array([1e-9, -2e-8, 5e-6, 1e-3], np.float32)
    assert np.all(np.float16(true[:2]) == 0)  # plain float16 loses them
    s = np.float32(2.0**20)
    scaled = jnp.asarray(np.float16(true * s))  # what jax.grad of S·L gives
    tx = jaxnn.dynamic_loss_scale(jaxnn.identity(), init_scale=float(s))
    seen, _ = jax.jit(tx.update)({"g": scaled}, tx.init({"g": scaled}))
    assert seen["g"].dtype == jnp.float32
    expected = np.float16(true * s).astype(np.float32) / s
    np.testing.assert_array_equal(seen["g"], expected)
    np.testing.assert_allclose(seen["g"], true, **TOL["float16_rounding"])


def test_clipping_inside_sees_the_unscaled_norm():
    g = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
    s = 2.0**12
    scaled = jax.tree.map(lambda x: jnp.asarray(x * s), g)
    tx = jaxnn.dynamic_loss_scale(
        jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.sgd(1.0)), init_scale=s
    )
    updates, state = tx.update(scaled, tx.init(scaled))
    norm = np.sqrt(sum(np.sum(x.astype(np.float64) ** 2) for x in g.values()))
    assert norm == 5.0
    np.testing.assert_allclose(state.inner_state[0].norm, norm, **TOL["one_rounding"])
    for k in g:  # clipped to norm 1 and negated by sgd's learning rate
        np.testing.assert_allclose(updates[k], -g[k] / norm, **TOL["roundings"])
    # The PyTorch pitfall, for contrast: clipping outside sees S·‖g‖.
    outside = jaxnn.chain(jaxnn.clip_by_global_norm(1.0), tx)
    _, state = outside.update(scaled, outside.init(scaled))
    np.testing.assert_allclose(state[0].norm, s * norm, **TOL["one_rounding"])


def _train_step(tx):
    @counting_jit
    def step(params, state, x, bad):
        def loss(p):
            h = jnp.tanh(x @ p["w1"])
            out = (h @ p["w2"]).astype(jnp.float32)
            return jnp.mean(out**2)

        s = jaxnn.loss_scale(state)
        grads = jax.grad(lambda p: loss(p) * s)(params)
        grads = jax.tree.map(lambda g: jnp.where(bad, jnp.inf, g), grads)
        updates, state = tx.update(grads, state, params)
        return jaxnn.apply_updates(params, updates), state

    return step


def _f16_setup():
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    params = {
        "w1": (jax.random.normal(k1, (8, 16)) * 0.3).astype(jnp.float16),
        "w2": (jax.random.normal(k2, (16, 4)) * 0.3).astype(jnp.float16),
    }
    x = jax.random.normal(k3, (32, 8)).astype(jnp.float16)
    tx = jaxnn.dynamic_loss_scale(
        jaxnn.adam(1e-2, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
        init_scale=2.0**10,
        growth_interval=2,
    )
    return params, x, tx


BAD_STEPS = (3, 6, 7)


def test_jitted_float16_step_compiles_once_and_checkpoints_bit_identically(tmp_path):
    params0, x, tx = _f16_setup()
    step = _train_step(tx)  # traced once for all steps, good and bad

    def run(params, state, steps):
        for i in steps:
            params, state = step(params, state, x, jnp.asarray(i in BAD_STEPS))
        return params, state

    full_params, full_state = run(params0, tx.init(params0), range(10))
    assert int(full_state.total_skipped) == len(BAD_STEPS)
    # Scale: 2^10 → (growth at steps 1, 5, 9; backoff at 3, 6, 7) per the rules.
    finite = [i not in BAD_STEPS for i in range(10)]
    ref = reference_trajectory(finite, 2.0**10, 2.0, 0.5, 2, 1.0)
    assert float(full_state.scale) == ref[1][-1]

    # Save at step 4 with numpy.savez, restore into a fresh init's structure.
    params, state = run(params0, tx.init(params0), range(4))
    leaves = jax.tree.leaves((params, state))
    np.savez(tmp_path / "ckpt.npz", *[np.asarray(v) for v in leaves])
    treedef = jax.tree.structure((params0, tx.init(params0)))
    with np.load(tmp_path / "ckpt.npz") as data:
        loaded = [jnp.asarray(data[f"arr_{i}"]) for i in range(len(leaves))]
    params, state = jax.tree.unflatten(treedef, loaded)
    assert state.scale.dtype == jnp.float32 and state.good_steps.dtype == jnp.int32
    params, state = run(params, state, range(4, 10))
    chex.assert_trees_all_equal((params, state), (full_params, full_state))
    assert step.traces == 1


def test_fresh_state_can_be_donated():
    """Each state field is its own buffer: jit(step, donate_argnums) runs on it."""
    params = {"w": jnp.ones((4, 3), jnp.float16)}
    tx = jaxnn.dynamic_loss_scale(jaxnn.sgd(0.1))
    state = tx.init(params)
    pointers = [x.unsafe_buffer_pointer() for x in jax.tree.leaves(state)]
    assert len(set(pointers)) == len(pointers)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jaxnn.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1))
    grads = {"w": jnp.full((4, 3), 2.0**15, jnp.float16)}
    params, state = step(params, state, grads)
    params, state = step(params, state, grads)
    np.testing.assert_array_equal(params["w"], np.float16(1.0 - 2 * 0.1))
    assert int(state.good_steps) == 2 and int(state.total_skipped) == 0


# ------------------------------------------------------------- loss_scale search


def test_loss_scale_finds_the_scale_in_nested_states():
    params = {"w": jnp.ones(3), "b": jnp.ones(2)}
    scaler = jaxnn.dynamic_loss_scale(jaxnn.sgd(0.1), init_scale=64.0)
    containers = {
        "itself": scaler,
        "chain": jaxnn.chain(jaxnn.clip_by_value(1.0), scaler),
        "masked": jaxnn.masked(scaler, {"w": True, "b": False}),
        "inject_hyperparams": optax.chain(
            optax.inject_hyperparams(optax.sgd)(0.1), scaler
        ),
        "multi_steps": optax.MultiSteps(scaler, every_k_schedule=2),
        "skip_nonfinite": jaxnn.skip_nonfinite(jaxnn.chain(scaler)),
    }
    for name, tx in containers.items():
        state = tx.init(params)
        s = jaxnn.loss_scale(state)
        assert float(s) == 64.0 and s.dtype == jnp.float32, name
        assert float(jax.jit(jaxnn.loss_scale)(state)) == 64.0, name
    assert float(jaxnn.loss_scale({"opt": [None, scaler.init(params)]})) == 64.0


def test_loss_scale_without_or_with_two_scalers_is_an_error():
    params = {"w": jnp.ones(3)}
    with pytest.raises(ValueError, match="no DynamicLossScaleState"):
        jaxnn.loss_scale(jaxnn.adam(0.1).init(params))
    one = jaxnn.dynamic_loss_scale(jaxnn.sgd(0.1))
    for tx in (jaxnn.chain(one, one), jaxnn.dynamic_loss_scale(one)):
        with pytest.raises(ValueError, match="found 2 DynamicLossScaleStates"):
            jaxnn.loss_scale(tx.init(params))
    with pytest.raises(ValueError, match=r"opt_state\.inner_state"):
        jaxnn.loss_scale(jaxnn.dynamic_loss_scale(one).init(params))


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(init_scale=0.0), ValueError, "init_scale"),
        (dict(init_scale=1e39), ValueError, "init_scale"),
        (dict(init_scale=float("inf")), ValueError, "init_scale"),
        (dict(init_scale=0.5), ValueError, "init_scale must be >= min_scale"),
        (dict(init_scale="big"), TypeError, "init_scale"),
        (dict(growth_factor=1.0), ValueError, "growth_factor"),
        (dict(growth_factor=float("nan")), ValueError, "growth_factor"),
        (dict(growth_factor=float("inf")), ValueError, "growth_factor"),
        (dict(backoff_factor=0.0), ValueError, "backoff_factor"),
        (dict(backoff_factor=1.0), ValueError, "backoff_factor"),
        (dict(backoff_factor=-0.5), ValueError, "backoff_factor"),
        (dict(growth_interval=0), ValueError, "growth_interval"),
        (dict(growth_interval=2**31), ValueError, "growth_interval"),
        (dict(growth_interval=100.0), TypeError, "growth_interval"),
        (dict(growth_interval=True), TypeError, "growth_interval"),
        (dict(min_scale=0.0), ValueError, "min_scale"),
        (dict(min_scale=1e-40), ValueError, "min_scale"),
        (dict(min_scale=-1.0), ValueError, "min_scale"),
    ],
)
def test_bad_hyperparameters_are_rejected_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        jaxnn.dynamic_loss_scale(jaxnn.sgd(0.1), **kwargs)


def test_bad_inner_is_a_type_error_and_numpy_scalars_are_accepted():
    with pytest.raises(TypeError, match="inner"):
        jaxnn.dynamic_loss_scale(jaxnn.sgd)
    tx = jaxnn.dynamic_loss_scale(
        jaxnn.sgd(0.1),
        init_scale=np.float32(4.0),
        growth_factor=np.float64(2.0),
        backoff_factor=np.float16(0.5),
        growth_interval=np.int64(5),
        min_scale=np.float32(1.0),
    )
    assert float(tx.init({"w": jnp.ones(2)}).scale) == 4.0


# ---------------------------------------------------------------- 8 devices

SHARDED_CHECK = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import jaxnn
    from tests.helpers import TOL

    assert jax.device_count() == 8
    mesh = jax.make_mesh((8,), ("data",))
    row = NamedSharding(mesh, P("data"))
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {
        "w": (jax.random.normal(k1, (16, 4)) * 0.1).astype(jnp.float16),
        "b": jnp.zeros(4, jnp.float16),
    }
    grads = jax.random.normal(k2, (6, 16, 4)) * 1e-6   # per step, unscaled
    tx = jaxnn.dynamic_loss_scale(
        jaxnn.chain(jaxnn.clip_by_global_norm(1.0),
                    jaxnn.adamw(1e-2, mu_dtype=jnp.float32, nu_dtype=jnp.float32)),
        growth_interval=2,
    )

    @jax.jit
    def step(params, state, g, bad):
        s = jaxnn.loss_scale(state)
        scaled = {"w": (g * s).astype(jnp.float16),
                  "b": (g.sum(0) * s).astype(jnp.float16)}
        scaled["w"] = jnp.where(bad, jnp.nan, scaled["w"])
        updates, state = tx.update(scaled, state, params)
        return jaxnn.apply_updates(params, updates), state

    def run(params, grads):
        state = tx.init(params)
        for i in range(6):
            params, state = step(params, state, grads[i], jnp.asarray(i == 3))
        return params, state

    p1, s1 = run(params, grads)
    sharded = {"w": jax.device_put(params["w"], row), "b": params["b"]}
    p8, s8 = run(sharded, jax.device_put(grads, NamedSharding(mesh, P(None, "data"))))
    assert p8["w"].sharding.is_equivalent_to(row, 2), p8["w"].sharding
    mu = s8.inner_state[1][0].mu["w"]
    assert mu.sharding.is_equivalent_to(row, 2), mu.sharding
    for a, b in zip(jax.tree.leaves((p1, s1)), jax.tree.leaves((p8, s8))):
        np.testing.assert_allclose(
            np.asarray(a, np.float64),
            np.asarray(b, np.float64),
            **TOL["roundings_near_zero"],
        )
    assert int(s8.total_skipped) == 1 and float(s8.scale) == float(s1.scale)
    print("OK", float(s8.scale))
    """
)


def test_sharded_run_on_8_devices_equals_unsharded():
    run_on_8_cpu_devices(SHARDED_CHECK, expect="OK")
