"""Shared test configuration: strict rank promotion, eager/jit fixture.

Warnings are errors (pyproject's filterwarnings). Strict *dtype* promotion cannot be
global because optax itself mixes Python floats with int32 counts; jaxnn code is run
under `jax.numpy_dtype_promotion("strict")` in `tests/test_strict_dtypes.py` instead.
"""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(params=["eager", "jit"])
def maybe_jit(request):
    """Returns a function wrapper: identity in the eager run, `jax.jit` in the other."""
    if request.param == "jit":
        return jax.jit
    return lambda f, **kwargs: f
