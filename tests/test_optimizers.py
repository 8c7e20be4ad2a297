"""The optimizers: one table against optax, convergence, and NumPy references.

The table runs the shared checks over every optimizer and variant. The NumPy
references are written from notes/TECHNIQUES.md section 7 (not from optax) in
float64, in the notes' own form where it differs only in bookkeeping (momentum with
η folded into v, Nesterov's look-ahead gradient).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests import registry
from tests.helpers import (
    TOL,
    assert_trees_close,
    mlp_loss,
    mlp_params,
    scan_trajectories,
)


def _loguniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _adam_hparams(rng):
    return dict(
        learning_rate=_loguniform(rng, 1e-3, 3e-2),
        b1=float(rng.uniform(0.5, 0.95)),
        b2=float(rng.uniform(0.9, 0.9999)),
        eps=_loguniform(rng, 1e-8, 1e-3),
        eps_root=_loguniform(rng, 1e-10, 1e-4),
    )


def _adamw_hparams(rng):
    h = _adam_hparams(rng)
    del h["eps_root"]
    return {**h, "weight_decay": _loguniform(rng, 1e-3, 1e-1)}


def _rms_hparams(rng):
    return dict(
        learning_rate=_loguniform(rng, 1e-3, 1e-2),
        decay=float(rng.uniform(0.5, 0.99)),
        eps=_loguniform(rng, 1e-8, 1e-3),
        initial_scale=float(rng.uniform(0.0, 1.0)),
    )


def _momentum_hparams(rng):
    return dict(
        learning_rate=_loguniform(rng, 1e-3, 3e-2), beta=float(rng.uniform(0.1, 0.95))
    )


def _lr_only(rng):
    return dict(learning_rate=_loguniform(rng, 1e-3, 1e-1))


@dataclasses.dataclass(frozen=True)
class Case:
    """A registry entry (jaxnn factory and optax twin, same keywords), and settings."""

    entry: registry.Entry
    sample: Callable[[np.random.Generator], dict]  # random non-default hparams
    lr_quadratic: float
    lr_rosenbrock: float
    base: dict = dataclasses.field(default_factory=dict)  # over the entry's hparams

    def ours(self, **kwargs):
        return self.entry.make(**{**self.base, **kwargs})

    def theirs(self, **kwargs):
        return self.entry.twin(**{**self.base, **kwargs})


def _default(factory, name):
    return inspect.signature(factory).parameters[name].default


# AdamW at its default decay here (the registry's 0.1 moves the quadratic's minimum
# away from 0, so the convergence test would measure the decay, not the optimizer).
_ADAMW_BASE = dict(weight_decay=_default(jaxnn.adamw, "weight_decay"))


# (sample, lr_quadratic, lr_rosenbrock[, base]), keyed by the names of the
# "optimizers" suite of tests/registry.py (a new entry there needs its settings
# here). The entry's hyperparameters, updated by `base`, are the values that each
# test's keywords override.
SETTINGS = {
    "gd": (_lr_only, 1e-1, 1e-3),
    "sgd": (_lr_only, 1e-1, 1e-3),
    "sgd_momentum": (
        lambda r: dict(learning_rate=_loguniform(r, 1e-3, 3e-2), momentum=0.7),
        1e-2,
        1e-3,
    ),
    "sgd_nesterov": (
        lambda r: dict(learning_rate=_loguniform(r, 1e-3, 3e-2), momentum=0.5),
        1e-2,
        1e-3,
    ),
    "momentum": (_momentum_hparams, 1e-2, 1e-3),
    "nesterov": (_momentum_hparams, 1e-2, 1e-3),
    "adagrad": (
        lambda r: dict(
            learning_rate=_loguniform(r, 1e-2, 1e-1),
            initial_accumulator_value=float(r.uniform(0.0, 1.0)),
            eps=_loguniform(r, 1e-8, 1e-3),
        ),
        1e-1,
        1e-1,
    ),
    "rmsprop": (_rms_hparams, 1e-2, 1e-3),
    "rmsprop_centered": (_rms_hparams, 1e-2, 1e-3),
    "rmsprop_momentum": (_rms_hparams, 1e-3, 1e-3),
    "rmsprop_centered_nesterov": (_rms_hparams, 1e-3, 1e-3),
    "adam": (_adam_hparams, 3e-2, 1e-2),
    "adamw": (_adamw_hparams, 3e-2, 1e-2, _ADAMW_BASE),
    "adamw_masked": (_adamw_hparams, 3e-2, 1e-2, _ADAMW_BASE),
    "nadam": (_adam_hparams, 3e-2, 1e-2),
}
OPT = {e.name: Case(e, *SETTINGS[e.name]) for e in registry.entries("optimizers")}
assert set(SETTINGS) == set(OPT), set(SETTINGS) ^ set(OPT)
NAMES = list(OPT)


# --- the table: trajectories equal optax's ----------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_matches_optax_over_100_steps(name):
    """The registry's values at learning rate 1e-2, and random hyperparameters."""
    case = OPT[name]
    seed = NAMES.index(name)
    settings = [
        dict(learning_rate=1e-2),
        case.sample(np.random.default_rng(seed)),
    ]
    params = mlp_params(seed)
    runs = []
    for kwargs in settings:
        runs.append((case.ours(**kwargs), jaxnn.apply_updates))
        runs.append((case.theirs(**kwargs), optax.apply_updates))
    trajs = scan_trajectories(runs, params, mlp_loss, 100)
    for i, kwargs in enumerate(settings):
        ours, theirs = trajs[2 * i], trajs[2 * i + 1]
        assert_trees_close(ours, theirs, err_msg=f"{name}({kwargs})")
        # The trajectory moved: the comparison is not of two frozen copies.
        first = jax.tree.leaves(params)[0]
        assert not np.allclose(jax.tree.leaves(ours)[0][-1], first, **TOL["distinct"])


# --- convergence -------------------------------------------------------------------

_A = jnp.linspace(0.5, 5.0, 10)
_C = jnp.linspace(-2.0, 2.0, 10)


def _quadratic(p):
    return 0.5 * jnp.sum(_A * (p["w"] - _C) ** 2)


def _rosenbrock(p):
    x, y = p["xy"]
    return (1 - x) ** 2 + 100.0 * (y - x**2) ** 2


@pytest.mark.parametrize("name", NAMES)
def test_converges_on_quadratic_and_rosenbrock(name):
    case = OPT[name]
    tx_quad = case.ours(learning_rate=case.lr_quadratic)
    tx_rosen = case.ours(learning_rate=case.lr_rosenbrock)

    def minimize(tx, loss, params, steps):
        def step(carry, _):
            p, s = carry
            u, s = tx.update(jax.grad(loss)(p), s, p)
            return (jaxnn.apply_updates(p, u), s), None

        init = (params, tx.init(params))
        return loss(jax.lax.scan(step, init, None, length=steps)[0][0])

    quad0 = {"w": jnp.zeros(10)}
    rosen0 = {"xy": (jnp.float32(-1.2), jnp.float32(1.0))}
    quad, rosen = jax.jit(
        lambda q, r: (
            minimize(tx_quad, _quadratic, q, 500),
            minimize(tx_rosen, _rosenbrock, r, 5000),
        )
    )(quad0, rosen0)
    assert float(quad) < 1e-3 * float(_quadratic(quad0))
    # From 24.2 at (-1.2, 1) to below 0.05: through the curved valley to (1, 1).
    assert float(rosen) < 0.05


# --- compilation, state structure and dtypes -------------------------------------


def _bf16_grads(params, seed):
    """Gradients of the real loss at float32 params, cast to bfloat16 (computed
    outside jit once: compiling bfloat16 matmuls on CPU is slow)."""
    f32 = jax.tree.map(lambda p: p.astype(jnp.float32), params)
    grads = jax.grad(mlp_loss)(f32, seed)
    return jax.tree.map(lambda g: g.astype(jnp.bfloat16), grads)


@functools.cache
def _bf16_setup():
    params = mlp_params(0, jnp.bfloat16)
    return params, [_bf16_grads(params, seed) for seed in range(3)]


@pytest.mark.parametrize("name", NAMES)
def test_jitted_steps_no_retrace_stable_state_bf16_kept(name):
    """Later updates do not recompile; state and params keep structure and dtype.

    With bfloat16 params (float32 state stability is also enforced by
    `lax.scan` in the optax comparison, whose carry may not change dtype).
    """
    tx = OPT[name].ours(learning_rate=1e-2)
    params0, all_grads = _bf16_setup()
    params = params0
    state = tx.init(params)
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(None)
        updates, new_state = tx.update(grads, state, params)
        return jaxnn.apply_updates(params, updates), updates, new_state

    for grads in all_grads:
        new_params, updates, new_state = step(params, state, grads)
        chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)
        chex.assert_trees_all_equal_shapes_and_dtypes(updates, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)
        params, state = new_params, new_state
    assert len(traces) == 1, "a later update recompiled"
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))
    assert not all(
        bool(jnp.all(a == b))
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params0), strict=True)
    ), "bfloat16 params did not move"


@pytest.mark.parametrize("name", NAMES)
def test_strict_dtype_promotion(name):
    """The update runs under strict promotion: every mixed-dtype op is explicit.

    bfloat16 params and state with float32 gradients (optax's update would
    raise here).
    """
    tx = OPT[name].ours(learning_rate=1e-2)
    params = mlp_params(0, jnp.bfloat16)
    grads = jax.tree.map(lambda p: jnp.ones_like(p, jnp.float32), params)
    state = tx.init(params)
    with jax.numpy_dtype_promotion("strict"):
        updates, new_state = tx.update(grads, state, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(updates, grads)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)


@pytest.mark.parametrize("factory", [jaxnn.adam, jaxnn.adamw, jaxnn.nadam])
def test_mu_nu_dtype_keep_float32_moments_under_bf16(factory):
    params, all_grads = _bf16_setup()
    tx = factory(1e-2, mu_dtype=jnp.float32, nu_dtype=jnp.float32)
    state = tx.init(params)
    update = jax.jit(tx.update)
    for grads in all_grads[:2]:
        updates, state = update(grads, state, params)
        params = jaxnn.apply_updates(params, updates)
    adam_state = state[0]
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(adam_state.mu))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(adam_state.nu))
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(updates))
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(params))
    # mu_dtype alone: nu follows the params, as optax.
    mu_only = jaxnn.adam(1e-2, mu_dtype=jnp.float32).init(params)[0]
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(mu_only.nu))
    chex.assert_trees_all_equal_dtypes(
        mu_only.mu, optax.adam(1e-2, mu_dtype=jnp.float32).init(params)[0].mu
    )


# --- NumPy float64 references written from TECHNIQUES.md ---------------------------

STEPS = 25


def _grad_sequence(seed, shape=(7,)):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for _ in range(STEPS)]


def _run_ours(tx, w0, grads):
    w = jnp.asarray(w0, jnp.float32)
    state = tx.init(w)
    update = jax.jit(tx.update)
    out = []
    for g in grads:
        u, state = update(jnp.asarray(g, jnp.float32), state, w)
        w = jaxnn.apply_updates(w, u)
        out.append(np.asarray(w, np.float64))
    return np.stack(out)


W0 = np.linspace(-1.0, 1.0, 7)


def test_momentum_matches_notes_form():
    # Notes: v ← βv + ηg; W ← W − v (η folded into v; same iterates for constant η).
    lr, beta = 0.05, 0.8
    grads = _grad_sequence(0)
    w, v, ref = W0.copy(), np.zeros(7), []
    for g in grads:
        v = beta * v + lr * g
        w = w - v
        ref.append(w)
    np.testing.assert_allclose(
        _run_ours(jaxnn.momentum(lr, beta), W0, grads), ref, **TOL["trajectory"]
    )


def test_adagrad_reference():
    lr, g0, eps = 0.1, 0.1, 1e-7
    grads = _grad_sequence(1)
    w, big_g, ref = W0.copy(), np.full(7, g0), []
    for g in grads:
        big_g = big_g + g**2
        w = w - lr * g / np.sqrt(big_g + eps)
        ref.append(w)
    np.testing.assert_allclose(
        _run_ours(jaxnn.adagrad(lr), W0, grads), ref, **TOL["trajectory"]
    )


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_reference(centered):
    lr, beta, eps = 0.01, 0.9, 1e-8
    grads = _grad_sequence(2)
    w, big_g, m, ref = W0.copy(), np.zeros(7), np.zeros(7), []
    for g in grads:
        big_g = beta * big_g + (1 - beta) * g**2
        m = beta * m + (1 - beta) * g
        denom = big_g - m**2 if centered else big_g
        w = w - lr * g / np.sqrt(denom + eps)
        ref.append(w)
    ours = _run_ours(jaxnn.rmsprop(lr, centered=centered), W0, grads)
    np.testing.assert_allclose(ours, ref, **TOL["trajectory"])


def _np_adam(grads, lr, b1, b2, eps, weight_decay=0.0, nadam=False):
    w, m, v, ref = W0.copy(), np.zeros(7), np.zeros(7), []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        if nadam:
            m_hat = b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
        else:
            m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        # AdamW: the decay λW is inside the η-scaled step (optax/PyTorch).
        w = w - lr * (m_hat / (np.sqrt(v_hat) + eps) + weight_decay * w)
        ref.append(w)
    return np.stack(ref)


def test_adam_reference_with_bias_correction():
    grads = _grad_sequence(3)
    ref = _np_adam(grads, 0.01, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(
        _run_ours(jaxnn.adam(0.01), W0, grads), ref, **TOL["trajectory"]
    )
    # Without bias correction (the notes' form) the first step would be 10x
    # smaller: the check above would fail.
    no_bc = W0 - 0.01 * (0.1 * grads[0]) / (np.sqrt(0.001 * grads[0] ** 2) + 1e-8)
    assert not np.allclose(no_bc, ref[0], **TOL["distinct"])


def test_adamw_decay_is_scaled_by_learning_rate():
    grads = _grad_sequence(4)
    lr, wd = 0.02, 0.5
    ref = _np_adam(grads, lr, 0.9, 0.999, 1e-8, weight_decay=wd)
    ours = _run_ours(jaxnn.adamw(lr, weight_decay=wd), W0, grads)
    np.testing.assert_allclose(ours, ref, **TOL["trajectory"])
    # The notes' unscaled W ← W − ηAdam − λW would be far off.
    unscaled = _np_adam(grads, lr, 0.9, 0.999, 1e-8, weight_decay=wd / lr)
    assert not np.allclose(ours, unscaled, **TOL["distinct"])


def test_nadam_reference():
    grads = _grad_sequence(5)
    ref = _np_adam(grads, 0.01, 0.9, 0.999, 1e-8, nadam=True)
    np.testing.assert_allclose(
        _run_ours(jaxnn.nadam(0.01), W0, grads), ref, **TOL["trajectory"]
    )


def test_nesterov_equals_look_ahead_form_under_change_of_variables():
    """TECHNIQUES.md 7: W' = W − βv maps the notes' look-ahead iterates to ours.

    Notes (look-ahead): v ← βv + η∇L(W − βv); W ← W − v.
    jaxnn: u ← βu + g(W'); W' ← W' − η(g + βu), needing only the gradient at W'.
    """
    a = np.linspace(0.5, 3.0, 7)
    c = np.linspace(1.0, -1.0, 7)

    def grad_np(w):
        return a * (w - c)  # L = ½ Σ a (w − c)²

    lr, beta = 0.05, 0.9
    w, v, look_ahead, plain = W0.copy(), np.zeros(7), [], []
    for _ in range(STEPS):
        v = beta * v + lr * grad_np(w - beta * v)
        w = w - v
        look_ahead.append(w - beta * v)  # W' = W − βv
        plain.append(w)

    tx = jaxnn.nesterov(lr, beta)
    wj = jnp.asarray(W0, jnp.float32)
    state, ours = tx.init(wj), []
    for _ in range(STEPS):
        g = jnp.asarray(a, jnp.float32) * (wj - jnp.asarray(c, jnp.float32))
        u, state = tx.update(g, state, wj)
        wj = jaxnn.apply_updates(wj, u)
        ours.append(np.asarray(wj, np.float64))
    np.testing.assert_allclose(ours, look_ahead, **TOL["trajectory"])
    # The change of variables matters: ours are not the notes' W themselves.
    assert not np.allclose(ours, plain, **TOL["distinct"])


# --- schedules as learning rates, masks ---------------------------------------------


def test_schedule_as_learning_rate_matches_optax():
    sched = jaxnn.warmup_cosine_decay_schedule(0.0, 2e-2, 10, 100, 1e-3)
    sched_optax = optax.warmup_cosine_decay_schedule(0.0, 2e-2, 10, 100, 1e-3)
    names = ["sgd_momentum", "rmsprop_momentum", "adamw"]
    runs = []
    for name in names:
        runs.append((OPT[name].ours(learning_rate=sched), jaxnn.apply_updates))
        runs.append((OPT[name].theirs(learning_rate=sched_optax), optax.apply_updates))
    trajs = scan_trajectories(runs, mlp_params(1), mlp_loss, 60)
    for i, name in enumerate(names):
        assert_trees_close(trajs[2 * i], trajs[2 * i + 1], err_msg=name)


def test_schedule_is_applied_at_the_right_step():
    # Step k (0-based) must use schedule(k): with g = 1, W_k = W_{k-1} − (k + 1)/10.
    tx = jaxnn.sgd(lambda count: (count + 1) / 10)
    w = jnp.zeros(())
    state = tx.init(w)
    steps = []
    for _ in range(4):
        u, state = tx.update(jnp.ones(()), state, w)
        steps.append(float(u))
    np.testing.assert_allclose(steps, [-0.1, -0.2, -0.3, -0.4], **TOL["roundings"])


@pytest.mark.parametrize("kind", ["pytree", "callable", "prefix"])
def test_adamw_mask(kind):
    params = mlp_params(2)
    pytree_mask = jax.tree.map(lambda p: p.ndim == 2, params)
    mask = {
        "pytree": pytree_mask,
        "callable": lambda p: jax.tree.map(lambda x: x.ndim == 2, p),
        "prefix": {"layers": [{"w": True, "b": False}] * 2, "head": False},
    }[kind]
    lr, wd = 0.1, 0.5
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    tx = jaxnn.adamw(lr, weight_decay=wd, mask=mask)
    updates, _ = tx.update(zero_grads, tx.init(params), params)
    # Zero gradients: Adam's part is 0, so the update is −ηλW where masked, else 0.
    expected = jax.tree.map(
        lambda p, m: -lr * wd * p if m else jnp.zeros_like(p), params, pytree_mask
    )
    assert_trees_close(updates, expected)


def test_adamw_mask_trajectory_matches_optax():
    params = mlp_params(2)
    mask = {"layers": [{"w": True, "b": False}] * 2, "head": (True, False)}
    runs = [
        (jaxnn.adamw(0.05, weight_decay=0.5, mask=mask), jaxnn.apply_updates),
        (optax.adamw(0.05, weight_decay=0.5, mask=mask), optax.apply_updates),
    ]
    ours, theirs = scan_trajectories(runs, params, mlp_loss, 50)
    assert_trees_close(ours, theirs)


# --- validation ---------------------------------------------------------------------

BAD = [
    (jaxnn.momentum, dict(beta=1.0), "beta"),
    (jaxnn.nesterov, dict(beta=-0.1), "beta"),
    (jaxnn.sgd, dict(momentum=1.5), "momentum"),
    (jaxnn.sgd, dict(learning_rate=-1.0), "learning_rate"),
    (jaxnn.adagrad, dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (jaxnn.adagrad, dict(eps=-1e-7), "eps"),
    (jaxnn.rmsprop, dict(decay=1.0), "decay"),
    (jaxnn.rmsprop, dict(eps=-1.0), "eps"),
    (jaxnn.rmsprop, dict(initial_scale=-1.0), "initial_scale"),
    (jaxnn.rmsprop, dict(momentum=1.0), "momentum"),
    (jaxnn.adam, dict(b1=1.0), "b1"),
    (jaxnn.adam, dict(b1=-0.5), "b1"),
    (jaxnn.adam, dict(b2=1.0), "b2"),
    (jaxnn.adam, dict(b2=float("nan")), "b2"),
    (jaxnn.adam, dict(eps=-1e-8), "eps"),
    (jaxnn.adam, dict(eps_root=-1e-8), "eps_root"),
    (jaxnn.adamw, dict(weight_decay=-1e-4), "weight_decay"),
    (jaxnn.adamw, dict(b2=2.0), "b2"),
    (jaxnn.nadam, dict(b1=1.0), "b1"),
]


@pytest.mark.parametrize(("factory", "kwargs", "arg"), BAD)
def test_bad_hyperparameters_raise_naming_the_argument(factory, kwargs, arg):
    kwargs = {"learning_rate": 1e-2, **kwargs}
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        factory(**kwargs)


def test_non_floating_moment_dtype_is_a_type_error():
    with pytest.raises(TypeError, match=r"\bmu_dtype\b"):
        jaxnn.adam(1e-2, mu_dtype=jnp.int32)


def test_nesterov_without_momentum_raises():
    with pytest.raises(ValueError, match="momentum"):
        jaxnn.rmsprop(1e-2, nesterov=True)


def test_traced_hyperparameters_pass_validation():
    @jax.jit
    def f(b1, lr):
        tx = jaxnn.adam(lr, b1=b1)
        w = jnp.ones(3)
        u, _ = tx.update(w, tx.init(w), w)
        return u

    ours = f(jnp.float32(0.8), jnp.float32(0.1))
    np.testing.assert_allclose(ours, -0.1 * np.ones(3), **TOL["reduction"])


def test_defaults_equal_optax():
    """Signatures of DESIGN.md; defaults equal to optax's where both have them."""
    import inspect

    pairs = [
        (jaxnn.adagrad, optax.adagrad),
        (jaxnn.rmsprop, optax.rmsprop),
        (jaxnn.adam, optax.adam),
        (jaxnn.adamw, optax.adamw),
        (jaxnn.nadam, optax.nadam),
        (jaxnn.sgd, optax.sgd),
    ]
    for ours, theirs in pairs:
        mine = inspect.signature(ours).parameters
        other = inspect.signature(theirs).parameters
        for k, p in mine.items():
            if k in other and p.default is not inspect.Parameter.empty:
                assert p.default == other[k].default, (ours.__name__, k)
