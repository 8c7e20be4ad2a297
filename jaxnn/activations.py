"""Activation functions with analytic derivatives: sigmoid, tanh, ReLU, Leaky ReLU.

Each activation is a `jax.custom_jvp` whose derivative is the closed form

    σ'(z) = σ(z)(1 − σ(z)),   tanh'(z) = 1 − tanh²(z),
    relu'(z) = [z > 0],       leaky_relu'(z) = 1 if z > 0 else α,

and each derivative is also public (`sigmoid_derivative`, ...), so
`jax.grad(f)(z) == f_derivative(z)` holds exactly, including at the kink z = 0 and
for |z| >= 1e4.

Differences from `jax.nn`:
  * `leaky_relu` has derivative `negative_slope` at 0 (jax.nn.leaky_relu: 1): the
    linear part is z > 0, so z = 0 belongs to the negative side, as for ReLU,
    whose derivative at 0 is 0 in both libraries.
  * `sigmoid_derivative` is computed as σ(z)·σ(−z) and `tanh_derivative` as
    4·σ(2z)·σ(−2z) = sech²(z); both equal σ(1 − σ) and 1 − tanh² but keep full
    relative accuracy in the tails (jax.grad of jax.nn.sigmoid is exactly 0 for
    z > 17 in float32, where the true derivative is about 4e-8).
  * Values are the same as jax.nn's (`relu(0) = 0`, `leaky_relu(0) = 0`).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxnn._checks import check_in_range, check_real_array


def _as_float(name: str, x: Any) -> jax.Array:
    """Returns `x` as a real floating array; integers and bools become floats."""
    x = jnp.asarray(x)
    check_real_array(name, x)
    if jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return x.astype(jnp.result_type(float))


# --- sigmoid ---------------------------------------------------------------------


@jax.custom_jvp
def _sigmoid(x):
    # lax.logistic never evaluates exp of a large positive number, so it is finite
    # for every input.
    return lax.logistic(x)


@_sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _sigmoid(x), _sigmoid_derivative(x) * t


def _sigmoid_derivative(x):
    return lax.logistic(x) * lax.logistic(-x)


def sigmoid(x: Any) -> jax.Array:
    """Logistic sigmoid σ(z) = 1 / (1 + e^(−z)), range (0, 1).

    Args:
      x: input array (integers are converted to the default float dtype).

    Returns:
      σ(x), same shape and (floating) dtype as `x`.

    Raises:
      TypeError: if `x` is not a real array.
    """
    return _sigmoid(_as_float("x", x))


def sigmoid_derivative(x: Any) -> jax.Array:
    """Derivative of the sigmoid, σ'(z) = σ(z)(1 − σ(z)) = σ(z)·σ(−z).

    Computed as σ(z)·σ(−z), which keeps full relative accuracy for large |z|; at
    most 0.25 (at z = 0), tending to 0 as |z| grows (saturation).

    Args:
      x: input array.

    Returns:
      σ'(x), same shape and dtype as `x`.

    Raises:
      TypeError: if `x` is not a real array.
    """
    return _sigmoid_derivative(_as_float("x", x))


# --- tanh ------------------------------------------------------------------------


@jax.custom_jvp
def _tanh(x):
    return jnp.tanh(x)


@_tanh.defjvp
def _tanh_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _tanh(x), _tanh_derivative(x) * t


def _tanh_derivative(x):
    two_x = 2 * x
    return 4 * lax.logistic(two_x) * lax.logistic(-two_x)


def tanh(x: Any) -> jax.Array:
    """Hyperbolic tangent: (e^z − e^(−z)) / (e^z + e^(−z)), range (−1, 1).

    Args:
      x: input array (integers are converted to the default float dtype).

    Returns:
      tanh(x), same shape and (floating) dtype as `x`.

    Raises:
      TypeError: if `x` is not a real array.
    """
    return _tanh(_as_float("x", x))


def tanh_derivative(x: Any) -> jax.Array:
    """Derivative of tanh, tanh'(z) = 1 − tanh²(z) = sech²(z).

    Computed as 4·σ(2z)·σ(−2z) (equal to sech² z), which has no cancellation when
    tanh(z) rounds to ±1; in (0, 1], 1 at z = 0.

    Args:
      x: input array.

    Returns:
      tanh'(x), same shape and dtype as `x`.

    Raises:
      TypeError: if `x` is not a real array.
    """
    return _tanh_derivative(_as_float("x", x))


# --- ReLU ------------------------------------------------------------------------


@jax.custom_jvp
def _relu(x):
    return jnp.maximum(x, jnp.zeros((), x.dtype))


@_relu.defjvp
def _relu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _relu(x), jnp.where(x > 0, t, jnp.zeros_like(t))


def _relu_derivative(x):
    return (x > 0).astype(x.dtype)


def relu(x: Any) -> jax.Array:
    """Rectified linear unit: max(0, z).

    Args:
      x: input array (integers are converted to the default float dtype).

    Returns:
      max(0, x), same shape and (floating) dtype as `x`.

    Raises:
      TypeError: if `x` is not a real array.
    """
    return _relu(_as_float("x", x))


def relu_derivative(x: Any) -> jax.Array:
    """Derivative of ReLU: 1 where z > 0 and 0 where z ≤ 0 (0 at exactly 0).

    Args:
      x: input array.

    Returns:
      The derivative at `x` (0 or 1), same shape and dtype as `x`.

    Raises:
      TypeError: if `x` is not a real array.
    """
    return _relu_derivative(_as_float("x", x))


# --- Leaky ReLU ------------------------------------------------------------------


@jax.custom_jvp
def _leaky_relu(x, negative_slope):
    return jnp.where(x > 0, x, negative_slope * x)


@_leaky_relu.defjvp
def _leaky_relu_jvp(primals, tangents):
    (x, slope), (tx, tslope) = primals, tangents
    positive = x > 0
    dx = jnp.where(positive, tx, slope * tx)
    dslope = jnp.where(positive, jnp.zeros_like(x), x * tslope)
    return _leaky_relu(x, slope), dx + dslope


def _leaky_args(x: Any, negative_slope: Any) -> tuple[jax.Array, jax.Array]:
    check_in_range("negative_slope", negative_slope, -math.inf, math.inf)
    x = _as_float("x", x)
    slope = jnp.asarray(negative_slope, x.dtype)
    if slope.ndim != 0:
        raise ValueError(
            f"negative_slope must be a scalar, got an array of shape {slope.shape}"
        )
    return x, slope


def leaky_relu(x: Any, negative_slope: float = 0.01) -> jax.Array:
    """Leaky ReLU: z for z > 0, negative_slope·z otherwise.

    Unlike ReLU, units with z ≤ 0 keep a small gradient (`negative_slope`), so they
    cannot "die". The derivative is differentiable in `negative_slope` too.

    Args:
      x: input array (integers are converted to the default float dtype).
      negative_slope: the slope α for z ≤ 0 (a finite scalar).

    Returns:
      The activation, same shape and (floating) dtype as `x`.

    Raises:
      TypeError: if `x` or `negative_slope` is not real.
      ValueError: if a concrete `negative_slope` is not finite or not a scalar.
    """
    x, slope = _leaky_args(x, negative_slope)
    return _leaky_relu(x, slope)


def leaky_relu_derivative(x: Any, negative_slope: float = 0.01) -> jax.Array:
    """Derivative of Leaky ReLU: 1 where z > 0, `negative_slope` where z ≤ 0.

    At z = 0 it is `negative_slope` (jax.nn.leaky_relu's gradient there is 1).

    Args:
      x: input array.
      negative_slope: the slope α for z ≤ 0 (a finite scalar).

    Returns:
      The derivative at `x`, same shape and dtype as `x`.

    Raises:
      TypeError: if `x` or `negative_slope` is not real.
      ValueError: if a concrete `negative_slope` is not finite or not a scalar.
    """
    x, slope = _leaky_args(x, negative_slope)
    return jnp.where(x > 0, jnp.ones_like(x), jnp.broadcast_to(slope, x.shape))
