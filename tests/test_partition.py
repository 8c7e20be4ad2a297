"""Parameter groups: `partition` against optax.partition, and `label_by_path`.

The reference is optax.partition with optax's own optimizers over several steps:
same updates, same state leaves (in the same order, so optax's tree utilities and
checkpoints read jaxnn's state). Labels are given three ways: a pytree, a
callable, and `label_by_path` rules; the paths `label_by_path` sees are written
out by hand from the documented format ("0/dense/w"), not from our own output.
"""

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests.helpers import TOL, run_on_8_cpu_devices, tol

ROOT = Path(__file__).resolve().parents[1]
STEPS = 5


def model_params(dtype=jnp.float32):
    """A nested model: a list of dense layers, a BatchNorm (NamedTuple), a head."""
    key = jax.random.key(0)
    k0, k1, k2 = jax.random.split(key, 3)
    params = {
        "encoder": [jaxnn.dense_init(k0, 6, 5), jaxnn.dense_init(k1, 5, 4)],
        "bn": jaxnn.batchnorm_init(4)[0],
        "head": jaxnn.dense_init(k2, 4, 3),
    }
    return jax.tree.map(lambda x: x.astype(dtype), params)


# The kernels are the 2-D "w" leaves; everything else (biases, BN scale/bias) rest.
KERNEL_LABELS = {
    "encoder": [{"w": "kernel", "b": "rest"}, {"w": "kernel", "b": "rest"}],
    "bn": jaxnn.BatchNormParams(scale="rest", bias="rest"),
    "head": {"w": "kernel", "b": "rest"},
}


def by_ndim(params):
    return jax.tree.map(lambda x: "kernel" if x.ndim == 2 else "rest", params)


LABELS = {
    "pytree": KERNEL_LABELS,
    "callable": by_ndim,
    "label_by_path": jaxnn.label_by_path([(r"(^|/)w$", "kernel")], "rest"),
}


def random_grads(params, step):
    rng = np.random.default_rng(step)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params
    )


def trajectory(tx, params, apply, steps=STEPS, update=None):
    """Params and (updates, state) after each of `steps` updates of `tx`."""
    state = tx.init(params)
    update = update or tx.update
    out = []
    for i in range(steps):
        updates, state = update(random_grads(params, i), state, params)
        params = apply(params, updates)
        out.append((updates, state))
    return params, out


def jaxnn_pair(labels):
    return jaxnn.partition(
        {
            "kernel": jaxnn.adamw(1e-2, weight_decay=0.1),
            "rest": jaxnn.sgd(0.1, momentum=0.9),
        },
        labels,
    )


def optax_pair(labels):
    return optax.partition(
        {
            "kernel": optax.adamw(1e-2, weight_decay=0.1),
            "rest": optax.sgd(0.1, momentum=0.9),
        },
        labels,
    )


def assert_leaves_close(actual, expected, dtype=jnp.float32):
    a, e = jax.tree.leaves(actual), jax.tree.leaves(expected)
    assert len(a) == len(e)
    for x, y in zip(a, e, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype, (x, y)
        np.testing.assert_allclose(
            np.asarray(x, np.float64), np.asarray(y, np.float64), **tol(dtype)
        )


# -------------------------------------------------------------- against optax


@pytest.mark.parametrize("how", list(LABELS))
def test_matches_optax_partition_over_several_steps(how, maybe_jit):
    params = model_params()
    tx, ref = jaxnn_pair(LABELS[how]), optax_pair(LABELS[how])
    p, traj = trajectory(tx, params, jaxnn.apply_updates, update=maybe_jit(tx.update))
    p_ref, traj_ref = trajectory(ref, params, optax.apply_updates)
    for (u, s), (u_ref, s_ref) in zip(traj, traj_ref, strict=True):
        assert jax.tree.structure(u) == jax.tree.structure(u_ref)
        assert_leaves_close(u, u_ref)
        assert_leaves_close(s, s_ref)
    assert_leaves_close(p, p_ref)
    assert list(s.inner_states) == list(s_ref.inner_states)


def test_labels_from_rules_equal_the_hand_written_labels():
    assert LABELS["label_by_path"](model_params()) == KERNEL_LABELS
    assert by_ndim(model_params()) == KERNEL_LABELS


def test_each_transform_changes_only_its_own_leaves():
    params = model_params()
    grads = random_grads(params, 0)
    tx = jaxnn.partition(
        {"kernel": jaxnn.scale(2.0), "rest": jaxnn.scale(-3.0)}, KERNEL_LABELS
    )
    updates, _ = tx.update(grads, tx.init(params), params)
    factor = jax.tree.map({"kernel": 2.0, "rest": -3.0}.get, KERNEL_LABELS)
    expected = jax.tree.map(lambda g, f: np.asarray(g) * f, grads, factor)
    assert_leaves_close(updates, expected)


def test_state_holds_entries_only_for_each_labels_leaves():
    params = model_params()
    state = jaxnn_pair(KERNEL_LABELS).init(params)
    adam_state = state.inner_states["kernel"].inner_state[0]
    kernels = [
        params["encoder"][0]["w"],
        params["encoder"][1]["w"],
        params["head"]["w"],
    ]
    assert [x.shape for x in jax.tree.leaves(adam_state.mu)] == [
        k.shape for k in kernels
    ]
    # optax's MaskedNode and jaxnn's are both empty: the same leaves.
    ref = optax_pair(KERNEL_LABELS).init(params)
    assert [x.shape for x in jax.tree.leaves(state)] == [
        x.shape for x in jax.tree.leaves(ref)
    ]


def test_label_prefix_tree_matches_optax():
    params = model_params()
    prefix = {"encoder": "pretrained", "bn": "new", "head": "new"}
    tx = jaxnn.partition(
        {"pretrained": jaxnn.adam(1e-4), "new": jaxnn.adam(1e-2)}, prefix
    )
    ref = optax.partition(
        {"pretrained": optax.adam(1e-4), "new": optax.adam(1e-2)}, prefix
    )
    p, traj = trajectory(tx, params, jaxnn.apply_updates)
    p_ref, traj_ref = trajectory(ref, params, optax.apply_updates)
    for (u, s), (u_ref, s_ref) in zip(traj, traj_ref, strict=True):
        assert_leaves_close(u, u_ref)
        assert_leaves_close(s, s_ref)
    assert_leaves_close(p, p_ref)


def test_optax_tree_utils_read_the_state():
    params = model_params()
    tx = jaxnn_pair(KERNEL_LABELS)
    state = tx.init(params)
    for i in range(2):
        _, state = tx.update(random_grads(params, i), state, params)
    # adamw's count: one int32 scalar, found through the dict and MaskedState.
    counts = optax.tree_utils.tree_get_all_with_path(state, "count")
    assert [int(c) for _, c in counts] == [2]


def test_inside_optax_chain_and_with_optax_inner_transforms():
    params = model_params()
    mixed = optax.chain(
        optax.clip_by_global_norm(1.0),
        jaxnn.partition(
            {"kernel": optax.adamw(1e-2, weight_decay=0.1), "rest": jaxnn.sgd(0.1)},
            by_ndim,
        ),
    )
    ref = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.partition(
            {"kernel": optax.adamw(1e-2, weight_decay=0.1), "rest": optax.sgd(0.1)},
            by_ndim,
        ),
    )
    p, _ = trajectory(mixed, params, optax.apply_updates)
    p_ref, _ = trajectory(ref, params, optax.apply_updates)
    assert_leaves_close(p, p_ref)


def test_extra_args_reach_the_inner_transforms():
    seen = []

    def update(updates, state, params=None, **extra_args):
        seen.append(extra_args)
        return updates, state

    spy = jaxnn.GradientTransformation(lambda p: jaxnn.EmptyState(), update)
    tx = jaxnn.partition({"kernel": spy, "rest": jaxnn.identity()}, by_ndim)
    params = model_params()
    tx.update(params, tx.init(params), params, value=jnp.float32(3.0))
    assert seen == [{"value": jnp.float32(3.0)}]


def test_bool_labels_partition():
    params = model_params()
    mask = jaxnn.label_by_path([(r"/w$", True)], False)
    tx = jaxnn.partition({True: jaxnn.adam(1e-2), False: jaxnn.sgd(0.5)}, mask)
    ref = optax.partition({True: optax.adam(1e-2), False: optax.sgd(0.5)}, mask)
    p, _ = trajectory(tx, params, jaxnn.apply_updates)
    p_ref, _ = trajectory(ref, params, optax.apply_updates)
    assert_leaves_close(p, p_ref)


# ------------------------------------------------------- jit, dtypes, abstract


def test_one_compilation_under_jit():
    params = model_params()
    tx = jaxnn_pair(LABELS["label_by_path"])
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(None)
        updates, state = tx.update(grads, state, params)
        return jaxnn.apply_updates(params, updates), state

    state = tx.init(params)
    for i in range(3):
        params, state = step(params, state, random_grads(params, i))
    assert len(traces) == 1


def test_bfloat16_params_match_optax_and_keep_dtype():
    params = model_params(jnp.bfloat16)
    tx, ref = jaxnn_pair(by_ndim), optax_pair(by_ndim)
    p, traj = trajectory(tx, params, jaxnn.apply_updates)
    p_ref, _ = trajectory(ref, params, optax.apply_updates)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(p))
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(traj[-1][0]))
    assert_leaves_close(p, p_ref, jnp.bfloat16)


def test_init_on_shape_dtype_structs():
    params = model_params()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    tx = jaxnn_pair(LABELS["label_by_path"])
    shapes = jax.eval_shape(tx.init, abstract)
    assert jax.tree.structure(shapes) == jax.tree.structure(tx.init(params))


# ----------------------------------------------------------------- bad inputs


def test_label_without_transform_names_label_and_leaf_paths():
    params = model_params()
    tx = jaxnn.partition({"kernel": jaxnn.sgd(0.1)}, LABELS["label_by_path"])
    with pytest.raises(ValueError, match="label 'rest'") as e:
        tx.init(params)
    for path in ("encoder/0/b", "bn/scale", "bn/bias", "head/b"):
        assert repr(path) in str(e.value)
    assert "encoder/0/w" not in str(e.value)
    # Also in update, where a callable's labels are recomputed from the updates.
    ok = jaxnn_pair(KERNEL_LABELS)
    with pytest.raises(ValueError, match=r"'rest'.*'head/b'"):
        tx.update(params, ok.init(params), params)


def test_transform_whose_label_no_leaf_has_names_it():
    params = model_params()
    tx = jaxnn.partition(
        {"kernel": jaxnn.sgd(0.1), "rest": jaxnn.sgd(0.1), "bais": jaxnn.sgd(1.0)},
        KERNEL_LABELS,
    )
    with pytest.raises(ValueError, match=r"\['bais'\]") as e:
        tx.init(params)
    assert "'head/w'" in str(e.value) and "'head/b'" in str(e.value)


def test_labels_that_do_not_match_the_params_structure():
    params = model_params()
    tx = jaxnn.partition({"a": jaxnn.sgd(0.1)}, {"encoder": "a", "head": "a"})
    with pytest.raises(ValueError, match="does not match"):
        tx.init(params)


@pytest.mark.parametrize(
    "transforms, match",
    [
        ([("a", jaxnn.sgd(0.1))], "transforms must be a mapping"),
        ({"a": jaxnn.sgd}, r"transforms\['a'\] must be a gradient transformation"),
        ({"a": 0.1}, r"transforms\['a'\]"),
    ],
)
def test_bad_transforms_are_type_errors(transforms, match):
    with pytest.raises(TypeError, match=match):
        jaxnn.partition(transforms, "a")


@pytest.mark.parametrize("label", [{"a"}, np.array(["a"])])
def test_unhashable_label_is_a_type_error_naming_the_leaf(label):
    params = {"w": jnp.zeros(2), "b": jnp.zeros(2)}
    tx = jaxnn.partition({"a": jaxnn.sgd(0.1)}, lambda p: {"w": "a", "b": label})
    with pytest.raises(TypeError, match="param_labels at 'b' must be a hashable"):
        tx.init(params)


def test_state_from_another_partition_is_rejected():
    params = model_params()
    other = jaxnn.partition({"x": jaxnn.sgd(0.1)}, "x").init(params)
    tx = jaxnn_pair(KERNEL_LABELS)
    with pytest.raises(ValueError, match="PartitionState with the labels"):
        tx.update(params, other, params)
    with pytest.raises(ValueError, match="PartitionState"):
        tx.update(params, (), params)


# ----------------------------------------------------------------- label_by_path


class Pair(NamedTuple):
    first: jax.Array
    second: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Block:
    kernel: jax.Array
    norm: Pair


def test_paths_of_dicts_sequences_namedtuples_and_dataclasses():
    z = jnp.zeros(1)
    params = {
        "layers": [{"w": z, "b": z}, (z, z)],
        "block_0": Block(kernel=z, norm=Pair(z, z)),
        "ints": {7: z},
    }
    expected_paths = {
        "layers/0/w",
        "layers/0/b",
        "layers/1/0",
        "layers/1/1",
        "block_0/kernel",
        "block_0/norm/first",
        "block_0/norm/second",
        "ints/7",
    }
    # A rule for every expected path, labelled by the path itself: each leaf's
    # label is then its own path, checked against the hand-written set.
    rules = [(f"^{re.escape(p)}$", p) for p in sorted(expected_paths)]
    labels = jaxnn.label_by_path(rules, "UNMATCHED")(params)
    seen = jax.tree.leaves(labels)
    assert sorted(seen) == sorted(expected_paths)
    assert labels["block_0"].norm.second == "block_0/norm/second"
    assert labels["layers"][1] == ("layers/1/0", "layers/1/1")


def test_paths_of_flax_and_equinox_modules():
    eqx = pytest.importorskip("equinox")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from flax import linen as nn

    # Only the paths matter: the modules are built abstractly (no initializers run).
    mlp = eqx.filter_eval_shape(eqx.nn.MLP, 3, 2, 4, depth=1, key=jax.random.key(0))
    labels = jaxnn.label_by_path([(r"/weight$", "w")], "other")(mlp)
    # equinox: attribute "layers" (a tuple), then Linear's "weight"/"bias".
    assert labels.layers[0].weight == "w" and labels.layers[1].bias == "other"
    flax_params = jax.eval_shape(nn.Dense(3).init, jax.random.key(0), jnp.zeros((1, 2)))
    labels = jaxnn.label_by_path([(r"^params/kernel$", "k")], "other")(flax_params)
    assert labels["params"] == {"kernel": "k", "bias": "other"}


def test_first_matching_rule_wins_with_search_semantics():
    params = {"block": {"bn": {"scale": 1.0, "bias": 1.0}, "w": 1.0}, "bias": 1.0}
    rules = [(r"bn/", "norm"), (r"bias", "bias"), (r"^block", "block")]
    labels = jaxnn.label_by_path(rules, "default")(params)
    assert labels == {
        "block": {"bn": {"scale": "norm", "bias": "norm"}, "w": "block"},
        "bias": "bias",
    }
    # A mapping is read in order; a default catches the rest.
    labels = jaxnn.label_by_path({r"^bias$": 1}, 0)(params)
    assert labels == {"block": {"bn": {"scale": 0, "bias": 0}, "w": 0}, "bias": 1}


def test_compiled_patterns_are_accepted():
    labels = jaxnn.label_by_path([(re.compile(r"W$", re.I), True)], False)(
        {"w": 1.0, "b": 1.0}
    )
    assert labels == {"w": True, "b": False}


def test_bool_labels_mask_adamw_like_optax():
    params = model_params()
    mask = jaxnn.label_by_path([(r"/w$", True)], False)
    tx = jaxnn.adamw(1e-2, weight_decay=0.5, mask=mask)
    ref = optax.adamw(1e-2, weight_decay=0.5, mask=by_ndim_bool)
    p, _ = trajectory(tx, params, jaxnn.apply_updates)
    p_ref, _ = trajectory(ref, params, optax.apply_updates)
    assert_leaves_close(p, p_ref)
    # The mask matters: decaying everything gives other biases.
    p_all, _ = trajectory(
        jaxnn.adamw(1e-2, weight_decay=0.5), params, jaxnn.apply_updates
    )
    assert not np.allclose(p_all["head"]["b"], p["head"]["b"])


def by_ndim_bool(params):
    return jax.tree.map(lambda x: x.ndim == 2, params)


def test_bool_labels_mask_masked_and_penalties():
    params = model_params()
    mask = jaxnn.label_by_path([(r"/w$", True)], False)
    grads = random_grads(params, 0)
    tx = jaxnn.masked(jaxnn.scale(0.0), mask)
    updates, _ = tx.update(grads, tx.init(params), params)
    expected = jax.tree.map(lambda g, m: g * 0 if m else g, grads, by_ndim_bool(params))
    assert_leaves_close(updates, expected)
    kernels = [
        params["encoder"][0]["w"],
        params["encoder"][1]["w"],
        params["head"]["w"],
    ]
    expected_penalty = sum(float(jnp.sum(k**2)) for k in kernels)
    np.testing.assert_allclose(
        float(jaxnn.l2_penalty(params, 1.0, mask=mask)),
        expected_penalty,
        **TOL["roundings"],
    )


@pytest.mark.parametrize(
    "rules, error, match",
    [
        ([("(unclosed", "a")], ValueError, r"rules\[0\].*'\(unclosed'"),
        ([("ok", "a"), ("[z-a]", "b")], ValueError, r"rules\[1\].*'\[z-a\]'"),
        (
            [("w", "a", "extra")],
            TypeError,
            r"rules\[0\] must be a \(regex, label\) pair",
        ),
        (["w"], TypeError, r"rules\[0\] must be a \(regex, label\) pair"),
        ([(3, "a")], TypeError, r"rules\[0\].*string regex"),
        ([("w", None)], TypeError, r"rules\[0\] label"),
        ([("w", ["a"])], TypeError, r"rules\[0\] label.*hashable"),
        ("w", TypeError, "rules must be a sequence"),
        (None, TypeError, "rules must be a sequence"),
    ],
)
def test_bad_rules_are_rejected_at_construction(rules, error, match):
    with pytest.raises(error, match=match):
        jaxnn.label_by_path(rules, "default")


def test_none_default_is_rejected():
    with pytest.raises(TypeError, match="default"):
        jaxnn.label_by_path([], None)


# ------------------------------------------------------------------ checkpoint


def _orbax():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import orbax.checkpoint as ocp
    return ocp


def savez_roundtrip(directory, tree):
    path = directory / "ckpt.npz"
    np.savez(path, *[np.asarray(x) for x in jax.tree.leaves(tree)])
    leaves, treedef = jax.tree.flatten(tree)
    with np.load(path) as data:
        loaded = [jnp.asarray(data[f"arr_{i}"]) for i in range(len(leaves))]
    return jax.tree.unflatten(treedef, loaded)


def orbax_roundtrip(directory, tree):
    ocp = _orbax()
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(directory / "ckpt", tree)
        ckptr.wait_until_finished()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
        return ckptr.restore(directory / "ckpt", abstract)


@pytest.mark.parametrize("roundtrip", [savez_roundtrip, orbax_roundtrip])
def test_resumed_training_is_bit_identical(roundtrip, tmp_path):
    params = model_params()
    tx = jaxnn_pair(LABELS["label_by_path"])

    @jax.jit
    def step(params, state, i):
        grads = jax.grad(
            lambda p: sum(jnp.sum(jnp.sin(x + i)) for x in jax.tree.leaves(p))
        )(params)
        updates, state = tx.update(grads, state, params)
        return jaxnn.apply_updates(params, updates), state

    def train(params, state, start, stop):
        for i in range(start, stop):
            params, state = step(params, state, jnp.float32(i))
        return params, state

    full = train(params, tx.init(params), 0, 6)
    half = train(params, tx.init(params), 0, 3)
    restored = roundtrip(tmp_path, half)
    assert jax.tree.structure(restored) == jax.tree.structure(half)
    resumed = train(*restored, 3, 6)
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(full), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------ 8 CPU devices

SHARDED_SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jaxnn
from tests.helpers import TOL

assert len(jax.devices()) == 8, jax.devices()
mesh = Mesh(np.array(jax.devices()), ("model",))
rng = np.random.default_rng(0)
params = {
    "dense": {"w": jnp.asarray(rng.normal(size=(16, 32)), jnp.float32),
              "b": jnp.asarray(rng.normal(size=(32,)), jnp.float32)},
    "head": {"w": jnp.asarray(rng.normal(size=(32, 8)), jnp.float32),
             "b": jnp.asarray(rng.normal(size=(8,)), jnp.float32)},
}
specs = {"dense": {"w": P(None, "model"), "b": P("model")},
         "head": {"w": P("model", None), "b": P()}}
shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
tx = jaxnn.partition(
    {"kernel": jaxnn.adamw(1e-2, weight_decay=0.1), "rest": jaxnn.sgd(0.1, 0.9)},
    jaxnn.label_by_path([(r"/w$", "kernel")], "rest"),
)

def run(params):
    state = jax.jit(tx.init)(params)
    step = jax.jit(lambda p, s, g: tx.update(g, s, p))
    for i in range(3):
        grads = jax.tree.map(lambda p: jnp.cos(p * (i + 1)), params)
        updates, state = step(params, state, grads)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params, state

single, single_state = run(params)
sharded, sharded_state = run(jax.device_put(params, shardings))
for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single)):
    np.testing.assert_allclose(
        np.asarray(a), np.asarray(b), **TOL["roundings_near_zero"]
    )
mu = sharded_state.inner_states["kernel"].inner_state[0].mu
assert mu["dense"]["w"].sharding.is_equivalent_to(shardings["dense"]["w"], 2), mu
assert mu["head"]["w"].sharding.is_equivalent_to(shardings["head"]["w"], 2)
assert sharded["dense"]["w"].sharding.is_equivalent_to(shardings["dense"]["w"], 2)
print("partition sharded OK")
"""


def test_sharded_on_8_cpu_devices():
    run_on_8_cpu_devices(SHARDED_SCRIPT, expect="partition sharded OK")


# ----------------------- issue 11: callable label trees, extra args, map_params


class Affine(eqx.Module):
    """An equinox layer: its labels tree (strings where the arrays were) is callable."""

    w: Any
    b: Any

    def __call__(self, x):
        return x @ self.w + self.b


def block_params():
    rng = np.random.default_rng(1)
    return Affine(
        w=jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
        b=jnp.asarray(rng.normal(size=(2,)), jnp.float32),
    )


def test_callable_pytree_labels_are_a_labels_tree():
    """An equinox Module of labels is labels, not a label function (optax's
    `masked` rule; optax 0.2.8's partition would call it, so the reference gets
    the same Module from a function)."""
    params = block_params()
    labels = Affine(w="kernel", b="rest")
    assert callable(labels)
    p, _ = trajectory(jaxnn_pair(labels), params, jaxnn.apply_updates)
    p_ref, _ = trajectory(optax_pair(lambda _: labels), params, optax.apply_updates)
    assert_leaves_close(p, p_ref)


def test_labels_that_are_functions_stay_labels_as_optax():
    """A dict whose leaves are functions is a labels tree (optax's partition too)."""
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
    fa, fb = (lambda x: x), (lambda x: -x)
    transforms = {fa: jaxnn.sgd(0.1), fb: jaxnn.sgd(0.5)}
    tx = jaxnn.partition(transforms, {"w": fa, "b": fb})
    ref = optax.partition({fa: optax.sgd(0.1), fb: optax.sgd(0.5)}, {"w": fa, "b": fb})
    g = random_grads(params, 0)
    u, _ = tx.update(g, tx.init(params), params)
    u_ref, _ = ref.update(g, ref.init(params), params)
    assert_leaves_close(u, u_ref)


def _offset_update(updates, state, params=None, *, offsets=None, **extra_args):
    """Adds the sum of the leaves of `offsets` it receives to every update."""
    del params, extra_args
    total = sum(jnp.sum(x) for x in jax.tree.leaves(offsets))
    return jax.tree.map(lambda u: u + total, updates), state


@pytest.mark.parametrize("compatible", [True, False])
def test_mask_compatible_extra_args_as_optax(compatible):
    params = model_params()
    offsets = jax.tree.map(jnp.ones_like, params)
    offset = optax.GradientTransformationExtraArgs(
        lambda p: optax.EmptyState(), _offset_update
    )
    transforms = {"kernel": offset, "rest": optax.chain(offset, optax.scale(2.0))}
    kw = dict(mask_compatible_extra_args=compatible)
    tx = jaxnn.partition(transforms, KERNEL_LABELS, **kw)
    ref = optax.partition(transforms, KERNEL_LABELS, **kw)
    g = random_grads(params, 0)
    u, _ = tx.update(g, tx.init(params), params, offsets=offsets)
    u_ref, _ = ref.update(g, ref.init(params), params, offsets=offsets)
    assert_leaves_close(u, u_ref)
    n_kernel = 6 * 5 + 5 * 4 + 4 * 3
    expected_w = g["head"]["w"] + (n_kernel if compatible else params_size(params))
    np.testing.assert_allclose(u["head"]["w"], expected_w, **tol(jnp.float32))


def params_size(params):
    return sum(x.size for x in jax.tree.leaves(params))


def _map_params_leaves(tx, params):
    """optax.tree.map_params(tx.init, ...) over tx's state: each state leaf's
    param path, or '-' for a leaf that is not a copy of the params."""
    is_masked = lambda v: isinstance(v, jaxnn.MaskedNode | optax.MaskedNode)  # noqa: E731
    tags = jax.tree.unflatten(
        jax.tree.structure(params),
        [jax.tree_util.keystr(p) for p, _ in jax.tree.leaves_with_path(params)],
    )
    state = tx.init(params)
    mapped = optax.tree.map_params(
        tx.init,
        lambda p, tag: p if is_masked(p) else tag,
        state,
        tags,
        transform_non_params=lambda v: jax.tree.map(lambda _: "-", v),
        is_leaf=is_masked,
    )
    assert jax.tree.structure(mapped) == jax.tree.structure(state)
    return jax.tree.leaves(mapped)


def strict_labels(params):
    """A label function that indexes the params: it cannot read a placeholder."""
    return {
        "encoder": [{"w": "kernel", "b": "rest"} for _ in params["encoder"]],
        "bn": jaxnn.BatchNormParams(scale="rest", bias="rest"),
        "head": {"w": "kernel", "b": "rest"},
    }


@pytest.mark.parametrize("how", [*LABELS, "strict_function"])
def test_optax_tree_map_params_over_the_state(how):
    """How users annotate the state's shardings from the params' (issue 11)."""
    params = model_params()
    labels = strict_labels if how == "strict_function" else LABELS[how]
    got = _map_params_leaves(jaxnn_pair(labels), params)
    # optax's partition calls a label function on its placeholder: the
    # reference gets the equivalent labels tree.
    expected = _map_params_leaves(optax_pair(KERNEL_LABELS), params)
    assert got == expected
    assert "['head']['w']" in got and "['head']['b']" in got
