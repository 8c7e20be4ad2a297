"""Schedules: equal to optax's at many steps, jit-compatible, arguments validated."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests.helpers import TOL

COUNTS = jnp.arange(0, 1200, dtype=jnp.int32)

CASES = [
    ("constant_schedule", dict(value=0.3)),
    ("exponential_decay", dict(init_value=1.0, transition_steps=100, decay_rate=0.5)),
    (
        "exponential_decay",
        dict(
            init_value=0.1,
            transition_steps=37,
            decay_rate=0.9,
            transition_begin=50,
            staircase=True,
            end_value=0.02,
        ),
    ),
    (
        "exponential_decay",
        dict(init_value=0.1, transition_steps=10, decay_rate=1.5, end_value=0.4),
    ),
    ("cosine_decay_schedule", dict(init_value=0.1, decay_steps=1000)),
    (
        "cosine_decay_schedule",
        dict(init_value=2.0, decay_steps=333, alpha=0.1, exponent=2.0),
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(init_value=0.0, peak_value=1e-3, warmup_steps=100, decay_steps=1000),
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(
            init_value=1e-4,
            peak_value=1e-2,
            warmup_steps=0,
            decay_steps=500,
            end_value=1e-5,
            exponent=0.5,
        ),
    ),
    (
        "warmup_cosine_decay_schedule",
        dict(
            init_value=0.5,
            peak_value=1.0,
            warmup_steps=77,
            decay_steps=900,
            end_value=0.2,
        ),
    ),
    ("piecewise_constant_schedule", dict(init_value=1.0)),
    (
        "piecewise_constant_schedule",
        dict(init_value=0.1, boundaries_and_scales={300: 0.1, 100: 0.5, 700: 2.0}),
    ),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_equals_optax_at_many_steps(name, kwargs):
    ours = getattr(jaxnn, name)(**kwargs)
    theirs = getattr(optax, name)(**kwargs)
    # Both jitted: near the end of a cosine decay 1 + cos(.) cancels, and float32
    # rounding there depends on how XLA fuses the expression.
    expected = np.broadcast_to(
        np.asarray(jax.jit(theirs)(COUNTS), np.float64), COUNTS.shape
    )
    got = np.broadcast_to(np.asarray(jax.jit(ours)(COUNTS), np.float64), COUNTS.shape)
    np.testing.assert_allclose(got, expected, **TOL["roundings_near_zero"])
    # Scalar int32 counts (as the optimizers pass them) give the same values.
    for c in (0, 1, 99, 100, 101, 1199):
        np.testing.assert_allclose(
            float(ours(jnp.int32(c))), expected[c], **TOL["roundings_near_zero"]
        )


def test_values_at_known_steps():
    # Written from the definitions, independent of optax.
    s = jaxnn.piecewise_constant_schedule(1.0, {10: 0.1, 20: 0.5})
    assert [float(s(jnp.int32(c))) for c in (9, 10, 19, 20)] == pytest.approx(
        [1.0, 0.1, 0.1, 0.05]
    )
    w = jaxnn.warmup_cosine_decay_schedule(0.0, 1.0, 10, 110, end_value=0.0)
    np.testing.assert_allclose(
        [float(w(jnp.int32(c))) for c in (0, 5, 10, 60, 110, 500)],
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.0],
        # Errors relative to the peak value 1.0, also where the schedule is 0.
        atol=TOL["roundings"]["rtol"] * 1.0,
    )
    e = jaxnn.exponential_decay(2.0, 10, 0.5)
    np.testing.assert_allclose(float(e(jnp.int32(20))), 0.5, **TOL["roundings"])


BAD = [
    (jaxnn.exponential_decay, dict(init_value=1.0, transition_steps=0, decay_rate=0.5)),
    (
        jaxnn.exponential_decay,
        dict(init_value=1.0, transition_steps=10, decay_rate=0.0),
    ),
    (
        jaxnn.exponential_decay,
        dict(init_value=1.0, transition_steps=10, decay_rate=0.5, transition_begin=-1),
    ),
    (jaxnn.cosine_decay_schedule, dict(init_value=1.0, decay_steps=0)),
    (
        jaxnn.warmup_cosine_decay_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=10, decay_steps=10),
    ),
    (
        jaxnn.warmup_cosine_decay_schedule,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=-1, decay_steps=10),
    ),
    (
        jaxnn.piecewise_constant_schedule,
        dict(init_value=1.0, boundaries_and_scales={5: -1.0}),
    ),
]


@pytest.mark.parametrize(("factory", "kwargs"), BAD)
def test_bad_arguments_raise(factory, kwargs):
    with pytest.raises(ValueError):
        factory(**kwargs)


def test_bad_argument_is_named():
    with pytest.raises(ValueError, match="decay_steps"):
        jaxnn.cosine_decay_schedule(1.0, 0)
    with pytest.raises(ValueError, match="decay_rate"):
        jaxnn.exponential_decay(1.0, 10, -0.5)
    with pytest.raises(TypeError, match="transition_steps"):
        jaxnn.exponential_decay(1.0, 10.5, 0.5)
