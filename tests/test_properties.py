"""Property-based equivalence with optax: every transform with an optax twin.

Each property runs `STEPS` updates with random hyperparameters, gradient sequences
and parameter values (each leaf at a random scale from 1e-3 to 1e3), and requires
jaxnn to give the updates (and, where the state layouts agree, the states) of its
optax twin:

- `test_matches_optax_float32`: every transform in `SPECS` on the fixed tree `TREE`
  (nested dict, list and tuple, `None` leaves, scalars, zero-size arrays, leaves of
  rank 1 to 4), in float32.
- `test_matches_optax_low_precision`: the transforms without squared moments
  (`LOW_PRECISION`) with bfloat16 or float16 params, gradients and state, on `TREE`.
- `test_float32_moments_with_bfloat16_params`: adam, adamw, nadam and scale_by_adam
  with bfloat16 params and gradients and float32 moments, on `TREE`.
- `test_matches_optax_random_structures`: every transform in `SPECS` on random tree
  structures (`random_structure`), in float32.

Examples per transform, in the "ci" profile (the default) and in "thorough"
(HYPOTHESIS_PROFILE=thorough): 100 and 1000 for each of the first three (bfloat16
and float16 together in the second); for the random structures, 25 and 250
structures, each checked with 4 draws of hyperparameters and values (100 and 1000
draws). A structure uses one structural option per transform (e.g. nesterov or
not), drawn with it. Both profiles have no deadline; "ci" is derandomized, so its
examples are the same on every run.

Speed: on `TREE`, hypothesis draws values, not shapes, and the hyperparameters enter
as traced float32 scalars, so each (transform, structural option, dtype) compiles
once, into one jitted function that runs jaxnn and optax side by side under
`lax.scan`; the examples then only execute it. Random structures each cost a
compilation, shared by all transforms (see that section).

Tolerances, per dtype (`tol(dtype)` in `tests/helpers.py`, applied per leaf by
`assert_close_per_leaf` as |a − e| <= rtol·|e| + atol·max|e|, the atol relative to
the leaf's largest magnitude so that leaves of 1e-6 are held to the same standard as
leaves of 1e3):

- float32: rtol 1e-5, atol 1e-6.
- bfloat16: rtol 2e-2, atol 1e-2; float16: rtol 2e-3, atol 1e-3 (plus four smallest
  subnormals, 2.4e-7: updates of 1e-7 are subnormal in float16). jaxnn runs in the
  low dtype and optax in float32 on the same, exactly upcast, inputs. jaxnn rounds
  its state to the low dtype once per step, so elements that almost cancel
  (momentum of alternating gradients) carry an error of a few ulps of the leaf's
  scale, not of their own value: hence the leaf-relative atol.
- bfloat16 params with float32 moments: the moments to float32 tolerance (they are
  computed in float32 from the same values as optax's); the updates elementwise
  within 2^-6·(|e| + lr·wd·|θ|), four times bfloat16's unit roundoff, for the up to
  three roundings of the chain (`BF16_UPDATE_RTOL`).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import jaxnn
from tests.helpers import tol

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

STEPS = 3


def _spec(shape):
    """A leaf of a tree structure: only its shape is used (values come from _fill)."""
    return jax.ShapeDtypeStruct(tuple(shape), jnp.float32)


def _is_shape(x):
    return isinstance(x, tuple) and all(isinstance(d, int) for d in x)


# The fixed tree structure: nested dict, list, tuple, None leaves, scalars, zero-size
# arrays, leaves of rank 1 to 4. Random structures are drawn by `trees()` below.
TREE = jax.tree.map(
    _spec,
    {
        "dense": {"w": (3, 4), "b": (4,)},
        "conv": ((2, 2, 1, 3), None),
        "stack": [(2, 1, 3), (), ((0,), (5,))],
        "empty": (0, 3),
        "deep": [{"a": (1, 2, 2, 1), "none": None}, ((), (3, 2))],
    },
    is_leaf=_is_shape,
)


def _fill(specs, rng, dtype, lead=()):
    """A pytree with the structure of `specs`: random normals, per-leaf scale."""

    def leaf(spec):
        s = 10.0 ** rng.uniform(-3, 3)
        return jnp.asarray(rng.normal(size=lead + spec.shape) * s, dtype)

    return jax.tree.map(leaf, specs)


# --- the transforms and their optax twins -----------------------------------------
# Each entry: hyperparameter ranges [low, high] (float32 scalars, traced), structural
# configurations (compile-time options), the jaxnn and optax builders, and whether
# the states are laid out alike (then they are compared leaf by leaf too).

_lr = (1e-4, 1.0)
_decay = (0.0, 0.99)
# RMS decay >= 0.1: centered RMS divides by sqrt(G − m² + ε), and with decay near 0
# G − m² = β(1 − β)(g − m)² is a cancellation of two ~g² terms, so both libraries
# return rounding noise (ill-conditioned, not a disagreement worth testing).
_rms_decay = (0.1, 0.99)
_b2 = (0.9, 0.9999)
_eps = (1e-8, 1e-3)
_nonneg = (0.0, 1.0)
_clip = (1e-3, 10.0)
_eps_root = (0.0, 1e-6)

SPECS = {
    "scale": (
        dict(f=(-10.0, 10.0)),
        [{}],
        lambda h, c: jaxnn.scale(h["f"]),
        lambda h, c: optax.scale(h["f"]),
        True,
    ),
    "scale_by_learning_rate": (
        dict(lr=_lr),
        [{}],
        lambda h, c: jaxnn.scale_by_learning_rate(h["lr"]),
        lambda h, c: optax.scale_by_learning_rate(h["lr"]),
        True,
    ),
    "trace": (
        dict(decay=_decay),
        [dict(nesterov=False), dict(nesterov=True)],
        lambda h, c: jaxnn.trace(h["decay"], **c),
        lambda h, c: optax.trace(h["decay"], **c),
        True,
    ),
    "scale_by_rss": (
        dict(init=_nonneg, eps=_eps),
        [{}],
        lambda h, c: jaxnn.scale_by_rss(h["init"], h["eps"]),
        lambda h, c: optax.scale_by_rss(h["init"], h["eps"]),
        True,
    ),
    "scale_by_rms": (
        dict(decay=_rms_decay, eps=_eps, init=_nonneg),
        [dict(centered=False), dict(centered=True)],
        lambda h, c: jaxnn.scale_by_rms(h["decay"], h["eps"], h["init"], **c),
        lambda h, c: (
            optax.scale_by_stddev(h["decay"], h["eps"], h["init"])
            if c["centered"]
            else optax.scale_by_rms(h["decay"], h["eps"], h["init"])
        ),
        True,
    ),
    "scale_by_adam": (
        dict(b1=_decay, b2=_b2, eps=_eps, eps_root=_eps_root),
        [dict(nesterov=False), dict(nesterov=True)],
        lambda h, c: jaxnn.scale_by_adam(
            h["b1"], h["b2"], h["eps"], h["eps_root"], **c
        ),
        lambda h, c: optax.scale_by_adam(
            h["b1"], h["b2"], h["eps"], h["eps_root"], **c
        ),
        True,
    ),
    "add_decayed_weights": (
        dict(wd=_nonneg),
        [{}],
        lambda h, c: jaxnn.add_decayed_weights(h["wd"]),
        lambda h, c: optax.add_decayed_weights(h["wd"]),
        True,
    ),
    "clip_by_value": (
        dict(m=_clip),
        [{}],
        lambda h, c: jaxnn.clip_by_value(h["m"]),
        lambda h, c: optax.clip(h["m"]),
        False,  # jaxnn keeps the pre-clip norm in its state, optax nothing
    ),
    "clip_by_global_norm": (
        dict(m=_clip),
        [{}],
        lambda h, c: jaxnn.clip_by_global_norm(h["m"]),
        lambda h, c: optax.clip_by_global_norm(h["m"]),
        False,
    ),
    "adaptive_grad_clip": (
        dict(c=_clip, eps=_eps),
        [{}],
        lambda h, c: jaxnn.adaptive_grad_clip(h["c"], h["eps"]),
        lambda h, c: optax.adaptive_grad_clip(h["c"], h["eps"]),
        False,
    ),
    "gd": (
        dict(lr=_lr),
        [{}],
        lambda h, c: jaxnn.gd(h["lr"]),
        lambda h, c: optax.sgd(h["lr"]),
        False,  # optax.sgd without momentum chains an identity
    ),
    "sgd": (
        dict(lr=_lr, m=_decay),
        [dict(momentum=False), dict(nesterov=False), dict(nesterov=True)],
        lambda h, c: (
            jaxnn.sgd(h["lr"])
            if c.get("momentum") is False
            else jaxnn.sgd(h["lr"], h["m"], c["nesterov"])
        ),
        lambda h, c: (
            optax.sgd(h["lr"])
            if c.get("momentum") is False
            else optax.sgd(h["lr"], h["m"], c["nesterov"])
        ),
        False,
    ),
    "momentum": (
        dict(lr=_lr, m=_decay),
        [{}],
        lambda h, c: jaxnn.momentum(h["lr"], h["m"]),
        lambda h, c: optax.sgd(h["lr"], momentum=h["m"]),
        True,
    ),
    "nesterov": (
        dict(lr=_lr, m=_decay),
        [{}],
        lambda h, c: jaxnn.nesterov(h["lr"], h["m"]),
        lambda h, c: optax.sgd(h["lr"], momentum=h["m"], nesterov=True),
        True,
    ),
    "adagrad": (
        dict(lr=_lr, init=_nonneg, eps=_eps),
        [{}],
        lambda h, c: jaxnn.adagrad(h["lr"], h["init"], h["eps"]),
        lambda h, c: optax.adagrad(h["lr"], h["init"], h["eps"]),
        True,
    ),
    "rmsprop": (
        dict(lr=_lr, decay=_rms_decay, eps=_eps, init=_nonneg, m=_decay),
        [
            dict(centered=False, momentum=False, nesterov=False),
            dict(centered=True, momentum=False, nesterov=False),
            dict(centered=False, momentum=True, nesterov=False),
            dict(centered=True, momentum=True, nesterov=True),
            # optax's eps_in_sqrt and bias_correction (issue 11).
            dict(
                centered=False,
                momentum=True,
                nesterov=False,
                eps_in_sqrt=False,
                bias_correction=True,
            ),
            # Not centered with bias_correction here: at step 1 the corrected
            # moments are m̂ = g and Ĝ = g² (+ a term from initial_scale), so
            # Ĝ − m̂² is a cancellation of two g² terms and both libraries return
            # rounding noise (or NaN). tests/test_optax_signatures.py checks that
            # configuration on a training trajectory instead.
        ],
        # The same positional call for both: optax's order is jaxnn's.
        *(
            lambda h, c, lib=lib: lib.rmsprop(
                h["lr"],
                h["decay"],
                h["eps"],
                h["init"],
                c.get("eps_in_sqrt", True),
                c["centered"],
                h["m"] if c["momentum"] else None,
                c["nesterov"],
                c.get("bias_correction", False),
            )
            for lib in (jaxnn, optax)
        ),
        True,
    ),
    "adam": (
        dict(lr=_lr, b1=_decay, b2=_b2, eps=_eps, eps_root=_eps_root),
        [{}],
        lambda h, c: jaxnn.adam(h["lr"], h["b1"], h["b2"], h["eps"], h["eps_root"]),
        lambda h, c: optax.adam(h["lr"], h["b1"], h["b2"], h["eps"], h["eps_root"]),
        True,
    ),
    "adamw": (
        dict(lr=_lr, b1=_decay, b2=_b2, eps=_eps, wd=_nonneg),
        [{}],
        lambda h, c: jaxnn.adamw(
            h["lr"], h["b1"], h["b2"], h["eps"], weight_decay=h["wd"]
        ),
        lambda h, c: optax.adamw(
            h["lr"], h["b1"], h["b2"], h["eps"], weight_decay=h["wd"]
        ),
        True,
    ),
    "nadam": (
        dict(lr=_lr, b1=_decay, b2=_b2, eps=_eps, eps_root=_eps_root),
        [{}],
        lambda h, c: jaxnn.nadam(h["lr"], h["b1"], h["b2"], h["eps"], h["eps_root"]),
        lambda h, c: optax.nadam(h["lr"], h["b1"], h["b2"], h["eps"], h["eps_root"]),
        True,
    ),
}

_RUNNERS: dict = {}


def _runner(name, config_index, dtype, float32_moments=False):
    """One jitted function per (transform, config, dtype): compiled once.

    Runs jaxnn in `dtype` and optax in float32 on the upcast inputs, `STEPS`
    updates each with the same gradients, and returns both update sequences and
    final states. With `float32_moments`, jaxnn is built by `FLOAT32_MOMENTS`.
    """
    key = (name, config_index, jnp.dtype(dtype).name, float32_moments)
    if key not in _RUNNERS:
        _, configs, ours_fn, theirs_fn, _ = SPECS[name]
        if float32_moments:
            ours_fn = FLOAT32_MOMENTS[name]
        config = configs[config_index]

        @jax.jit
        def run(hp, params, grads):
            ours, theirs = ours_fn(hp, config), theirs_fn(hp, config)
            up = jax.tree.map(lambda x: x.astype(jnp.float32), params)

            def step(carry, g):
                s1, s2 = carry
                u1, s1 = ours.update(g, s1, params)
                g32 = jax.tree.map(lambda x: x.astype(jnp.float32), g)
                u2, s2 = theirs.update(g32, s2, up)
                return (s1, s2), (u1, u2)

            init = (ours.init(params), theirs.init(up))
            (s1, s2), (u1, u2) = jax.lax.scan(step, init, grads)
            return u1, u2, s1, s2

        _RUNNERS[key] = run
    return _RUNNERS[key]


def assert_close_per_leaf(actual, expected, dtype):
    """Per leaf, |a − e| <= rtol·|e| + atol·max|e| + floor, with `tol(dtype)`.

    The table's `atol` (for elements that pass through zero) is taken relative to
    the leaf's largest magnitude, not as an absolute number: leaves here range over
    six orders of magnitude, and an absolute 1e-6 (float32) or 1e-2 (bfloat16) would
    accept any answer on the small ones. `floor` is four of the dtype's smallest
    subnormals: only float16 needs it (gradients of 1e-3 times a learning rate of
    1e-4 are subnormal there, quantized to 6e-8).
    """
    t = tol(dtype)
    floor = 4 * float(jnp.finfo(dtype).smallest_subnormal)
    a_def, e_def = jax.tree.structure(actual), jax.tree.structure(expected)
    assert a_def == e_def, f"structures differ: {a_def} vs {e_def}"
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        assert a.shape == e.shape, f"shapes differ: {a.shape} vs {e.shape}"
        scale = np.max(np.abs(e)) if e.size else 0.0
        bound = t["rtol"] * np.abs(e) + t["atol"] * scale + floor
        bad = ~(np.abs(a - e) <= bound)  # also catches NaN
        assert not bad.any(), (
            f"{bad.sum()} of {a.size} elements differ beyond rtol {t['rtol']}, "
            f"atol {t['atol']}·{scale:.3g}: actual {a[bad][:5]}, expected {e[bad][:5]}"
        )


def _draw_config_and_hyperparameters(name, data):
    ranges, configs, _, _, _ = SPECS[name]
    config_index = data.draw(st.integers(0, len(configs) - 1), label="config")
    hp = {
        k: np.float32(data.draw(st.floats(*r), label=k))
        for k, r in sorted(ranges.items())
    }
    return config_index, hp


def _check(name, data, dtype, seed):
    states_alike = SPECS[name][4]
    config_index, hp = _draw_config_and_hyperparameters(name, data)
    rng = np.random.default_rng(seed)
    params = _fill(TREE, rng, dtype)
    grads = _fill(TREE, rng, dtype, lead=(STEPS,))
    run = _runner(name, config_index, dtype)
    u1, u2, s1, s2 = run(hp, params, grads)
    assert_close_per_leaf(u1, u2, dtype)
    if states_alike and jnp.dtype(dtype) == jnp.float32:
        assert_close_per_leaf(jax.tree.leaves(s1), jax.tree.leaves(s2), dtype)
    # Structure and dtypes are kept (None leaves stay None, zero-size stay empty).
    for a, g in zip(jax.tree.leaves(u1), jax.tree.leaves(grads), strict=True):
        assert a.shape == g.shape and a.dtype == g.dtype


@pytest.mark.parametrize("name", sorted(SPECS))
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_matches_optax_float32(name, data, seed):
    _check(name, data, jnp.float32, seed)


# Transforms whose state (if any) is a plain sum or trace of gradients. The adaptive
# scalings (scale_by_rss/rms/adam and their optimizers) store squared gradients:
# kept in bfloat16/float16 they lose range (g = 1e-3 gives g² = 1e-6, subnormal in
# float16), so with low-precision params they are compared in float32 only; their
# low-precision use goes through `mu_dtype`/`nu_dtype` (float32 moments), tested by
# `test_float32_moments_with_bfloat16_params` below.
LOW_PRECISION = [
    "add_decayed_weights",
    "adaptive_grad_clip",
    "clip_by_global_norm",
    "clip_by_value",
    "gd",
    "momentum",
    "nesterov",
    "scale",
    "scale_by_learning_rate",
    "sgd",
    "trace",
]


@pytest.mark.parametrize("name", LOW_PRECISION)
@given(
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([jnp.bfloat16, jnp.float16]),
)
def test_matches_optax_low_precision(name, data, seed, dtype):
    _check(name, data, dtype, seed)


# --- adaptive optimizers: bfloat16 params and gradients, float32 moments -----------
# The usual mixed-precision setup. jaxnn has mu_dtype and nu_dtype, optax only
# mu_dtype, so optax runs in float32 on the exactly upcast inputs. Then:
# - the moments are computed in float32 from the same values in both libraries, so
#   they must agree to float32 tolerance (a moment rounded through bfloat16 even
#   once is off by up to 2^-8 relative, some 400 times float32's rtol);
# - the updates are rounded to bfloat16 (unit roundoff u = 2^-8) after each stage
#   of the chain: scale_by_adam's output, then (adamw) after adding wd·θ, then after
#   scaling by −lr. Hence |a − e| <= 3u·|e| + u·lr·wd·|θ| to first order; we allow
#   `BF16_UPDATE_RTOL`·(|e| + lr·wd·|θ|), with wd = 0 but for adamw. Elementwise,
#   not per leaf: with float32 moments nothing cancels in low precision.

_F32 = dict(mu_dtype=jnp.float32, nu_dtype=jnp.float32)
FLOAT32_MOMENTS = {
    "scale_by_adam": lambda h, c: jaxnn.scale_by_adam(
        h["b1"], h["b2"], h["eps"], h["eps_root"], **c, **_F32
    ),
    "adam": lambda h, c: jaxnn.adam(
        h["lr"], h["b1"], h["b2"], h["eps"], h["eps_root"], **_F32
    ),
    "adamw": lambda h, c: jaxnn.adamw(
        h["lr"], h["b1"], h["b2"], h["eps"], weight_decay=h["wd"], **_F32
    ),
    "nadam": lambda h, c: jaxnn.nadam(
        h["lr"], h["b1"], h["b2"], h["eps"], h["eps_root"], **_F32
    ),
}
BF16_UPDATE_RTOL = 2.0**-6


@pytest.mark.parametrize("name", sorted(FLOAT32_MOMENTS))
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_float32_moments_with_bfloat16_params(name, data, seed):
    config_index, hp = _draw_config_and_hyperparameters(name, data)
    rng = np.random.default_rng(seed)
    params = _fill(TREE, rng, jnp.bfloat16)
    grads = _fill(TREE, rng, jnp.bfloat16, lead=(STEPS,))
    run = _runner(name, config_index, jnp.bfloat16, float32_moments=True)
    u1, u2, s1, s2 = run(hp, params, grads)

    adam_state = s1 if name == "scale_by_adam" else s1[0]
    assert isinstance(adam_state, jaxnn.ScaleByAdamState)
    assert adam_state.count.dtype == jnp.int32
    for m in jax.tree.leaves((adam_state.mu, adam_state.nu)):
        assert m.dtype == jnp.float32
    assert_close_per_leaf(jax.tree.leaves(s1), jax.tree.leaves(s2), jnp.float32)

    decay = hp["lr"] * hp["wd"] if "wd" in hp else 0.0
    p_leaves = jax.tree.leaves(params)
    for a, e, p in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), p_leaves, strict=True):
        assert a.dtype == jnp.bfloat16 and a.shape == (STEPS, *p.shape)
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        p = np.abs(np.asarray(p, np.float64))
        bound = BF16_UPDATE_RTOL * (np.abs(e) + decay * p)
        bad = ~(np.abs(a - e) <= bound)
        assert not bad.any(), f"{bad.sum()} of {a.size}: {a[bad][:5]} vs {e[bad][:5]}"


# --- random tree structures --------------------------------------------------------
# A new structure means a new compilation, which costs far more than an example on a
# compiled function (~0.3 s per leaf for all transforms together, against ~1 ms).
# Compiling all the structures into one program instead was measured: 6% less
# compile time (XLA:CPU's time grows with the program, not per program), not worth
# a structure-coupled program. A second run reads them all from the persistent
# compilation cache (tests/conftest.py): 212 s of CPU for this module, then 51 s.
# So each hypothesis example is one structure: it picks a structural option per
# transform, compiles one jitted step running every transform and its optax twin,
# and checks `DRAWS` draws of hyperparameters and values with it (`STEPS` steps each).
#
# The example is a single seed from which the structure, the options, the
# hyperparameters and the values are all drawn with NumPy. Hypothesis' own
# strategies did worse at this price: when an example also draws hyperparameters,
# hypothesis mutates those and reuses the structure (a 25-example run held 12
# distinct structures), and `st.recursive` trees are mostly one leaf in a run this
# short. One seed per example gives distinct structures with a chosen spread; the
# cost is that a failure shrinks by seed only, so the structure, options and
# hyperparameters are reported with `note`.

DRAWS = 4


def random_structure(rng, depth=3):
    """A random pytree of `_spec` leaves: the structures the property runs on.

    Nested dicts, lists and tuples of one to three children, up to `depth` levels;
    leaves are `None` and empty containers (one in four), else arrays: scalars and
    zero-size arrays (one in five each; one dimension of a rank 1 to 4 shape is 0)
    or arrays of rank 1 to 4 with dimensions 1 to 3. One tree in ten has only
    zero-size arrays (norms of nothing). The root is a container nine times in ten,
    else an array or an empty container; never `None` (params=None means "no
    params" to jaxnn and optax alike). Over 2000 seeds: 3.0 leaves on average (up
    to 13), `None` in 40% of trees, zero-size leaves in 50%, a rank-4 leaf in 42%,
    a scalar in 38%, no element at all in 23% (no array leaf in 6%).
    """
    elementless = rng.random() < 0.1

    def shape():
        kind = 1 if elementless else rng.choice(3, p=[0.2, 0.2, 0.6])
        if kind == 0:  # scalar
            return ()
        dims = [int(d) for d in rng.integers(1, 4, size=rng.integers(1, 5))]
        if kind == 1:  # zero-size
            dims[rng.integers(len(dims))] = 0
        return tuple(dims)

    def node(depth, leaf_p=0.45):
        if depth == 0 or rng.random() < leaf_p:
            u = rng.random()
            if u < 0.15:
                return None
            if u < 0.25:
                return [[], (), {}][rng.integers(3)]
            return _spec(shape())
        kids = [node(depth - 1) for _ in range(rng.integers(1, 4))]
        kind = rng.integers(3)
        if kind == 2:
            keys = rng.choice(list("abcw"), len(kids), replace=False)
            return {str(k): kid for k, kid in zip(keys, kids, strict=True)}
        return kids if kind == 0 else tuple(kids)

    tree = None
    while tree is None:
        tree = node(depth, leaf_p=0.1)
    return tree


def _random_hyperparameters(rng, ranges):
    """Float32 values in each [low, high]: an end 30% of the time, else uniform."""
    hp = {}
    for k, (low, high) in sorted(ranges.items()):
        u = rng.random()
        hp[k] = np.float32(
            low if u < 0.15 else high if u < 0.3 else rng.uniform(low, high)
        )
    return hp


def _labelled(label, check, *args):
    """Runs `check(*args)`, prefixing `label` to the message of a failure."""
    try:
        check(*args)
    except AssertionError as e:
        raise AssertionError(f"{label}: {e}") from None


def _pairs(configs, hps):
    """{name: (jaxnn transform, optax twin)} for every transform in SPECS."""
    return {
        name: (SPECS[name][2](hps[name], c), SPECS[name][3](hps[name], c))
        for name, c in configs.items()
    }


def _all_transforms_step(configs):
    """One jitted update of every transform and its twin (compiled per structure)."""

    @jax.jit
    def step(hps, grads, states, params):
        out = {}
        for name, (ours, theirs) in _pairs(configs, hps).items():
            s1, s2 = states[name]
            u1, s1 = ours.update(grads, s1, params)
            u2, s2 = theirs.update(grads, s2, params)
            out[name] = (u1, u2, (s1, s2))
        return out

    return step


@settings(max_examples=max(5, settings.default.max_examples // DRAWS))
@given(seed=st.integers(0, 2**32 - 1))
def test_matches_optax_random_structures(seed):
    rng = np.random.default_rng(seed)
    specs = random_structure(rng)
    note(f"structure: {specs}")
    configs = {n: SPECS[n][1][rng.integers(len(SPECS[n][1]))] for n in sorted(SPECS)}
    step = _all_transforms_step(configs)
    for draw in range(DRAWS):
        hps = {n: _random_hyperparameters(rng, SPECS[n][0]) for n in sorted(SPECS)}
        params = _fill(specs, rng, jnp.float32)
        states = {
            n: (ours.init(params), theirs.init(params))
            for n, (ours, theirs) in _pairs(configs, hps).items()
        }
        for t in range(STEPS):
            grads = _fill(specs, rng, jnp.float32)
            out = step(hps, grads, states, params)
            for name in sorted(SPECS):
                u1, u2, states[name] = out[name]
                label = f"{name} {configs[name]} {hps[name]}, draw {draw}, step {t}"
                _labelled(label, assert_close_per_leaf, u1, u2, jnp.float32)
                assert jax.tree.structure(u1) == jax.tree.structure(grads), label
                for a, g in zip(
                    jax.tree.leaves(u1), jax.tree.leaves(grads), strict=True
                ):
                    assert a.shape == g.shape and a.dtype == g.dtype, label
        for name in sorted(SPECS):
            if SPECS[name][4]:
                s1, s2 = (jax.tree.leaves(s) for s in states[name])
                label = f"{name} {configs[name]} {hps[name]} state, draw {draw}"
                _labelled(label, assert_close_per_leaf, s1, s2, jnp.float32)
    # States keep their avals from init through every update: one compilation.
    assert step._cache_size() == 1
