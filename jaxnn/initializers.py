"""Weight initializer factories: zero, constant, random, Xavier/Glorot, He, LeCun.

Each factory returns `init(key, shape, dtype=jnp.float32) -> array`, the calling
convention of the initializers that `jax.nn.initializers` factories return, so an
`init` from either library can be passed where the other's is expected (e.g.
`dense_init(key, 3, 2, w_init=jax.nn.initializers.lecun_normal())`).

Fans follow jax.nn.initializers: for a kernel of shape `shape`,
fan_in = shape[in_axis]·r and fan_out = shape[out_axis]·r, where the receptive field
size r is the product of every other dimension (1 for a dense (n_in, n_out) kernel,
kh·kw for an HWIO convolution kernel).

The factories are not drop-in replacements for the jax.nn.initializers of the same
(or the Glorot) names. They differ in what they return or draw:

  * `zeros()` is a factory (call it to get the initializer); jax's `zeros` is the
    initializer itself.
  * `uniform(epsilon)` draws the symmetric U(−ε, ε); jax's `uniform(scale)` draws
    U[0, scale).
  * `xavier_normal`, `he_normal` and `lecun_normal` draw a plain normal with the
    standard variance (2/(fan_in + fan_out), 2/fan_in, 1/fan_in); jax's
    glorot_normal, he_normal and lecun_normal draw a normal truncated to ±2 standard
    deviations of its base and rescaled to the same variance.
    `variance_scaling(..., "truncated_normal")` gives jax's distribution.
  * None takes jax's `dtype` or `batch_axis` arguments; the dtype is an argument of
    the returned `init`, as in jax.

The same distributions as jax's: `constant(value)`, `normal(stddev)` (N(0,
stddev²), default 0.01), `xavier_uniform` (jax's glorot_uniform), `he_uniform` and
`variance_scaling` for non-empty shapes (a zero fan is read as 1 here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jaxnn._checks import (
    check_axis,
    check_floating_dtype,
    check_in_range,
    check_one_of,
    check_shape,
)

Initializer = Callable[..., jax.Array]

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
# Standard deviation of a standard normal truncated to [-2, 2]; dividing by it gives
# the truncated draw the requested variance (as jax.nn.initializers does).
_TRUNCATED_STD = 0.87962566103423978


def _compute_fans(
    shape: Sequence[int], in_axis: int = -2, out_axis: int = -1
) -> tuple[float, float]:
    """Returns (fan_in, fan_out) of a kernel shape, as jax.nn.initializers.

    fan_in = shape[in_axis]·r, fan_out = shape[out_axis]·r, with r the product of the
    remaining dimensions (the receptive field size of a convolution kernel).

    Args:
      shape: the kernel shape, at least 2-D.
      in_axis: the input-feature axis.
      out_axis: the output-feature axis.

    Returns:
      The pair (fan_in, fan_out) as floats.

    Raises:
      TypeError: if an axis is not an int.
      ValueError: if `shape` has fewer than 2 dimensions or the axes are out of
        range or equal.
    """
    shape = check_shape("shape", shape)
    if len(shape) < 2:
        raise ValueError(
            "fan-based initializers need a shape with at least 2 dimensions "
            f"(in and out), got shape {shape}"
        )
    axes = [
        check_axis("in_axis", in_axis, shape),
        check_axis("out_axis", out_axis, shape),
    ]
    if axes[0] == axes[1]:
        raise ValueError(
            f"in_axis and out_axis must differ, got {in_axis} and {out_axis}"
        )
    receptive = math.prod(d for i, d in enumerate(shape) if i not in axes)
    return float(shape[axes[0]] * receptive), float(shape[axes[1]] * receptive)


def zeros() -> Initializer:
    """Initializer filling with 0 (W = 0).

    Every unit of a layer then computes the same output and receives the same
    gradient, so the units never differentiate (the symmetry problem).

    Returns:
      `init(key, shape, dtype=jnp.float32)`; the key is ignored.
    """

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.zeros(check_shape("shape", shape), dtype)

    return init


def constant(value: float) -> Initializer:
    """Initializer filling with `value`.

    Args:
      value: a real number.

    Returns:
      `init(key, shape, dtype=jnp.float32)`; the key is ignored.

    Raises:
      ValueError: if a concrete `value` is NaN or infinite.
    """
    check_in_range("value", value, -math.inf, math.inf)

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(check_shape("shape", shape), value, dtype)

    return init


def uniform(epsilon: float = 0.05) -> Initializer:
    """Initializer drawing from the symmetric uniform U(−ε, ε) (variance ε²/3).

    Ignores the layer size, so the variance of the activations of a deep stack
    initialized this way shrinks or grows geometrically with depth.

    Args:
      epsilon: half-width ε ≥ 0 of the interval.

    Returns:
      `init(key, shape, dtype=jnp.float32)`.

    Raises:
      ValueError: if a concrete `epsilon` is negative or not finite.
    """
    check_in_range("epsilon", epsilon, 0.0, math.inf)

    def init(key, shape, dtype=jnp.float32):
        dtype = check_floating_dtype("dtype", dtype)
        return jax.random.uniform(
            key, check_shape("shape", shape), dtype, minval=-epsilon, maxval=epsilon
        )

    return init


def normal(stddev: float = 0.01) -> Initializer:
    """Initializer drawing from N(0, stddev²).

    Args:
      stddev: standard deviation ≥ 0.

    Returns:
      `init(key, shape, dtype=jnp.float32)`.

    Raises:
      ValueError: if a concrete `stddev` is negative or not finite.
    """
    check_in_range("stddev", stddev, 0.0, math.inf)

    def init(key, shape, dtype=jnp.float32):
        dtype = check_floating_dtype("dtype", dtype)
        return jax.random.normal(key, check_shape("shape", shape), dtype) * jnp.asarray(
            stddev, dtype
        )

    return init


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    in_axis: int = -2,
    out_axis: int = -1,
) -> Initializer:
    """Initializer with variance `scale / n`, n chosen by `mode` (jax's semantics).

    n = fan_in (`"fan_in"`), fan_out (`"fan_out"`) or (fan_in + fan_out)/2
    (`"fan_avg"`); with variance v = scale/n the draws are
      * `"normal"`: N(0, v);
      * `"truncated_normal"`: a standard normal truncated to [−2, 2], times
        √v / 0.8796..., so that the variance is exactly v (as jax);
      * `"uniform"`: U(−√(3v), √(3v)).

    Args:
      scale: positive variance multiplier (2 for He, 1 for Xavier and LeCun).
      mode: `"fan_in"`, `"fan_out"` or `"fan_avg"`.
      distribution: `"truncated_normal"`, `"normal"` or `"uniform"`.
      in_axis: the input-feature axis of the kernel.
      out_axis: the output-feature axis of the kernel.

    Returns:
      `init(key, shape, dtype=jnp.float32)`; the shape must be at least 2-D.

    Raises:
      ValueError: if `scale` is not positive, `mode` or `distribution` is unknown,
        or (when called) the shape has fewer than 2 dimensions.
    """
    check_in_range("scale", scale, 0.0, math.inf, low_inclusive=False)
    check_one_of("mode", mode, _MODES)
    check_one_of("distribution", distribution, _DISTRIBUTIONS)

    def init(key, shape, dtype=jnp.float32):
        shape = check_shape("shape", shape)
        dtype = check_floating_dtype("dtype", dtype)
        fan_in, fan_out = _compute_fans(shape, in_axis, out_axis)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
        variance = jnp.asarray(scale / max(1.0, n[mode]), dtype)
        if distribution == "normal":
            return jax.random.normal(key, shape, dtype) * jnp.sqrt(variance)
        if distribution == "truncated_normal":
            std = jnp.sqrt(variance) / jnp.asarray(_TRUNCATED_STD, dtype)
            return jax.random.truncated_normal(key, -2, 2, shape, dtype) * std
        return jax.random.uniform(key, shape, dtype, -1, 1) * jnp.sqrt(3 * variance)

    return init


def xavier_uniform(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """Xavier/Glorot uniform: U(−√(6/(fan_in + fan_out)), +√(6/(fan_in + fan_out))).

    Variance 2/(fan_in + fan_out); suited to sigmoid and tanh.

    Args:
      in_axis: the input-feature axis of the kernel.
      out_axis: the output-feature axis of the kernel.

    Returns:
      `init(key, shape, dtype=jnp.float32)`.

    References:
      Glorot & Bengio, "Understanding the difficulty of training deep feedforward
      neural networks", AISTATS 2010.
    """
    return variance_scaling(1.0, "fan_avg", "uniform", in_axis, out_axis)


def xavier_normal(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """Xavier/Glorot normal: N(0, 2/(fan_in + fan_out)).

    The variance 2/(fan_in + fan_out) of Glorot & Bengio (2010). A plain normal,
    where jax.nn.initializers.glorot_normal draws a truncated one.

    Args:
      in_axis: the input-feature axis of the kernel.
      out_axis: the output-feature axis of the kernel.

    Returns:
      `init(key, shape, dtype=jnp.float32)`.

    References:
      Glorot & Bengio, AISTATS 2010.
    """
    return variance_scaling(1.0, "fan_avg", "normal", in_axis, out_axis)


def he_uniform(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """He/Kaiming uniform: U(−√(6/fan_in), +√(6/fan_in)), variance 2/fan_in.

    Suited to ReLU and Leaky ReLU.

    Args:
      in_axis: the input-feature axis of the kernel.
      out_axis: the output-feature axis of the kernel.

    Returns:
      `init(key, shape, dtype=jnp.float32)`.

    References:
      He et al., "Delving Deep into Rectifiers", ICCV 2015.
    """
    return variance_scaling(2.0, "fan_in", "uniform", in_axis, out_axis)


def he_normal(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """He/Kaiming normal: N(0, 2/fan_in) (plain normal; jax's he_normal truncates).

    Args:
      in_axis: the input-feature axis of the kernel.
      out_axis: the output-feature axis of the kernel.

    Returns:
      `init(key, shape, dtype=jnp.float32)`.

    References:
      He et al., "Delving Deep into Rectifiers", ICCV 2015.
    """
    return variance_scaling(2.0, "fan_in", "normal", in_axis, out_axis)


def lecun_normal(in_axis: int = -2, out_axis: int = -1) -> Initializer:
    """LeCun normal: N(0, 1/fan_in) (plain normal; jax's lecun_normal truncates).

    Args:
      in_axis: the input-feature axis of the kernel.
      out_axis: the output-feature axis of the kernel.

    Returns:
      `init(key, shape, dtype=jnp.float32)`.

    References:
      LeCun et al., "Efficient BackProp", 1998.
    """
    return variance_scaling(1.0, "fan_in", "normal", in_axis, out_axis)
