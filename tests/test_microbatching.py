"""`microbatch`: gradients over pieces of the batch, averaged inside one step.

References: the full-batch gradient of a mean loss (`jax.value_and_grad` on the
whole batch), a Python loop over the pieces `batch[i::n]` averaged in float64
NumPy, and for memory the arithmetic of the activations an MLP must keep for its
backward pass.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests.helpers import TOL, run_on_8_cpu_devices, tol

ROOT = Path(__file__).resolve().parents[1]


def mlp(key, sizes, dtype=jnp.float32):
    keys = jax.random.split(key, len(sizes) - 1)
    params = [
        jaxnn.dense_init(k, a, b)
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]
    return jax.tree.map(lambda x: x.astype(dtype), params)


def mlp_loss(params, batch):
    h = batch["x"]
    for layer in params[:-1]:
        h = jaxnn.relu(jaxnn.dense(layer, h))
    logits = jaxnn.dense(params[-1], h).astype(jnp.float32)
    return jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, batch["y"]))


def make_batch(n, d=6, classes=3, seed=0, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    return {
        "x": jnp.asarray(rng.normal(size=(n, d)), dtype),
        "y": jnp.asarray(rng.integers(0, classes, size=n), jnp.int32),
    }


def strided_piece(batch, i, n):
    """Piece i of the batch, `leaf[i::n]`, sliced in NumPy (no compilation per i)."""
    return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[i::n]), batch)


def assert_close(actual, expected, dtype=jnp.float32):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(e, np.float64), **tol(dtype)
        )


# ------------------------------------------------------- equals the full batch


# The full-batch reference, computed once for the module (jitted: the reference's
# eager op-by-op path is not what these tests check).
@pytest.fixture(scope="module")
def full_batch():
    params = mlp(jax.random.key(0), (6, 16, 16, 3))
    batch = make_batch(32)
    return params, batch, jax.jit(jax.value_and_grad(mlp_loss))(params, batch)


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_mean_loss_gives_the_full_batch_loss_and_gradient(n, maybe_jit, full_batch):
    params, batch, (ref_loss, ref_grads) = full_batch
    grad_fn = jax.value_and_grad(mlp_loss)
    loss, grads = maybe_jit(jaxnn.microbatch(grad_fn, n))(params, batch)
    assert_close(loss, ref_loss)
    assert_close(grads, ref_grads)


def test_grads_only_and_aux_outputs():
    params = mlp(jax.random.key(1), (6, 8, 3))
    batch = make_batch(12)

    def loss_with_aux(p, b):
        loss = mlp_loss(p, b)
        return loss, {"loss_x2": 2 * loss, "first_x": jnp.mean(b["x"][:, 0])}

    grad_fn = jax.value_and_grad(loss_with_aux, has_aux=True)
    (loss, aux), grads = jaxnn.microbatch(grad_fn, 3)(params, batch)
    (ref_loss, ref_aux), ref_grads = jax.jit(grad_fn)(params, batch)
    assert_close((loss, aux, grads), (ref_loss, ref_aux, ref_grads))
    grads_only = jaxnn.microbatch(jax.grad(mlp_loss), 4)(params, batch)
    assert_close(grads_only, ref_grads)


def test_extra_args_and_keywords_go_to_every_piece():
    params = mlp(jax.random.key(1), (6, 8, 3))
    batch = make_batch(8)

    def scaled(p, b, factor, *, offset):
        return jax.grad(lambda p: factor * mlp_loss(p, b) + offset)(p)

    out = jaxnn.microbatch(scaled, 2)(params, batch, 3.0, offset=1.0)
    reference = jax.jit(scaled, static_argnames="offset")
    assert_close(out, reference(params, batch, 3.0, offset=1.0))


def test_average_of_strided_pieces_for_any_output():
    # An output that is not a per-example mean: the result is the average over
    # the pieces batch[i::n], computed here by a float64 loop.
    def first_and_max(params, batch):
        del params
        return {"first": batch["x"][0], "max": jnp.max(batch["x"], axis=0)}

    batch = make_batch(12)
    out = jaxnn.microbatch(first_and_max, 4)(None, batch)
    x = np.asarray(batch["x"], np.float64)
    pieces = [x[i::4] for i in range(4)]
    np.testing.assert_allclose(
        out["first"], np.mean([p[0] for p in pieces], 0), **TOL["roundings"]
    )
    np.testing.assert_allclose(
        out["max"], np.mean([p.max(0) for p in pieces], 0), **TOL["roundings"]
    )


def test_sum_loss_comes_back_divided_by_the_number_of_pieces():
    params = mlp(jax.random.key(2), (6, 8, 3))
    batch = make_batch(16)

    def sum_loss(p, b):
        return mlp_loss(p, b) * b["x"].shape[0]

    grads = jaxnn.microbatch(jax.grad(sum_loss), 4)(params, batch)
    full = jax.jit(jax.grad(sum_loss))(params, batch)
    assert_close(jax.tree.map(lambda g: g * 4, grads), full)


def test_one_compilation_for_repeated_calls():
    params = mlp(jax.random.key(0), (6, 8, 3))
    traces = []

    def grad_fn(p, b):
        traces.append(None)
        return jax.grad(mlp_loss)(p, b)

    step = jax.jit(jaxnn.microbatch(grad_fn, 4))
    for seed in range(3):
        step(params, make_batch(16, seed=seed))
    # eval_shape traces once to size the accumulator, scan once: one compilation.
    assert step._cache_size() == 1
    assert len(traces) == 2


# ------------------------------------------------------------------- dtypes


def test_bfloat16_grads_accumulate_in_float32_and_come_back_bfloat16():
    params = mlp(jax.random.key(3), (6, 32, 3), jnp.bfloat16)
    batch = make_batch(64, dtype=jnp.bfloat16)
    grad_fn = jax.grad(mlp_loss)
    grads = jax.jit(jaxnn.microbatch(grad_fn, 8))(params, batch)
    assert all(g.dtype == jnp.bfloat16 for g in jax.tree.leaves(grads))
    # Reference: the pieces' bf16 grads averaged in float64, rounded once to bf16.
    # The float32 sum of 8 bf16 values is exact here and /8 is exact, so the
    # result must be that rounding, bit for bit; a bf16 running sum is not.
    pieces = [jax.jit(grad_fn)(params, strided_piece(batch, i, 8)) for i in range(8)]
    expected = jax.tree.map(
        lambda *gs: jnp.asarray(
            np.mean([np.asarray(g, np.float64) for g in gs], 0).astype(np.float32),
            jnp.bfloat16,
        ),
        *pieces,
    )
    for g, e in zip(jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(
            np.asarray(g, np.float32), np.asarray(e, np.float32)
        )


def _enable_x64():
    """jax.enable_x64 (new in jax 0.8); jax.experimental.enable_x64 at the floor."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64(True)


def test_float64_stays_float64():
    with _enable_x64():
        params = mlp(jax.random.key(3), (6, 8, 3), jnp.float64)
        batch = make_batch(8, dtype=jnp.float64)
        grad_fn = jax.value_and_grad(mlp_loss)
        loss, grads = jax.jit(jaxnn.microbatch(grad_fn, 2))(params, batch)
        ref_loss, ref_grads = jax.jit(grad_fn)(params, batch)
        assert all(g.dtype == jnp.float64 for g in jax.tree.leaves(grads))
        assert_close((loss, grads), (ref_loss, ref_grads), jnp.float64)


# -------------------------------------------------------------- ghost BatchNorm


def bn_model(key):
    k0, k1 = jax.random.split(key)
    bn, state = jaxnn.batchnorm_init(8)
    return {
        "dense": jaxnn.dense_init(k0, 6, 8),
        "bn": bn,
        "head": jaxnn.dense_init(k1, 8, 3),
    }, state


def bn_loss(params, state, batch):
    h = jaxnn.dense(params["dense"], batch["x"])
    h, state = jaxnn.batchnorm(params["bn"], state, h, training=True)
    logits = jaxnn.dense(params["head"], jaxnn.relu(h))
    return jnp.mean(
        jaxnn.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
    ), state


def test_batchnorm_normalizes_each_piece_with_its_own_statistics():
    params, state = bn_model(jax.random.key(4))
    batch = make_batch(24)
    batch["x"] = batch["x"] * 3.0 + 1.0

    @jax.jit
    def grad_fn(p, b, s):
        return jax.value_and_grad(bn_loss, has_aux=True)(p, s, b)

    n = 4
    (loss, new_state), grads = jaxnn.microbatch(grad_fn, n)(params, batch, state)
    pieces = [grad_fn(params, strided_piece(batch, i, n), state) for i in range(n)]
    expected = jax.tree.map(
        lambda *xs: jnp.asarray(
            np.mean([np.asarray(x, np.float64) for x in xs], 0), jnp.float32
        ),
        *pieces,
    )
    assert_close(((loss, new_state), grads), expected)
    # Ghost batch norm is not full-batch BatchNorm: the gradients differ.
    (_, full_state), full_grads = grad_fn(params, batch, state)
    assert not np.allclose(
        grads["dense"]["w"], full_grads["dense"]["w"], **TOL["distinct"]
    )
    # Running mean: the mean of the pieces' means is the full batch's mean, so it
    # matches the full-batch update. Running variance: the mean of the pieces'
    # variances, smaller than the full batch's.
    np.testing.assert_allclose(new_state.mean, full_state.mean, **TOL["trajectory"])
    assert np.all(np.asarray(new_state.var) < np.asarray(full_state.var))


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize("n", [2.0, True, "2", None, np.float32(2)])
def test_non_int_count_is_a_type_error(n):
    with pytest.raises(TypeError, match="num_microbatches must be an int"):
        jaxnn.microbatch(jax.grad(mlp_loss), n)


@pytest.mark.parametrize("n", [0, -1, np.int64(0)])
def test_non_positive_count_is_a_value_error(n):
    with pytest.raises(ValueError, match="num_microbatches must be a positive int"):
        jaxnn.microbatch(jax.grad(mlp_loss), n)


def test_numpy_int_count_is_accepted():
    params = mlp(jax.random.key(0), (6, 8, 3))
    batch = make_batch(8)
    out = jaxnn.microbatch(jax.grad(mlp_loss), np.int64(2))(params, batch)
    assert_close(out, jax.jit(jax.grad(mlp_loss))(params, batch))


def test_non_callable_is_a_type_error():
    with pytest.raises(TypeError, match="grad_fn must be callable"):
        jaxnn.microbatch("loss", 2)


def test_batch_that_does_not_divide_names_leaf_and_sizes():
    params = mlp(jax.random.key(0), (6, 8, 3))
    f = jaxnn.microbatch(jax.grad(mlp_loss), 4)
    with pytest.raises(ValueError, match=r"\['x'\] has leading dimension 10.*=4"):
        f(params, make_batch(10))
    with pytest.raises(ValueError, match=r"\['x'\] has leading dimension 10"):
        jax.jit(f)(params, make_batch(10))


def test_scalar_batch_leaf_is_rejected():
    params = mlp(jax.random.key(0), (6, 8, 3))
    batch = {**make_batch(8), "scale": jnp.float32(2.0)}
    with pytest.raises(ValueError, match=r"\['scale'\] is a scalar"):
        jaxnn.microbatch(jax.grad(mlp_loss), 2)(params, batch)


def test_integer_output_is_a_type_error():
    def count(params, batch):
        return jnp.sum(batch["y"])

    with pytest.raises(TypeError, match="int32, which cannot be averaged"):
        jaxnn.microbatch(count, 2)(None, make_batch(8))


# ---------------------------------------------------------------------- memory


def test_peak_memory_is_about_one_pieces_activations():
    # An MLP whose activations dwarf its params: B=4096 examples, L=4 hidden
    # layers of H=512. The unsplit backward pass must keep every hidden layer's
    # activations, at least L·B·H float32 values. The microbatched step keeps one
    # piece's (at most 1/n of the unsplit step's temporaries) plus the float32
    # accumulator and one piece's gradients (a params-sized tree each).
    b, d, h, layers, n = 4096, 64, 512, 4, 8
    # Only shapes matter to the compiled program's memory: lower abstract values.
    sizes = (d,) + (h,) * layers + (10,)
    params = jax.eval_shape(lambda key: mlp(key, sizes), jax.random.key(0))
    batch = {
        "x": jax.ShapeDtypeStruct((b, d), jnp.float32),
        "y": jax.ShapeDtypeStruct((b,), jnp.int32),
    }
    grad_fn = jax.value_and_grad(mlp_loss)
    param_bytes = sum(x.size * 4 for x in jax.tree.leaves(params))

    def temp_bytes(f):
        return (
            jax.jit(f)
            .lower(params, batch)
            .compile()
            .memory_analysis()
            .temp_size_in_bytes
        )

    full = temp_bytes(grad_fn)
    micro = temp_bytes(jaxnn.microbatch(grad_fn, n))
    assert full >= layers * b * h * 4
    assert micro <= full / n + 3 * param_bytes
    assert micro < full / 4  # the claim in words: several times less memory


# --------------------------------------------------------------- 8 CPU devices

SHARDED_SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jaxnn
from tests.helpers import TOL

assert len(jax.devices()) == 8, jax.devices()
mesh = Mesh(np.array(jax.devices()), ("data",))
rng = np.random.default_rng(0)
params = [jaxnn.dense_init(jax.random.key(0), 6, 16),
          jaxnn.dense_init(jax.random.key(1), 16, 3)]
batch = {"x": jnp.asarray(rng.normal(size=(64, 6)), jnp.float32),
         "y": jnp.asarray(rng.integers(0, 3, size=64), jnp.int32)}

def loss(p, b):
    h = jaxnn.relu(jaxnn.dense(p[0], b["x"]))
    logits = jaxnn.dense(p[1], h)
    return jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, b["y"]))

grad_fn = jax.value_and_grad(loss)
ref_loss, ref_grads = jax.jit(grad_fn)(params, batch)
replicated = jax.device_put(params, NamedSharding(mesh, P()))
sharded = jax.device_put(batch, NamedSharding(mesh, P("data")))
step = jax.jit(jaxnn.microbatch(grad_fn, 4))
got_loss, got_grads = step(replicated, sharded)
np.testing.assert_allclose(got_loss, ref_loss, **TOL["roundings"])
for a, b in zip(jax.tree.leaves(got_grads), jax.tree.leaves(ref_grads)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL["trajectory"])
# Strided pieces keep the batch axis sharded: no device gathers the batch.
hlo = step.lower(replicated, sharded).compile().as_text()
assert "all-gather" not in hlo, "the batch was gathered"
print("microbatch sharded OK")
"""


def test_sharded_batch_on_8_cpu_devices():
    run_on_8_cpu_devices(SHARDED_SCRIPT, expect="microbatch sharded OK")
