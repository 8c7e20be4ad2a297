"""Building blocks that optimizers are chained from: scale, scale_by_*, trace.

Each is a `GradientTransformation`; an optimizer is a short `chain` of them (see
`optimizers.py`). Hyperparameters given as Python numbers are validated here, when the
transform is built. The adaptive scalings (Adagrad, RMSprop, Adam) live in
`adaptive.py`; weight decay and L1 in `regularization.py`; masking in `masking.py`.

Dtypes: element-wise arithmetic is done in float32 or wider (bfloat16 moments and
gradients are widened, then rounded when stored; complex values in complex64 or
wider, as optax, so no imaginary part is dropped); each state leaf keeps the dtype
it was created with (the params' unless `accumulator_dtype`, `mu_dtype` or
`nu_dtype` say otherwise), and the outgoing updates have the dtype of the incoming
ones. Where a state's dtype keeps the compute dtype's exponent range (bfloat16
under float32), a new moment enters the update as stored, rounded, so XLA need not
keep the old moment alive beside the new (`_dtypes.as_stored`); with bfloat16 params
that is what optax computes too. float16 state is read unrounded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxnn._checks import (
    check_bool,
    check_callable,
    check_decay,
    check_floating_dtype,
    check_learning_rate,
    check_real,
    check_tree_matches,
)
from jaxnn._dtypes import as_stored, compute_dtype
from jaxnn._trees import map_leaves, scale_tree, zeros_like_tree
from jaxnn.optim.base import (
    GradientTransformation,
    ScalarOrSchedule,
    Schedule,
    Updates,
    identity,
    safe_increment,
    stateless,
)


def scale(step_size: float | jax.Array) -> GradientTransformation:
    """Multiplies the updates by a constant: u ← step_size · u.

    Args:
      step_size: the multiplier (any real number, or an array traced under jit;
        optax's name).

    Returns:
      A stateless GradientTransformation.
    """
    check_real("step_size", step_size)
    return stateless(lambda updates, params: scale_tree(updates, step_size))


class ScaleByScheduleState(NamedTuple):
    """State of `scale_by_learning_rate` with a schedule.

    Attributes:
      count: int32 number of updates applied so far (saturates at the int32 max).
    """

    count: jax.Array  # type: ignore[assignment]  # optax name


def scale_by_schedule(step_size_fn: Schedule) -> GradientTransformation:
    """Multiplies the updates by `step_size_fn(count)`.

    `count` is the int32 number of updates done before this one, so the first
    update uses `step_size_fn(0)`, as optax does.

    Args:
      step_size_fn: a function of the step count returning the multiplier.

    Returns:
      A GradientTransformation with state `ScaleByScheduleState`.
    """
    check_callable("step_size_fn", step_size_fn)

    def init(params):
        del params
        return ScaleByScheduleState(count=jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        factor = step_size_fn(state.count)
        return scale_tree(updates, factor), ScaleByScheduleState(
            count=safe_increment(state.count)
        )

    return GradientTransformation(init, update)


def scale_by_learning_rate(
    learning_rate: ScalarOrSchedule | None = None, *, flip_sign: bool = True
) -> GradientTransformation:
    """Multiplies the updates by −learning_rate (or +learning_rate).

    With the default `flip_sign=True`, gradients become descent steps that
    `apply_updates` adds to the params: W ← W − η g.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η` (called with the
        int32 count before it is incremented, so the first step uses
        `schedule(0)`); None (the default, as optax) means no scaling.
      flip_sign: whether to negate (True for gradient descent; a Python bool).

    Returns:
      A GradientTransformation: `identity()` for None, stateless for a number,
      with `ScaleByScheduleState` for a schedule.

    Raises:
      ValueError: if a concrete learning rate is negative or not finite.
      TypeError: if `flip_sign` is not a bool.
    """
    check_bool("flip_sign", flip_sign)
    if learning_rate is None:
        return identity()
    check_learning_rate(learning_rate)
    sign = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * learning_rate(count))
    return scale(sign * learning_rate)


class TraceState(NamedTuple):
    """State of `trace`.

    Attributes:
      trace: the velocity v, with the structure of the params.
    """

    trace: Updates


def trace(
    decay: float, nesterov: bool = False, accumulator_dtype: Any = None
) -> GradientTransformation:
    """Momentum: v ← decay·v + g; returns v, or g + decay·v with `nesterov`.

    The Nesterov form needs only the gradient at the current params; it gives the
    iterates of the look-ahead form v ← βv + η∇L(W − βv) under the change of
    variables W' = W − βv (Sutskever et al., 2013). The new velocity is formed in
    float32 or wider and used as stored, rounded to `accumulator_dtype`, where
    that dtype keeps the compute dtype's range (bfloat16; float16 is used
    unrounded). optax uses the unrounded value and stores the rounded one: under a
    bfloat16 `accumulator_dtype` with float32 gradients the two differ by that
    rounding.

    Args:
      decay: β in [0, 1).
      nesterov: whether to return the Nesterov look-ahead update (a Python bool).
      accumulator_dtype: dtype of the stored velocity; None keeps the params'
        dtype (as optax). bfloat16 halves the state's memory.

    Returns:
      A GradientTransformation with state `TraceState`.

    Raises:
      ValueError: if a concrete `decay` is outside [0, 1).
      TypeError: if `nesterov` is not a bool, `accumulator_dtype` not a floating
        dtype (or None), or (at `init`) real while a param is complex.
    """
    check_decay("decay", decay)
    check_bool("nesterov", nesterov)
    accumulator_dtype = check_floating_dtype(
        "accumulator_dtype", accumulator_dtype, allow_none=True
    )

    def init(params):
        return TraceState(
            trace=zeros_like_tree(params, accumulator_dtype, name="accumulator_dtype")
        )

    def leaf(g, v):
        wide = compute_dtype(g.dtype, v.dtype)
        gw = g.astype(wide)
        v_new = as_stored(decay * v.astype(wide) + gw, v.dtype)
        out = gw + decay * v_new if nesterov else v_new
        return out.astype(g.dtype), v_new.astype(v.dtype)

    def update(updates, state, params=None, **extra_args):
        del params, extra_args
        check_tree_matches(updates, "updates", state.trace, "state.trace")
        out, new_trace = map_leaves(leaf, updates, state.trace)
        return out, TraceState(trace=new_trace)

    return GradientTransformation(init, update)
