"""Every jaxnn transform with its optax twin, for the optax-interop findings tests.

`TRANSFORMS[name] = (make_jaxnn, make_optax)`: each factory takes the params (masks
are built from them) and returns a transform; `make_optax` is None where optax has no
equivalent. Hyperparameters are passed by keyword where the two signatures differ
today, so the registry means the same before and after issue 11's signature fixes.
Used by tests/test_optax_findings.py and the subprocess scripts it runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import jaxnn


def _matrix_mask(params):
    """True for leaves of rank >= 2 (Python bools, as masks must be)."""
    return jax.tree.map(lambda x: x.ndim >= 2, params)


def _half(count):
    return 0.1 * 0.5 ** (count / 4)


def _double(updates, params):
    del params
    return jax.tree.map(lambda g: 2 * g, updates)


def reference_layer_norm_clip(max_norm):
    """clip_by_layer_norm from optax: clip_by_global_norm applied to each leaf."""
    clip = optax.clip_by_global_norm(max_norm)

    def update(updates, state, params=None, **extra):
        del params, extra
        return jax.tree.map(lambda g: clip.update(g, clip.init(g))[0], updates), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


TRANSFORMS = {
    "gd": (lambda p: jaxnn.gd(0.1), lambda p: optax.sgd(0.1)),
    "sgd": (lambda p: jaxnn.sgd(0.1), lambda p: optax.sgd(0.1)),
    "sgd_momentum": (
        lambda p: jaxnn.sgd(0.1, momentum=0.9),
        lambda p: optax.sgd(0.1, momentum=0.9),
    ),
    "momentum": (
        lambda p: jaxnn.momentum(0.1, beta=0.9),
        lambda p: optax.sgd(0.1, momentum=0.9),
    ),
    "nesterov": (
        lambda p: jaxnn.nesterov(0.1, beta=0.9),
        lambda p: optax.sgd(0.1, momentum=0.9, nesterov=True),
    ),
    "adagrad": (lambda p: jaxnn.adagrad(0.1), lambda p: optax.adagrad(0.1)),
    "rmsprop": (lambda p: jaxnn.rmsprop(0.1), lambda p: optax.rmsprop(0.1)),
    "rmsprop_centered_momentum": (
        lambda p: jaxnn.rmsprop(0.1, centered=True, momentum=0.9),
        lambda p: optax.rmsprop(0.1, centered=True, momentum=0.9),
    ),
    "adam": (lambda p: jaxnn.adam(0.1), lambda p: optax.adam(0.1)),
    "adam_schedule": (
        lambda p: jaxnn.adam(jaxnn.cosine_decay_schedule(0.1, 10)),
        lambda p: optax.adam(optax.cosine_decay_schedule(0.1, 10)),
    ),
    "adamw": (
        lambda p: jaxnn.adamw(0.1, weight_decay=0.1),
        lambda p: optax.adamw(0.1, weight_decay=0.1),
    ),
    "adamw_masked": (
        lambda p: jaxnn.adamw(0.1, weight_decay=0.1, mask=_matrix_mask(p)),
        lambda p: optax.adamw(0.1, weight_decay=0.1, mask=_matrix_mask(p)),
    ),
    "nadam": (lambda p: jaxnn.nadam(0.1), lambda p: optax.nadam(0.1)),
    "scale": (lambda p: jaxnn.scale(-0.1), lambda p: optax.scale(-0.1)),
    "scale_by_learning_rate": (
        lambda p: jaxnn.scale_by_learning_rate(0.1),
        lambda p: optax.scale_by_learning_rate(0.1),
    ),
    "scale_by_schedule": (
        lambda p: jaxnn.scale_by_schedule(_half),
        lambda p: optax.scale_by_schedule(_half),
    ),
    "trace": (lambda p: jaxnn.trace(decay=0.9), lambda p: optax.trace(decay=0.9)),
    "scale_by_rss": (lambda p: jaxnn.scale_by_rss(), lambda p: optax.scale_by_rss()),
    "scale_by_rms": (lambda p: jaxnn.scale_by_rms(), lambda p: optax.scale_by_rms()),
    "scale_by_rms_centered": (
        lambda p: jaxnn.scale_by_rms(centered=True),
        lambda p: optax.scale_by_stddev(),
    ),
    "scale_by_adam": (
        lambda p: jaxnn.scale_by_adam(),
        lambda p: optax.scale_by_adam(),
    ),
    "add_decayed_weights": (
        lambda p: jaxnn.add_decayed_weights(0.1),
        lambda p: optax.add_decayed_weights(0.1),
    ),
    "add_decayed_weights_schedule": (
        lambda p: jaxnn.add_decayed_weights(_half),
        lambda p: optax.add_decayed_weights(_half),
    ),
    "add_l1": (lambda p: jaxnn.add_l1(0.1), None),
    "masked": (
        lambda p: jaxnn.masked(jaxnn.adam(0.1), _matrix_mask(p)),
        lambda p: optax.masked(optax.adam(0.1), _matrix_mask(p)),
    ),
    "masked_fn": (
        lambda p: jaxnn.masked(jaxnn.adam(0.1), _matrix_mask),
        lambda p: optax.masked(optax.adam(0.1), _matrix_mask),
    ),
    "chain": (
        lambda p: jaxnn.chain(
            jaxnn.clip_by_global_norm(1.0), jaxnn.adamw(0.1, weight_decay=0.1)
        ),
        lambda p: optax.chain(
            optax.clip_by_global_norm(1.0), optax.adamw(0.1, weight_decay=0.1)
        ),
    ),
    "identity": (lambda p: jaxnn.identity(), lambda p: optax.identity()),
    "stateless": (
        lambda p: jaxnn.stateless(_double),
        lambda p: optax.stateless(_double),
    ),
    "clip_by_value": (lambda p: jaxnn.clip_by_value(0.5), lambda p: optax.clip(0.5)),
    "clip_by_global_norm": (
        lambda p: jaxnn.clip_by_global_norm(0.5),
        lambda p: optax.clip_by_global_norm(0.5),
    ),
    "clip_by_layer_norm": (
        lambda p: jaxnn.clip_by_layer_norm(0.5),
        lambda p: reference_layer_norm_clip(0.5),
    ),
    "adaptive_grad_clip": (
        lambda p: jaxnn.adaptive_grad_clip(0.1),
        lambda p: optax.adaptive_grad_clip(0.1),
    ),
    "skip_nonfinite": (
        lambda p: jaxnn.skip_nonfinite(jaxnn.adam(0.1)),
        # On finite gradients skip_nonfinite is its inner transform.
        lambda p: optax.adam(0.1),
    ),
}

# The clips chained before Adam: the moments must keep the params' shardings too.
for _clip in (
    "clip_by_value",
    "clip_by_global_norm",
    "clip_by_layer_norm",
    "adaptive_grad_clip",
):
    _j, _o = TRANSFORMS[_clip]
    TRANSFORMS[f"{_clip}+adam"] = (
        lambda p, _j=_j: jaxnn.chain(_j(p), jaxnn.adam(0.1)),
        None if _o is None else lambda p, _o=_o: optax.chain(_o(p), optax.adam(0.1)),
    )


def grads_like(params, k=0):
    """Deterministic, element-wise 'gradients' (they keep the params' shardings).

    `k` shifts them, so that the gradients of several transforms run in one
    program are different computations (not merged by the compiler).
    """
    return jax.tree.map(
        lambda p: (jnp.sin(3 * p + 0.01 * k) + 0.25 * p + 0.1).astype(p.dtype), params
    )


# "Every clip and optimizer" for the sharding checks (8-device subprocess): each clip
# chained before Adam (its own output and the moments after it), every optimizer.
SHARDING_CLIPS = [
    "clip_by_value+adam",
    "clip_by_global_norm+adam",
    "clip_by_layer_norm+adam",
    "adaptive_grad_clip+adam",
]
SHARDING_OPTIMIZERS = [
    "sgd_momentum",
    "nesterov",
    "adagrad",
    "rmsprop_centered_momentum",
    "adam",
    "adamw_masked",
    "nadam",
    "skip_nonfinite",
]
