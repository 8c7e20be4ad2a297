"""The findings of issue 11 (jaxnn as an optax drop-in), one test per finding.

Each test names its finding in its docstring and compares with optax (or equinox,
or a float64 formula). The signature findings are in tests/test_optax_signatures.py.
Every transform is an entry of the "optax_findings" suite of tests/registry.py,
which pairs each jaxnn transform with its optax twin. The multi-device and
float64 checks run in subprocesses (tests/_optax_sharding_check.py,
tests/_optax_x64_check.py), since both need settings made before jax is imported.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests import registry
from tests.helpers import TOL, assert_trees_close
from tests.registry import grads_like

ROOT = Path(__file__).resolve().parent.parent


def make_params(dtype=jnp.float32):
    """Leaves of distinct shapes (a state leaf's shape tells which param it follows)."""
    rng = np.random.default_rng(0)

    def arr(*shape):
        x = rng.normal(size=shape) * 0.5
        if jnp.issubdtype(dtype, jnp.complexfloating):
            x = x + 1j * rng.normal(size=shape) * 0.5
        return jnp.asarray(x, dtype)

    return {"dense": {"w": arr(3, 4), "b": arr(4)}, "conv": arr(2, 2, 1, 3)}


# ------------------------------------------------- callable pytree masks (913)


class Affine(eqx.Module):
    """An equinox layer: a pytree node with a __call__, as equinox users' models."""

    w: jax.Array
    b: jax.Array

    def __call__(self, x):
        return x @ self.w + self.b


@jax.tree_util.register_pytree_node_class
class RegisteredAffine:
    """A plain registered pytree class with a __call__."""

    def __init__(self, w, b):
        self.w, self.b = w, b

    def __call__(self, x):
        return x @ self.w + self.b

    def tree_flatten(self):
        return (self.w, self.b), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        del aux
        return cls(*children)


def _callable_pytree_case(kind):
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(2,)), jnp.float32)
    if kind == "equinox_mlp":
        model = eqx.nn.MLP(3, 2, width_size=4, depth=1, key=jax.random.key(0))
        params = eqx.filter(model, eqx.is_inexact_array)
        # How equinox users build masks: a tree.map over the filtered model, which
        # is again an MLP (callable), with bools where the arrays were.
        mask = jax.tree.map(lambda x: x.ndim >= 2, params)
    elif kind == "equinox_module":
        params = Affine(w, b)
        mask = Affine(True, False)
    else:
        params = RegisteredAffine(w, b)
        mask = RegisteredAffine(True, False)
    assert callable(mask)
    return params, mask


MASK_CONSUMERS = {
    "masked": (
        lambda m: jaxnn.masked(jaxnn.adam(0.1), m),
        lambda m: optax.masked(optax.adam(0.1), m),
    ),
    "add_decayed_weights": (
        lambda m: jaxnn.add_decayed_weights(0.3, mask=m),
        lambda m: optax.add_decayed_weights(0.3, mask=m),
    ),
    "adamw": (
        lambda m: jaxnn.adamw(0.1, weight_decay=0.3, mask=m),
        lambda m: optax.adamw(0.1, weight_decay=0.3, mask=m),
    ),
    "add_l1": (lambda m: jaxnn.add_l1(0.3, mask=m), None),
}


@pytest.mark.parametrize("consumer", [*MASK_CONSUMERS, "l1_penalty", "l2_penalty"])
@pytest.mark.parametrize("kind", ["equinox_mlp", "equinox_module", "registered_pytree"])
def test_callable_pytree_mask_is_a_mask_tree(kind, consumer):
    """Finding: a callable pytree mask (equinox Module, registered pytree with
    __call__) is treated as a mask function and crashes; optax treats it as a mask
    tree (optax issue 913)."""
    params, mask = _callable_pytree_case(kind)
    grads = grads_like(params)
    selected = jax.tree.leaves(
        jax.tree.map(lambda m, p: p if m else None, mask, params)
    )
    if consumer in ("l1_penalty", "l2_penalty"):
        fn = getattr(jaxnn, consumer)
        term = np.abs if consumer == "l1_penalty" else np.square
        expected = 0.3 * sum(float(np.sum(term(np.asarray(p)))) for p in selected)
        np.testing.assert_allclose(float(fn(params, 0.3, mask=mask)), expected, 1e-6)
        return
    make_j, make_o = MASK_CONSUMERS[consumer]
    tx_j = make_j(mask)
    if make_o is None:  # add_l1: g + 0.3·sign(w) on the selected leaves
        expected = jax.tree.map(
            lambda m, g, p: g + 0.3 * jnp.sign(p) if m else g, mask, grads, params
        )
        got, _ = tx_j.update(grads, tx_j.init(params), params)
        assert_trees_close(got, expected)
        return
    tx_o = make_o(mask)
    s_j, s_o = tx_j.init(params), tx_o.init(params)
    for _ in range(2):
        u_j, s_j = tx_j.update(grads, s_j, params)
        u_o, s_o = tx_o.update(grads, s_o, params)
        assert_trees_close(u_j, u_o)


# ------------------------------------------ optax.tree utilities over states


def _tags(params):
    paths = jax.tree.leaves_with_path(params)
    return jax.tree.unflatten(
        jax.tree.structure(params), [jax.tree_util.keystr(p) for p, _ in paths]
    )


@pytest.mark.parametrize("name", registry.names("optax_findings"))
def test_optax_tree_map_params_over_every_state(name):
    """Finding: optax.tree.map_params(tx.init, fn, state) fails on jaxnn states
    (masked's init rejects optax's params placeholder). It is how users annotate
    optimizer-state shardings from the params' (optax's masking test)."""
    params = make_params()
    tx = registry.BY_NAME[name].make(params)
    state = tx.init(params)
    tags = _tags(params)
    shapes = {
        t: p.shape
        for t, p in zip(jax.tree.leaves(tags), jax.tree.leaves(params), strict=True)
    }
    is_masked = lambda v: isinstance(v, jaxnn.MaskedNode)  # noqa: E731
    mapped = optax.tree.map_params(
        tx.init,
        lambda p, tag: p if is_masked(p) else tag,
        state,
        tags,
        transform_non_params=lambda v: jax.tree.map(lambda _: "-", v),
        is_leaf=is_masked,
    )
    state_leaves, state_def = jax.tree.flatten(state)
    mapped_leaves, mapped_def = jax.tree.flatten(mapped)
    assert mapped_def == state_def, (mapped_def, state_def)
    for x, tag in zip(state_leaves, mapped_leaves, strict=True):
        if tag == "-":
            # Not a copy of the params: it must not be shaped like one. A scalar,
            # or clip_by_layer_norm's (L,) vector of per-leaf norms (optax's own
            # states have such non-params vectors too, e.g. scale_by_lbfgs's).
            per_leaf = (len(shapes),) if "clip_by_layer_norm" in name else ()
            assert x.shape in ((), per_leaf), (name, x.shape)
            assert x.shape not in shapes.values(), (name, x.shape)
        else:
            assert x.shape == shapes[tag], (name, tag, x.shape, shapes[tag])


def _named_fields(tree):
    """{field name: number of occurrences} over every NamedTuple in `tree`."""
    counts = {}

    def visit(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for f in node._fields:
                counts[f] = counts.get(f, 0) + 1
        if isinstance(node, tuple | list):
            for c in node:
                visit(c)
        elif isinstance(node, dict):
            for c in node.values():
                visit(c)

    visit(tree)
    return counts


@pytest.mark.parametrize("name", registry.names("optax_findings"))
def test_optax_tree_get_and_set_over_every_state(name):
    """Finding (item 3 of the issue): optax.tree.get and optax.tree.set work over
    the state of every jaxnn transform, and the state they return still updates."""
    params = make_params()
    tx = registry.BY_NAME[name].make(params)
    state = tx.init(params)
    grads = grads_like(params)
    for field, n in _named_fields(state).items():
        found = optax.tree.get_all_with_path(state, field)
        assert len(found) == n, (field, n, found)
        if n > 1:
            with pytest.raises(KeyError):
                optax.tree.get(state, field)
            continue
        value = optax.tree.get(state, field)
        assert jax.tree.structure(value) == jax.tree.structure(found[0][1])
        new_value = jax.tree.map(lambda x: x + jnp.ones((), x.dtype), value)
        new_state = optax.tree.set(state, **{field: new_value})
        assert jax.tree.structure(new_state) == jax.tree.structure(state), field
        assert_trees_close(optax.tree.get(new_state, field), new_value)
        jax.eval_shape(tx.update, grads, new_state, params)  # still a valid state


# ---------------------------------------------------------------- donation


def _shared_buffers(tree):
    """Paths of leaves that are the same device buffer as an earlier leaf."""
    seen, shared = {}, []
    for path, x in jax.tree.leaves_with_path(tree):
        ptr = x.unsafe_buffer_pointer()
        if ptr in seen:
            shared.append(f"{jax.tree_util.keystr(path)} is {seen[ptr]}")
        else:
            seen[ptr] = jax.tree_util.keystr(path)
    return shared


def test_donate_freshly_initialized_state_of_every_transform():
    """Finding: jit(step, donate_argnums=...) on a freshly initialized state fails
    ("Attempt to donate the same buffer twice") when init puts one array in two
    fields (skip_nonfinite); every jaxnn state must be donatable.

    All transforms are stepped by one donated, jitted program (one compilation);
    the state leaves that share a buffer are listed too, to name the culprits.
    """
    params = make_params()
    txs = {e.name: e.make(params) for e in registry.entries("optax_findings")}

    @functools.partial(jax.jit, donate_argnums=(0,))
    def step(carries):
        out = {}
        for name, (p, s) in carries.items():
            updates, s = txs[name].update(grads_like(p), s, p)
            out[name] = (jaxnn.apply_updates(p, updates), s)
        return out

    carries = {
        name: (jax.tree.map(jnp.copy, params), tx.init(params))
        for name, tx in txs.items()
    }
    shared = {
        name: found for name, c in carries.items() if (found := _shared_buffers(c))
    }
    try:
        for _ in range(2):
            carries = step(carries)
        jax.block_until_ready(carries)
        error = None
    except Exception as e:
        error = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    if error or shared:
        pytest.fail(
            f"donated step: {error or 'ran'}\nstate leaves sharing a buffer: {shared}",
            pytrace=False,
        )


# ----------------------------------------------------------- complex params

# Where optax's result for complex params is not defined, jaxnn must raise a clear
# error instead (TypeError or ValueError naming "complex").
COMPLEX_REJECTED = {
    # Complex numbers have no order: optax.clip raises jnp.clip's ValueError.
    "clip_by_value": "no order on complex numbers",
    "clip_by_value+adam": "no order on complex numbers",
    # optax has no add_l1, and sign(w) is not the subgradient of |w| for
    # complex w under JAX's gradient convention: rejected.
    "add_l1": "no optax twin; L1 subgradient of a complex weight undefined",
    # A real moment dtype cannot hold a complex moment: jaxnn raises (a cast to
    # float32 would drop the imaginary part).
    "adam_f32_moments": "mu_dtype/nu_dtype float32 with complex params",
}


@pytest.mark.parametrize("name", registry.names("optax_findings"))
def test_complex_params_as_optax_or_clear_error(name):
    """Finding: complex params silently lose their imaginary part in every
    transform (sgd gives -0.1+0j where optax gives -0.1-0.1j). Each transform must
    give optax's results (optax handles complex via conj/abs²) or raise."""
    params = make_params(jnp.complex64)
    grads = grads_like(params)
    entry = registry.BY_NAME[name]
    if name in COMPLEX_REJECTED:
        with pytest.raises((TypeError, ValueError), match=r"[Cc]omplex"):
            tx = entry.make(params)
            tx.update(grads, tx.init(params), params)
        return
    tx_j, tx_o = entry.make(params), entry.twin(params)
    p_j, p_o = params, params
    s_j, s_o = tx_j.init(p_j), tx_o.init(p_o)
    for i in range(3):
        u_j, s_j = tx_j.update(grads_like(p_j), s_j, p_j)
        u_o, s_o = tx_o.update(grads_like(p_o), s_o, p_o)
        p_j, p_o = jaxnn.apply_updates(p_j, u_j), optax.apply_updates(p_o, u_o)
        for a, e in zip(jax.tree.leaves(p_j), jax.tree.leaves(p_o), strict=True):
            assert a.dtype == e.dtype == jnp.complex64, (a.dtype, e.dtype)
            np.testing.assert_allclose(
                np.asarray(a),
                np.asarray(e),
                **TOL["trajectory"],
                err_msg=f"step {i + 1}",
            )


# ------------------------------------------------------ subprocess checks


@functools.cache
def _subprocess_results(script):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "tests" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout
    assert proc.returncode == 0 and "DONE" in out, out[-3000:] + proc.stderr[-3000:]
    return [
        json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")
    ]


@pytest.mark.parametrize("mesh", ["auto", "explicit"])
def test_shardings_kept_on_auto_and_explicit_meshes(mesh):
    """Finding: on an Auto-axes mesh clip_by_global_norm/clip_by_value move a
    replicated param to P('model') (the small-leaf grouping in global_norm) and
    adaptive_grad_clip moves a P('data', None) param, with their Adam moments;
    on an Explicit-axes mesh adaptive_grad_clip fails at a concatenate. optax keeps
    the user's shardings (8 CPU devices, tests/_optax_sharding_check.py)."""
    results = [r for r in _subprocess_results("_optax_sharding_check.py")]
    optax_by_key = {
        (r["mesh"], r["layout"], r["name"]): r["problems"]
        for r in results
        if r["lib"] == "optax"
    }
    ours = [r for r in results if r["lib"] == "jaxnn" and r["mesh"] == mesh]
    # Every entry of the suite ran (or failed to trace, which is reported below).
    assert {r["name"] for r in ours} == set(registry.names("optax_sharding")), ours
    report = []
    for r in ours:
        if not r["problems"]:
            continue
        key = (r["mesh"], r["layout"], r["name"])
        ref = optax_by_key.get(key)
        ref = (
            "optax not run here"
            if ref is None
            else "optax keeps them"
            if not ref
            else f"optax fails too: {ref[0][:150]}"
        )
        report.append(f"{r['layout']} {r['name']} ({ref}):")
        report += [f"    {p[:300]}" for p in r["problems"][:4]]
    if report:
        pytest.fail("\n".join(report), pytrace=False)


@pytest.mark.parametrize("kind", ["adam_family", "vs_optax", "schedule"])
def test_float64_results_at_float64_accuracy(kind):
    """Finding: with jax_enable_x64 the Adam family is ~5e-6 off the float64
    formula (bias correction computed in float32; optax 1e-15) and the cosine,
    warmup-cosine and exponential schedules return float32 (1e-7 off). Every
    float64 result must be float64-accurate (tests/_optax_x64_check.py)."""
    results = [
        r for r in _subprocess_results("_optax_x64_check.py") if r["kind"] == kind
    ]
    assert results
    if kind == "adam_family":
        # The NumPy formula is right: optax meets it.
        for r in results:
            if r["lib"] == "optax":
                assert r["err"] < 1e-12, r
    bad = [
        f"{r['name']}: relative error {r['err']:.3g}"
        + (f", dtypes {r['dtypes']}" if "dtypes" in r else "")
        for r in results
        if r["lib"] == "jaxnn"
        and not (r["err"] < 1e-12 and r.get("dtypes", ["float64"]) == ["float64"])
    ]
    if bad:
        pytest.fail("\n".join(bad), pytrace=False)
