"""Learning-rate schedules: functions `count -> value`, with optax's arguments.

A schedule is passed wherever a hyperparameter is documented as a "schedule" (e.g.
`adam(learning_rate=warmup_cosine_decay_schedule(...))`); it is called with the int32
step count before the step, so the first update uses `schedule(0)`. The values equal
optax's schedules of the same names and arguments.

Values are computed in JAX's default float: float32, or float64 under
`jax_enable_x64` (then accurate to float64 rounding, as the formulas in NumPy).

Every numeric argument may be traced (e.g. an argument of a jitted function that
builds the schedule): values and step counts enter the maths as `jax.numpy`
operands, and only concrete ones are validated. Only the boundaries of
`piecewise_constant_schedule` (dict keys) must be static.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from jaxnn._checks import (
    check_in_range,
    check_nonnegative,
    check_nonnegative_int,
    check_positive_int,
    check_real,
    is_traced,
)
from jaxnn._dtypes import float_dtype
from jaxnn.optim.base import Schedule


def constant_schedule(value: float) -> Schedule:
    """The schedule that always returns `value`.

    Args:
      value: the constant.

    Returns:
      A function `count -> value`.
    """
    check_real("value", value)
    return lambda count: value


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """Exponential decay: init_value · decay_rate^(elapsed / transition_steps).

    elapsed = count − transition_begin. Constant `init_value` until
    `transition_begin`; with `staircase` the exponent is floored (decay in
    steps); with `end_value` the value is clipped at it (from
    below if `decay_rate < 1`, from above if it is > 1).

    Args:
      init_value: the value before and at `transition_begin`.
      transition_steps: steps over which the value is multiplied by `decay_rate`,
        > 0.
      decay_rate: the factor per `transition_steps`, > 0 (0 is rejected: optax
        quietly returns a constant there).
      transition_begin: steps of constant value before the decay starts, >= 0.
      staircase: whether to decay at discrete intervals.
      end_value: optional bound on the value.

    Returns:
      A function `count -> value`.

    Raises:
      TypeError: if a step argument is not an int.
      ValueError: if a concrete `transition_steps` <= 0, `transition_begin` < 0
        or `decay_rate` <= 0 (optax silently returns a constant schedule or
        clamps there).
    """
    transition_steps = check_positive_int("transition_steps", transition_steps)
    transition_begin = check_nonnegative_int("transition_begin", transition_begin)
    check_in_range("decay_rate", decay_rate, 0.0, math.inf, low_inclusive=False)

    def schedule(count):
        dtype = float_dtype()
        elapsed = count - transition_begin
        p = jnp.asarray(elapsed, dtype) / jnp.asarray(transition_steps, dtype)
        if staircase:
            p = jnp.floor(p)
        value = jnp.where(
            elapsed <= 0, init_value, init_value * jnp.power(decay_rate, p)
        )
        if end_value is None:
            return value
        # Decay (rate < 1) is bounded below by end_value, growth above: a select
        # for a traced decay_rate, a Python branch (one op less) for a concrete one.
        if is_traced(decay_rate):
            return jnp.where(
                decay_rate < 1.0,
                jnp.maximum(value, end_value),
                jnp.minimum(value, end_value),
            )
        return (jnp.maximum if decay_rate < 1.0 else jnp.minimum)(value, end_value)

    return schedule


def cosine_decay_schedule(
    init_value: float,
    decay_steps: int,
    alpha: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Cosine decay from `init_value` to `alpha · init_value` over `decay_steps`.

    value = init_value · ((1 − α) · (½(1 + cos(π · min(count, decay_steps) /
    decay_steps)))^exponent + α); constant after `decay_steps`.

    Args:
      init_value: the value at count 0.
      decay_steps: steps to decay over, > 0.
      alpha: the final value as a fraction of `init_value`.
      exponent: the power of the cosine factor (1: standard cosine decay).

    Returns:
      A function `count -> value`.

    Raises:
      TypeError: if `decay_steps` is not an int.
      ValueError: if a concrete `decay_steps` <= 0.

    References:
      Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
      Restarts", ICLR 2017.
    """
    decay_steps = check_positive_int("decay_steps", decay_steps)

    def schedule(count):
        dtype = float_dtype()
        steps = jnp.asarray(decay_steps, dtype)
        count = jnp.minimum(jnp.asarray(count, dtype), steps)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * count / steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


def _linear(init_value: float, end_value: float, steps: int) -> Schedule:
    """Linear from init_value to end_value over `steps` >= 0, constant afterwards.

    With steps = 0 it is init_value (to rounding) at count 0; the warm-up built
    from it is then never selected.
    """

    def schedule(count):
        dtype = float_dtype()
        count = jnp.asarray(jnp.clip(count, 0, steps), dtype)
        # max(steps, 1) only matters for steps = 0, where count is 0 too.
        frac = 1 - count / jnp.asarray(jnp.maximum(steps, 1), dtype)
        return (init_value - end_value) * frac + end_value

    return schedule


def warmup_cosine_decay_schedule(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warm-up from `init_value` to `peak_value`, then cosine decay.

    Over the first `warmup_steps` steps the value rises linearly to `peak_value`;
    it then follows `cosine_decay_schedule` down to `end_value`, reached at
    `decay_steps` (counted from 0, warm-up included) and kept afterwards.

    Args:
      init_value: the value at count 0.
      peak_value: the value at the end of the warm-up.
      warmup_steps: the warm-up length, >= 0.
      decay_steps: the total length of warm-up plus decay, > `warmup_steps`.
      end_value: the final value.
      exponent: the power of the cosine factor.

    Returns:
      A function `count -> value`.

    Raises:
      TypeError: if a step argument is not an int.
      ValueError: if a concrete `warmup_steps` < 0 or `decay_steps` <=
        `warmup_steps`.
    """
    warmup_steps = check_nonnegative_int("warmup_steps", warmup_steps)
    decay_steps = check_positive_int("decay_steps", decay_steps)
    if not (is_traced(warmup_steps) or is_traced(decay_steps)) and (
        decay_steps <= warmup_steps
    ):
        raise ValueError(
            f"decay_steps must be > warmup_steps, got decay_steps={decay_steps!r}, "
            f"warmup_steps={warmup_steps!r}"
        )
    alpha: Any
    if is_traced(peak_value) or is_traced(end_value):
        safe_peak = jnp.where(peak_value == 0.0, 1.0, peak_value)
        alpha = jnp.where(peak_value == 0.0, 0.0, end_value / safe_peak)
    else:
        # Python arithmetic, as optax's, so concrete values match it to the bit.
        alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    warmup = _linear(init_value, peak_value, warmup_steps)
    decay = cosine_decay_schedule(
        peak_value, decay_steps - warmup_steps, alpha, exponent
    )

    def schedule(count):
        return jnp.where(
            count < warmup_steps, warmup(count), decay(count - warmup_steps)
        )

    return schedule


def piecewise_constant_schedule(
    init_value: float, boundaries_and_scales: Mapping[int, float] | None = None
) -> Schedule:
    """A value multiplied by `scale` at each boundary step.

    With `boundaries_and_scales={100: 0.1, 200: 0.5}` the value is `init_value`
    for counts < 100, `0.1 · init_value` for 100 <= count < 200, and
    `0.05 · init_value` from 200 on (as optax: a boundary's scale applies from
    the boundary itself).

    Args:
      init_value: the value before the first boundary.
      boundaries_and_scales: a mapping from step (int) to a scale >= 0.

    Returns:
      A function `count -> value`.

    Raises:
      ValueError: if a scale is negative.
    """
    items = sorted((boundaries_and_scales or {}).items())
    for boundary, s in items:
        check_nonnegative(f"boundaries_and_scales[{boundary!r}]", s)

    def schedule(count):
        value = init_value
        for boundary, s in items:
            value = jnp.where(count >= boundary, value * s, value)
        return value

    return schedule
