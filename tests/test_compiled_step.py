"""What XLA makes of a jitted optimizer step: no gradient-sized scratch buffer, and
a clip that costs one extra read of the gradients and nothing else.

These read the compiled program (`benchmarks/hlo_stats.py`: kernels, the bytes they
stream, `memory_analysis()` scratch), never the clock, so they are deterministic
for a given XLA. The numbers they assert follow from the arithmetic of the step:
the triad a = b + s*c streams 3 arrays; an update that the clip rescales in place
streams the optimizer's arrays plus one read of g for the norm.

The trees have several leaves of the same shape on purpose: a scalar broadcast
shared by same-shaped leaves is what XLA:CPU once materialized as a full buffer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from benchmarks.hlo_stats import step_stats
from tests.helpers import TOL

# The kernel counts, streamed bytes and scratch sizes asserted below are those of
# XLA:CPU's compiled program; GPU and TPU compilers fuse differently (multi-output
# fusions, other scratch), so these tests hold on CPU only. The numerical tests in
# this module run on every backend.
cpu_only = pytest.mark.skipif(
    jax.default_backend() != "cpu",
    reason="asserts XLA:CPU's compiled program (kernels, bytes, scratch); "
    f"backend is {jax.default_backend()}",
)

SHAPES = [(64, 128), (64, 128), (64, 128), (3, 3, 8, 16), (128,), (128,), ()]
LARGE = [(64, 128), (64, 128), (3, 3, 32, 64), (5000,)]


def _tree(seed, scale=1.0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.normal(size=s) * scale, jnp.float32) for s in shapes]


def _param_bytes(tree):
    return sum(x.size * x.dtype.itemsize for x in tree)


def _compiled_step(tx, params, grads):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return jaxnn.apply_updates(params, updates), state

    state = tx.init(params)
    return jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()


@cpu_only
def test_triad_streams_three_arrays():
    n = 1 << 16
    b = jnp.ones((n,), jnp.float32)
    compiled = jax.jit(lambda b, c, s: b + s * c).lower(b, b, 2.0).compile()
    stats = step_stats(compiled)
    assert stats.fusions == 1
    assert stats.kernel_bytes == 3 * 4 * n


@cpu_only
@pytest.mark.parametrize(
    "make_clip",
    [
        lambda: jaxnn.clip_by_global_norm(1.0),
        lambda: jaxnn.clip_by_layer_norm(1.0),
        lambda: jaxnn.adaptive_grad_clip(0.01),
    ],
    ids=["global_norm", "layer_norm", "agc"],
)
def test_clipped_adamw_step_has_no_gradient_sized_scratch(make_clip):
    params, grads = _tree(0), _tree(1, scale=10.0)  # norm > 1: the clip is active
    compiled = _compiled_step(
        jaxnn.chain(make_clip(), jaxnn.adamw(1e-3)), params, grads
    )
    largest_leaf = max(x.size * x.dtype.itemsize for x in params)
    assert step_stats(compiled).temp_bytes < largest_leaf


@cpu_only
def test_global_norm_clip_costs_one_read_of_the_gradients():
    # Leaves above 4096 elements only: global_norm copies smaller leaves into one
    # vector first (a few KB; fewer kernels to launch and compile).
    params, grads = _tree(0, shapes=LARGE), _tree(1, scale=10.0, shapes=LARGE)
    plain = step_stats(_compiled_step(jaxnn.adamw(1e-3), params, grads))
    clipped = step_stats(
        _compiled_step(
            jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.adamw(1e-3)),
            params,
            grads,
        )
    )
    # The scaled gradients are never written: the factor is applied inside the
    # kernels that read g, so the clip adds one read of g (its norm), plus the
    # per-block partial sums some reductions write (a few hundred bytes). A
    # materialized clipped copy would add two more passes (write, read back).
    extra = clipped.kernel_bytes - plain.kernel_bytes - _param_bytes(grads)
    assert 0 <= extra < 0.05 * _param_bytes(grads)


def test_clipped_step_matches_the_unfused_arithmetic():
    # The compiled step (factor fused into the moment kernels) equals clipping
    # first, materializing the clipped gradients, then running adamw eagerly.
    params, grads = _tree(0), _tree(1, scale=10.0)
    tx = jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.adamw(1e-3))
    compiled = _compiled_step(tx, params, grads)
    fused_params, _ = compiled(jax.tree.map(jnp.copy, params), tx.init(params), grads)
    norm = np.sqrt(sum(np.sum(np.asarray(g, np.float64) ** 2) for g in grads))
    clipped = [jnp.asarray(np.asarray(g) / norm, jnp.float32) for g in grads]
    adamw = jaxnn.adamw(1e-3)
    updates, _ = adamw.update(clipped, adamw.init(params), params)
    expected = jaxnn.apply_updates(params, updates)
    for a, e in zip(fused_params, expected, strict=True):
        np.testing.assert_allclose(a, e, **TOL["roundings_near_zero"])


@pytest.mark.parametrize("clip", [1.0, 1e3], ids=["clipping", "not_clipping"])
def test_clipped_adamw_trajectory_matches_optax(clip):
    # 20 jitted steps on a tree of small (concatenated by global_norm) and large
    # leaves, gradients that change every step, clip active or not.
    params = _tree(0) + _tree(1, shapes=LARGE)
    ours = jaxnn.chain(jaxnn.clip_by_global_norm(clip), jaxnn.adamw(1e-2))
    theirs = optax.chain(optax.clip_by_global_norm(clip), optax.adamw(1e-2))

    def run(tx, apply):
        @jax.jit
        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return apply(p, u), s

        p, s = params, tx.init(params)
        for t in range(20):
            g = [x * 3.0 for x in _tree(100 + t) + _tree(200 + t, shapes=LARGE)]
            p, s = step(p, s, g)
        return p

    for a, e in zip(
        run(ours, jaxnn.apply_updates), run(theirs, optax.apply_updates), strict=True
    ):
        np.testing.assert_allclose(a, e, **TOL["trajectory"])


# ------------------------------------------------------------------------- glue
# partition, dynamic_loss_scale and optax.inject_hyperparams(jaxnn.adamw) add no
# arithmetic of their own: their compiled steps allocate no gradient-sized scratch
# and stream what the plain optimizer streams (benchmarks/optimizers.py times them).

NAMED = {
    "dense0/kernel": (64, 128),
    "dense1/kernel": (64, 128),
    "conv/kernel": (3, 3, 8, 16),
    "dense0/bias": (128,),
    "dense1/bias": (128,),
    "conv/bias": (16,),
    "norm/scale": (),
}


def _named_tree(seed, scale=1.0, dtype=jnp.float32):
    leaves = _tree(seed, scale, shapes=list(NAMED.values()))
    return {k: x.astype(dtype) for k, x in zip(NAMED, leaves, strict=True)}


def _largest_leaf(tree):
    return max(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def _split_by_hand(transforms, label_of):
    """The plain equivalent of a partition: each transform on its own sub-dict."""

    def select(tree, label):
        return {k: v for k, v in tree.items() if label_of(k) == label}

    def init(params):
        return {
            label: tx.init(select(params, label)) for label, tx in transforms.items()
        }

    def update(grads, state, params):
        out, new_state = {}, {}
        for label, tx in transforms.items():
            sub = select(grads, label), state[label], select(params, label)
            u, new_state[label] = tx.update(*sub)
            out.update(u)
        return {k: out[k] for k in grads}, new_state

    return jaxnn.GradientTransformation(init, update)


@cpu_only
def test_partition_step_has_no_scratch_and_streams_what_the_groups_stream():
    params, grads = _named_tree(0), _named_tree(1)
    glue = step_stats(
        _compiled_step(
            jaxnn.partition(
                {"adamw": jaxnn.adamw(1e-3), "sgd": jaxnn.sgd(1e-3)},
                jaxnn.label_by_path([(r"kernel$", "adamw")], "sgd"),
            ),
            params,
            grads,
        )
    )
    plain = step_stats(
        _compiled_step(
            _split_by_hand(
                {"adamw": jaxnn.adamw(1e-3), "sgd": jaxnn.sgd(1e-3)},
                lambda k: "adamw" if k.endswith("kernel") else "sgd",
            ),
            params,
            grads,
        )
    )
    assert glue.temp_bytes < _largest_leaf(params)
    assert glue.kernel_bytes <= plain.kernel_bytes
    assert glue.fusions <= plain.fusions


@cpu_only
def test_inject_hyperparams_of_adamw_has_no_scratch_and_streams_what_adamw_does():
    params, grads = _named_tree(0), _named_tree(1)
    glue = step_stats(
        _compiled_step(
            optax.inject_hyperparams(jaxnn.adamw)(learning_rate=1e-3), params, grads
        )
    )
    plain = step_stats(_compiled_step(jaxnn.adamw(1e-3), params, grads))
    assert glue.temp_bytes < _largest_leaf(params)
    # The learning rate is read from the state: a scalar, not an array pass.
    assert glue.kernel_bytes <= plain.kernel_bytes + 1024


def _state_copies(compiled, dtype):
    """The copies of non-scalar `dtype` arrays in `compiled`, but of broadcasts.

    A skipped step's zero updates are broadcasts XLA copies into the branch's
    output; any other copy of an array is a copy of the state.
    """
    return [
        line
        for line in compiled.as_text().splitlines()
        if f"= {dtype}[" in line
        and f"= {dtype}[]" not in line
        and " copy(" in line
        and " copy(%wrapped_broadcast" not in line
    ]


@cpu_only
def test_dynamic_loss_scale_stores_only_the_updates():
    # float32 params and state; float16 scaled gradients, so the unscaling
    # G * (1/S) also widens them (the case where a stored copy would be largest).
    s = 2.0**15
    params = _named_tree(0)
    grads = _named_tree(1, scale=s, dtype=jnp.float16)
    compiled = _compiled_step(
        jaxnn.dynamic_loss_scale(jaxnn.adamw(1e-3), init_scale=s), params, grads
    )
    # The skip is a lax.cond around adamw, whose float32 updates are its output
    # and so are stored: the only scratch. The unscaling G * (1/S) is fused into
    # the kernels that read it, not stored as a float32 copy of the gradients
    # (another 4 bytes per element), and the moments are updated in place: a
    # jnp.where between the new and the old state made XLA copy m and v first.
    assert step_stats(compiled).temp_bytes <= _param_bytes(params.values()) + 1024
    assert not _state_copies(compiled, "f32")


@cpu_only
def test_skip_nonfinite_updates_the_state_in_place():
    params, grads = _named_tree(0), _named_tree(1)
    compiled = _compiled_step(jaxnn.skip_nonfinite(jaxnn.adamw(1e-3)), params, grads)
    # As above: under the cond only the updates are stored (float32 here), and no
    # moment is copied (a jnp.where between the new and the old state copied m
    # and v, 205 MB of scratch on the ResNet-50 tree).
    assert step_stats(compiled).temp_bytes <= _param_bytes(params.values()) + 1024
    assert not _state_copies(compiled, "f32")


MOMENT_OPTIMIZERS = {
    "adam": lambda: jaxnn.adam(1e-3),
    "adamw": lambda: jaxnn.adamw(1e-3),
    "nadam": lambda: jaxnn.nadam(1e-3),
    "rmsprop": lambda: jaxnn.rmsprop(1e-3),
    "rmsprop_centered": lambda: jaxnn.rmsprop(1e-3, centered=True),
    "adagrad": lambda: jaxnn.adagrad(1e-2),
    "momentum": lambda: jaxnn.momentum(1e-2, 0.9),
    "nesterov": lambda: jaxnn.nesterov(1e-2, 0.9),
}


@cpu_only
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("name", MOMENT_OPTIMIZERS)
def test_donated_step_updates_moments_in_place(name, dtype):
    # The update reads each new moment as stored (as optax, which computes in the
    # params' dtype). Reading the unrounded float32 value instead made XLA
    # recompute it from the old moment, which the in-place write of the new one
    # overwrites, so it copied every moment first: 2 bytes of scratch per element
    # per moment, and bfloat16 steps 1.3x slower. (float16 state is still read
    # unrounded, so copied: its range cannot hold g², see `_dtypes.as_stored`.)
    params = _named_tree(0, dtype=jnp.dtype(dtype))
    grads = _named_tree(1, dtype=jnp.dtype(dtype))
    compiled = _compiled_step(MOMENT_OPTIMIZERS[name](), params, grads)
    assert step_stats(compiled).temp_bytes < _largest_leaf(params)
