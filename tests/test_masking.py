"""masked: what a mask is, optax's tree utilities, mask_compatible_extra_args.

The step-by-step comparison of `masked` with `optax.masked` is in
tests/test_transforms.py, and callable pytree masks (equinox Modules) for every
mask consumer in tests/test_optax_findings.py; this module checks the rules of the
mask mechanism itself against optax 0.2.8:

- a mask is a function only if it is callable and every leaf of it is callable;
- a tree without leaves (optax.tree.map_params's placeholder) reaches the inner
  transform without the mask being consulted;
- with `mask_compatible_extra_args`, extra arguments shaped like the updates are
  masked like them.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests.helpers import assert_trees_close


def make_params():
    rng = np.random.default_rng(0)
    return {
        "dense": {
            "w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(4,)), jnp.float32),
        },
        "conv": jnp.asarray(rng.normal(size=(2, 2, 1, 3)), jnp.float32),
    }


def grads_like(params, k=0):
    return jax.tree.map(lambda p: jnp.sin(3 * p + k) + 0.1, params)


def ndim_at_least(params, n):
    return jax.tree.map(lambda x: x.ndim >= n, params)


def both_masked(mask, **kw):
    return (
        jaxnn.masked(jaxnn.adam(0.1), mask, **kw),
        optax.masked(optax.adam(0.1), mask, **kw),
    )


def assert_same_steps(tx_j, tx_o, params, steps=2, **extra):
    s_j, s_o = tx_j.init(params), tx_o.init(params)
    for k in range(steps):
        g = grads_like(params, k)
        u_j, s_j = tx_j.update(g, s_j, params, **extra)
        u_o, s_o = tx_o.update(g, s_o, params, **extra)
        assert_trees_close(u_j, u_o)
    return u_j


# ------------------------------------------------------------ what a mask is


class Select(eqx.Module):
    """A callable equinox Module used as a mask tree (bools where arrays were)."""

    dense: dict
    conv: bool

    def __call__(self, x):
        return x


MASKS = {
    "function": lambda p: ndim_at_least(p, 2),
    "partial": functools.partial(ndim_at_least, n=2),
    "tree": {"dense": {"w": True, "b": False}, "conv": True},
    "prefix_tree": {"dense": False, "conv": True},
    "callable_module": Select(dense={"w": True, "b": False}, conv=True),
    "callable_module_prefix": Select(dense=False, conv=True),
}


@pytest.mark.parametrize("kind", list(MASKS))
def test_functions_and_callable_pytrees_as_optax(kind):
    """Functions (partial included) are called; callable pytrees are mask trees."""
    mask = MASKS[kind]
    params = make_params()
    if isinstance(mask, Select):
        # A Module is a mask for params of the same Module type.
        params = Select(dense=params["dense"], conv=params["conv"])
    assert_same_steps(*both_masked(mask), params)


def test_a_dict_of_functions_is_a_tree_and_fails_as_a_mask():
    """Leaves that are functions make no mask: a TypeError naming the mask leaf
    (optax calls such a dict and fails too, with 'dict' object is not callable)."""
    params = make_params()
    mask = jax.tree.map(lambda _: lambda p: p, params)
    with pytest.raises(TypeError, match="mask leaf"):
        jaxnn.masked(jaxnn.adam(0.1), mask).init(params)
    with pytest.raises(TypeError):
        optax.masked(optax.adam(0.1), mask).init(params)


# --------------------------------------------------- optax.tree.map_params


def _tags(params):
    leaves = jax.tree.leaves_with_path(params)
    return jax.tree.unflatten(
        jax.tree.structure(params), [jax.tree_util.keystr(p) for p, _ in leaves]
    )


def mapped_leaves(tx, params):
    """The leaves of optax.tree.map_params(tx.init, tag, state): tags or '-'."""
    state = tx.init(params)
    is_masked = lambda v: isinstance(v, jaxnn.MaskedNode | optax.MaskedNode)  # noqa: E731
    mapped = optax.tree.map_params(
        tx.init,
        lambda p, tag: p if is_masked(p) else tag,
        state,
        _tags(params),
        transform_non_params=lambda v: jax.tree.map(lambda _: "-", v),
        is_leaf=is_masked,
    )
    assert jax.tree.structure(mapped) == jax.tree.structure(state)
    return jax.tree.leaves(mapped)


def strict_mask(params):
    """A mask function that indexes the params: it cannot read a placeholder."""
    return {"dense": {"w": True, "b": False}, "conv": params["conv"].ndim > 1}


@pytest.mark.parametrize("mask", [strict_mask, MASKS["tree"]], ids=["fn", "tree"])
def test_map_params_over_masked_state_as_optax(mask):
    params = make_params()
    tx_j, tx_o = both_masked(mask)
    got, expected = mapped_leaves(tx_j, params), mapped_leaves(tx_o, params)
    assert got == expected
    assert "['dense']['w']" in got and "['dense']['b']" not in got


def test_leafless_params_reach_the_inner_transform_as_optax():
    """An empty tree has nothing to select: init and update agree with optax."""
    for params in ({}, {"a": {}}):
        tx_j, tx_o = both_masked(lambda p: p)
        s_j, s_o = tx_j.init(params), tx_o.init(params)
        assert jax.tree.leaves(s_j) and len(jax.tree.leaves(s_j)) == len(
            jax.tree.leaves(s_o)
        )
        u_j, _ = tx_j.update(params, s_j, params)
        assert u_j == params


# ------------------------------------------------- mask_compatible_extra_args


def _offset_update(updates, state, params=None, *, offsets=None, factor=1.0, **kw):
    """Adds factor · (sum of the leaves of `offsets`) to every update leaf.

    The sum shows which leaves of `offsets` the transform received, so masked
    and unmasked extra arguments give different results.
    """
    del params, kw
    total = sum(jnp.sum(x) for x in jax.tree.leaves(offsets))
    return jax.tree.map(lambda u: u + factor * total, updates), state


OFFSET = optax.GradientTransformationExtraArgs(
    lambda params: optax.EmptyState(), _offset_update
)


@pytest.mark.parametrize("compatible", [True, False])
def test_mask_compatible_extra_args_as_optax(compatible):
    params = make_params()
    offsets = jax.tree.map(lambda p: jnp.full(p.shape, 0.5, p.dtype), params)
    mask = MASKS["tree"]
    kw = dict(mask_compatible_extra_args=compatible)
    tx_j = jaxnn.masked(OFFSET, mask, **kw)
    tx_o = optax.masked(OFFSET, mask, **kw)
    # `offsets` has the params' structure (masked when compatible); `factor`
    # does not (always passed as it is).
    u = assert_same_steps(tx_j, tx_o, params, offsets=offsets, factor=jnp.float32(2.0))
    selected = 12 + 12 if compatible else 12 + 4 + 12
    g = grads_like(params, 1)
    np.testing.assert_allclose(u["dense"]["w"], g["dense"]["w"] + 2 * 0.5 * selected)
    np.testing.assert_allclose(u["dense"]["b"], g["dense"]["b"])


def test_mask_compatible_extra_args_under_jit():
    params = make_params()
    offsets = jax.tree.map(jnp.ones_like, params)
    tx = jaxnn.masked(OFFSET, MASKS["tree"], mask_compatible_extra_args=True)

    @jax.jit
    def step(g, s, p, offsets):
        return tx.update(g, s, p, offsets=offsets)

    u, _ = step(grads_like(params), tx.init(params), params, offsets)
    np.testing.assert_allclose(u["conv"], grads_like(params)["conv"] + 24.0)


def test_gradient_report_trainable_may_be_a_callable_pytree():
    """`trainable` follows the same rule: an equinox Module of bools is a tree."""

    class Affine(eqx.Module):
        w: object
        b: object

        def __call__(self, x):
            return x @ self.w + self.b

    grads = Affine(w=jnp.asarray([[0.0, 1.0], [0.0, 2.0]]), b=jnp.asarray([0.0, 0.0]))
    report = jaxnn.gradient_report(grads, trainable=Affine(w=True, b=False))
    # Counted by hand: "w" has two zeros among four trainable entries; "b" is frozen.
    assert int(report.num_zero) == 2
    np.testing.assert_allclose(report.zero_fraction, 0.5)
