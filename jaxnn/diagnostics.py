"""Diagnostics for vanishing and exploding gradients: per-layer norms and a report.

By the chain rule, the gradient reaching layer 1 of an n-layer network is the
gradient at the output times n − 1 per-layer Jacobians, ∂L/∂h₁ = ∂L/∂hₙ ·
∏ₖ₌₂ⁿ ∂hₖ/∂hₖ₋₁, so per-layer factors below 1 make it vanish geometrically
(0.5¹⁰ ≈ 0.001) and factors above 1 make it explode (1.5¹⁰ ≈ 58) (Bengio et al.,
1994; Glorot & Bengio, 2010). The quantities here make that visible from inside a
jitted train step:

    grads = jax.grad(loss)(params)
    report = jaxnn.gradient_report(grads)       # arrays only: return it from jit
    report.layer_norms, report.attenuation, report.vanishing, report.exploding

Norms are accumulated in float32 (float64 for float64 leaves) like
`jaxnn.global_norm`, so float16 and bfloat16 gradients do not overflow.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnn._checks import (
    check_floating_tree,
    check_in_range,
    check_nonnegative,
    check_tree_matches,
)
from jaxnn._masks import is_mask_fn
from jaxnn._norms import global_norm, norm_dtype


class GradientReport(NamedTuple):
    """What `gradient_report` measures; every field is an array (a pytree).

    Attributes:
      global_norm: L2 norm of all gradients together (scalar).
      layer_norms: shape (L,), the L2 norm of each layer's gradient, in layer order
        (see `gradient_report` for what a layer is and which comes first).
      relative_norms: shape (L,), ‖g_l‖ / max(‖θ_l‖, eps) for each layer when
        `params` were given; None otherwise.
      min_norm: the smallest entry of `layer_norms`.
      max_norm: the largest entry of `layer_norms`.
      attenuation: layer_norms[0] / layer_norms[-1], the first layer's gradient
        norm over the last layer's. With layers in network order (input first),
        ≪ 1 means the gradient shrinks on its way back to the input (vanishing) and
        ≫ 1 that it grows (exploding). IEEE division: x/0 = inf, 0/0 = NaN.
      num_nonfinite: int32 count of NaN and ±inf elements in all gradients.
      vanishing: bool, see `gradient_report` for the rule.
      exploding: bool, see `gradient_report` for the rule.
      num_zero: int32 count of gradient elements that are exactly 0 among the
        trainable ones (see `gradient_report`: float16 underflow shows here).
      zero_fraction: `num_zero` over the number of trainable elements (0 if
        there are none).
      layer_zero_fractions: shape (L,), the same fraction for each layer.
    """

    global_norm: jax.Array
    layer_norms: jax.Array
    relative_norms: jax.Array | None
    min_norm: jax.Array
    max_norm: jax.Array
    attenuation: jax.Array
    num_nonfinite: jax.Array
    vanishing: jax.Array
    exploding: jax.Array
    num_zero: jax.Array
    zero_fraction: jax.Array
    layer_zero_fractions: jax.Array


def gradient_norms(tree: Any) -> Any:
    """The L2 norm of each leaf of `tree`, as a tree of the same structure.

    Each norm is sqrt(Σ x²) over the leaf's elements, accumulated in float32
    (float64 for float64 leaves), exactly `jaxnn.global_norm` applied leaf by leaf.

    Args:
      tree: a pytree of floating-point arrays, e.g. the gradients of a model.

    Returns:
      A pytree with the structure of `tree` whose leaves are scalars (float32, or
      float64 for float64 leaves). None leaves stay None.

    Raises:
      TypeError: if a leaf is not a floating-point array.
    """
    check_floating_tree("tree", tree)
    return jax.tree.map(global_norm, tree)


def _layers(tree: Any) -> list[Any]:
    """Splits `tree` into layers: a list/tuple's elements, else its leaves."""
    if isinstance(tree, list | tuple):
        return [layer for layer in tree if jax.tree.leaves(layer)]
    return jax.tree.leaves(tree)


def gradient_report(
    grads: Any,
    params: Any = None,
    *,
    vanishing_threshold: float = 1e-6,
    exploding_threshold: float = 1e3,
    ratio_threshold: float = 1e3,
    eps: float = 1e-3,
    trainable: Any = None,
) -> GradientReport:
    """Measures per-layer gradient norms and flags vanishing or exploding gradients.

    What a layer is, and which one is "first":

    - If `grads` is a list or tuple, it is read as the layers in network order,
      input side first: each element (a sub-pytree such as `{"w": ..., "b": ...}`)
      is one layer, and its norm is the global norm of that element. Elements
      without array leaves (a parameterless activation) are left out.
    - Any other pytree (a dict, a single array): each leaf is one layer, in
      `jax.tree.leaves` order, which sorts dict keys as strings ("layer10" comes
      before "layer2"). To control the order, pass a list of layers, e.g.
      `gradient_report([grads[k] for k in names_in_network_order])`.

    The flags (thresholds are heuristics for losses of order 1; override them):

    - `vanishing` if the smallest layer norm is below `vanishing_threshold`, or
      if `attenuation` < 1 / `ratio_threshold` (the first layer gets over
      `ratio_threshold` times less gradient than the last: ten layers with a
      factor of 0.5 give 0.5¹⁰ ≈ 1/1000). When `params` are given, the
      smallest-norm test uses the relative norms ‖g_l‖ / max(‖θ_l‖, eps)
      instead, which do not depend on the scale of the weights.
    - `exploding` if the global norm exceeds `exploding_threshold`, or any
      gradient element is NaN or ±inf, or `attenuation` > `ratio_threshold` (the
      gradient grows over `ratio_threshold` times on its way to the input).

    Exact zeros (`num_zero`, `zero_fraction`, `layer_zero_fractions`) are
    counted among the trainable entries only. Whether a parameter is frozen
    cannot be read from the gradients (a layer frozen with `stop_gradient` and a
    layer whose gradients all underflowed both give zeros), so it is given by
    `trainable`, the mask the optimizer uses (`masked`'s): None counts every
    entry. An exact zero is structural (a dead ReLU unit, an input feature that
    is always 0) or an underflow: in float16 every gradient element of magnitude
    at most 2⁻²⁵ ≈ 3e-8 rounds to 0, and the per-example activation gradients of a
    batch-mean loss carry a 1/batch factor that pushes many there. Compare with
    the same model in float32 (or with `dynamic_loss_scale`): the excess zeros
    are underflow. The count does not depend on a loss scale S (S·0 = 0, and a
    nonzero float16 value divided by any S below 2¹⁰⁰ is nonzero in float32), so
    the scaled gradients of a loss-scaled step count the same zeros as the
    unscaled ones.

    Everything is computed with `jax.numpy` on static structure, so the function
    works under `jax.jit` and a train step can return the report.

    Args:
      grads: the gradients, a non-empty pytree of floating-point arrays (a list or
        tuple is read as layers in network order, see above).
      params: optional parameters with the structure of `grads`; enables
        `relative_norms`.
      vanishing_threshold: smallest healthy layer norm (relative norm if `params`
        are given), >= 0.
      exploding_threshold: largest healthy global gradient norm, >= 0.
      ratio_threshold: largest healthy first/last (or last/first) layer-norm
        ratio, >= 1.
      eps: floor on each layer's parameter norm in the relative norms, >= 0.
      trainable: which entries count for the zero statistics: None (all), a
        pytree with the structure of `grads` whose leaves are bools or bool
        arrays broadcastable to the gradient leaf (True = trainable), or a
        callable `params -> such a pytree` (called on `grads` if no `params`).

    Returns:
      A `GradientReport` of arrays.

    Raises:
      ValueError: if `grads` has no layers, a threshold is out of range, or
        `params` (or `trainable`) does not match the structure (and shapes) of
        `grads`.
      TypeError: if a gradient (or parameter) leaf is not a floating-point
        array, or a `trainable` leaf is not boolean.
    """
    check_nonnegative("vanishing_threshold", vanishing_threshold)
    check_nonnegative("exploding_threshold", exploding_threshold)
    check_in_range("ratio_threshold", ratio_threshold, 1.0, np.inf)
    check_nonnegative("eps", eps)
    check_floating_tree("grads", grads)
    layers = _layers(grads)
    if not layers:
        raise ValueError(
            "gradient_report needs at least one gradient array, got a tree without "
            f"array leaves: {jax.tree.structure(grads)}"
        )
    param_layers = None
    if params is not None:
        check_tree_matches(grads, "grads", params, "params")
        check_floating_tree("params", params)
        param_layers = _layers(params)
    trainable_layers = _layers(_trainable_tree(trainable, grads, params))
    # One compiled computation instead of a few eager ops per layer; inlined when
    # the caller is itself jitted.
    return _report(
        layers,
        param_layers,
        trainable_layers,
        vanishing_threshold,
        exploding_threshold,
        ratio_threshold,
        eps,
    )


def _trainable_tree(trainable: Any, grads: Any, params: Any) -> Any:
    """`trainable` resolved to a tree of bool arrays with the structure of grads."""
    if trainable is None:
        return jax.tree.map(lambda g: jnp.ones((), jnp.bool_), grads)
    if is_mask_fn(trainable):  # optax's rule: a callable pytree is a tree
        trainable = trainable(grads if params is None else params)
    check_tree_matches(grads, "grads", trainable, "trainable", shapes=False)
    g_paths, _ = jax.tree_util.tree_flatten_with_path(grads)
    out = []
    for (path, g), t in zip(g_paths, jax.tree.leaves(trainable), strict=True):
        t = jnp.asarray(t)
        where = jax.tree_util.keystr(path)
        if t.dtype != jnp.bool_:
            raise TypeError(f"trainable{where} must be a bool, got {t.dtype}")
        try:
            if np.broadcast_shapes(t.shape, np.shape(g)) != np.shape(g):
                raise ValueError
        except ValueError as e:
            raise ValueError(
                f"trainable{where} has shape {t.shape}, not broadcastable to the "
                f"gradient's shape {np.shape(g)}"
            ) from e
        out.append(t)
    return jax.tree.unflatten(jax.tree.structure(grads), out)


def _zero_counts(layer: Any, trainable: Any) -> tuple[jax.Array, jax.Array]:
    """(exact zeros among trainable entries, trainable entries) of one layer."""
    pairs = zip(jax.tree.leaves(layer), jax.tree.leaves(trainable), strict=True)
    zeros = counted = jnp.zeros((), jnp.int32)
    for g, t in pairs:
        # Broadcast here, under jit, so a scalar mask costs no array.
        t = jnp.broadcast_to(t, g.shape)
        zeros = zeros + jnp.sum((g == 0) & t, dtype=jnp.int32)
        counted = counted + jnp.sum(t, dtype=jnp.int32)
    return zeros, counted


@jax.jit
def _report(
    layers,
    param_layers,
    trainable_layers,
    vanishing_threshold,
    exploding_threshold,
    ratio_threshold,
    eps,
):
    dtype = norm_dtype(layers)
    layer_norms = jnp.stack([global_norm(layer).astype(dtype) for layer in layers])
    total = global_norm(layers).astype(dtype)

    relative = None
    scale = layer_norms
    if param_layers is not None:
        param_norms = jnp.stack(
            [global_norm(layer).astype(dtype) for layer in param_layers]
        )
        floor = jnp.asarray(eps).astype(dtype)
        relative = layer_norms / jnp.maximum(param_norms, floor)
        scale = relative

    attenuation = layer_norms[0] / layer_norms[-1]
    num_nonfinite = sum(
        jnp.sum(~jnp.isfinite(x)).astype(jnp.int32) for x in jax.tree.leaves(layers)
    )
    vanishing = (jnp.min(scale) < vanishing_threshold) | (
        attenuation < 1.0 / ratio_threshold
    )
    exploding = (
        (total > exploding_threshold)
        | (num_nonfinite > 0)
        | (attenuation > ratio_threshold)
    )
    counts = [
        _zero_counts(layer, t)
        for layer, t in zip(layers, trainable_layers, strict=True)
    ]
    zeros = jnp.stack([z for z, _ in counts])
    counted = jnp.stack([n for _, n in counts])

    def fraction(z, n):
        return z.astype(dtype) / jnp.maximum(n, 1).astype(dtype)

    return GradientReport(
        global_norm=total,
        layer_norms=layer_norms,
        relative_norms=relative,
        min_norm=jnp.min(layer_norms),
        max_norm=jnp.max(layer_norms),
        attenuation=attenuation,
        num_nonfinite=jnp.asarray(num_nonfinite, jnp.int32),
        vanishing=vanishing,
        exploding=exploding,
        num_zero=jnp.sum(zeros),
        zero_fraction=fraction(jnp.sum(zeros), jnp.sum(counted)),
        layer_zero_fractions=fraction(zeros, counted),
    )
