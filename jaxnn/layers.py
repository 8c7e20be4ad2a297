"""Dense (fully connected) layers: just enough to build MLPs from jaxnn's pieces."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxnn._checks import check_positive_int
from jaxnn.initializers import Initializer, he_normal, zeros


def dense_init(
    key: Any,
    n_in: int,
    n_out: int,
    w_init: Initializer = he_normal(),  # noqa: B008 (factories are pure and cheap)
    b_init: Initializer = zeros(),  # noqa: B008
) -> dict[str, jax.Array]:
    """Parameters of a dense layer y = x @ w + b.

    Args:
      key: PRNG key; split into one key for `w` and one for `b`.
      n_in: number of input features (positive int).
      n_out: number of output features (positive int).
      w_init: initializer for the (n_in, n_out) kernel (default He normal).
      b_init: initializer for the (n_out,) bias (default zeros).

    Returns:
      `{"w": (n_in, n_out) float32, "b": (n_out,) float32}`.

    Raises:
      TypeError: if `n_in` or `n_out` is not an int.
      ValueError: if `n_in` or `n_out` is < 1.
    """
    n_in = check_positive_int("n_in", n_in)
    n_out = check_positive_int("n_out", n_out)
    w_key, b_key = jax.random.split(key)
    return {"w": w_init(w_key, (n_in, n_out)), "b": b_init(b_key, (n_out,))}


def dense(params: dict[str, jax.Array], x: Any) -> jax.Array:
    """Applies a dense layer: x @ w + b (the bias broadcast over leading axes).

    Args:
      params: `{"w": (n_in, n_out), "b": (n_out,)}` as from `dense_init`.
      x: input of shape (..., n_in).

    Returns:
      Output of shape (..., n_out).

    Raises:
      ValueError: if `params` lacks "w" or "b", or the shapes do not fit.
    """
    try:
        w, b = params["w"], params["b"]
    except (KeyError, TypeError):
        raise ValueError(
            f"params must be a dict with keys 'w' and 'b', got {params!r}"
        ) from None
    x = jnp.asarray(x)
    if jnp.ndim(w) != 2 or jnp.shape(b) != (jnp.shape(w)[1],):
        raise ValueError(
            "params must hold w of shape (n_in, n_out) and b of shape (n_out,), got "
            f"w {jnp.shape(w)} and b {jnp.shape(b)}"
        )
    if x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"x must have shape (..., {w.shape[0]}) to match w {w.shape}, got {x.shape}"
        )
    y = x @ w
    # Explicit broadcast, so the layer works under jax_numpy_rank_promotion="raise".
    return y + jnp.reshape(b, (1,) * (y.ndim - 1) + b.shape)
