"""Every public function rejects at least one bad input with a clear error.

One table: for each public callable in `jaxnn.__all__`, a call with a bad argument,
the exception type, and a pattern the message must contain (the argument's name or
what was expected). A meta-test keeps the table complete as the API grows. Deeper
validation tests live in each module's own test file.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn

KEY = jax.random.key(0)
ONES = {"a": jnp.ones(2)}

CASES = {
    "adagrad": (
        lambda: jaxnn.adagrad(0.1, initial_accumulator_value=-1.0),
        ValueError,
        "initial_accumulator_value",
    ),
    "adam": (lambda: jaxnn.adam(0.1, b1=1.0), ValueError, "b1"),
    "adamw": (lambda: jaxnn.adamw(0.1, weight_decay=-1.0), ValueError, "weight_decay"),
    "adaptive_grad_clip": (
        lambda: jaxnn.adaptive_grad_clip(-1.0),
        ValueError,
        "clipping",
    ),
    "add_decayed_weights": (
        lambda: jaxnn.add_decayed_weights(-1.0),
        ValueError,
        "weight_decay",
    ),
    "add_l1": (lambda: jaxnn.add_l1(-1.0), ValueError, "strength"),
    "all_finite": (
        lambda: jaxnn.all_finite({"a": "x"}),
        TypeError,
        "tree['a'] must be a numeric array",
    ),
    "apply_updates": (
        lambda: jaxnn.apply_updates(ONES, {"b": jnp.ones(2)}),
        ValueError,
        "updates does not match the structure of params",
    ),
    "batchnorm": (
        lambda: jaxnn.batchnorm(
            *jaxnn.batchnorm_init(3), jnp.ones((4, 5)), training=True
        ),
        ValueError,
        "5 features",
    ),
    "batchnorm_init": (lambda: jaxnn.batchnorm_init(0), ValueError, "num_features"),
    "chain": (lambda: jaxnn.chain(1), TypeError, "chain argument 0"),
    "clip_by_global_norm": (
        lambda: jaxnn.clip_by_global_norm(-1.0),
        ValueError,
        "max_norm",
    ),
    "clip_by_layer_norm": (
        lambda: jaxnn.clip_by_layer_norm(-1.0),
        ValueError,
        "max_norm",
    ),
    "clip_by_value": (lambda: jaxnn.clip_by_value(-1.0), ValueError, "max_abs"),
    "constant": (lambda: jaxnn.constant("a")(KEY, (2, 2)), TypeError, "value"),
    "constant_schedule": (lambda: jaxnn.constant_schedule("a"), TypeError, "value"),
    "cosine_decay_schedule": (
        lambda: jaxnn.cosine_decay_schedule(0.1, 0),
        ValueError,
        "decay_steps",
    ),
    "dense": (
        lambda: jaxnn.dense(jaxnn.dense_init(KEY, 3, 2), jnp.ones((4, 5))),
        ValueError,
        "x must have shape",
    ),
    "dense_init": (lambda: jaxnn.dense_init(KEY, 0, 2), ValueError, "n_in"),
    "dropout": (lambda: jaxnn.dropout(KEY, jnp.ones(3), 1.5), ValueError, "rate"),
    "dynamic_loss_scale": (
        lambda: jaxnn.dynamic_loss_scale(jaxnn.sgd(0.1), backoff_factor=1.0),
        ValueError,
        "backoff_factor",
    ),
    "exponential_decay": (
        lambda: jaxnn.exponential_decay(0.1, 0, 0.5),
        ValueError,
        "transition_steps",
    ),
    "gd": (lambda: jaxnn.gd(-1.0), ValueError, "learning_rate"),
    "global_norm": (
        lambda: jaxnn.global_norm({"a": "x"}),
        TypeError,
        "updates['a'] must be a numeric array",
    ),
    "gradient_norms": (
        lambda: jaxnn.gradient_norms({"a": "x"}),
        TypeError,
        "floating-point",
    ),
    "gradient_report": (
        lambda: jaxnn.gradient_report(ONES, vanishing_threshold=-1.0),
        ValueError,
        "vanishing_threshold",
    ),
    "he_normal": (lambda: jaxnn.he_normal()(KEY, (3,)), ValueError, "at least 2"),
    "he_uniform": (lambda: jaxnn.he_uniform()(KEY, (3,)), ValueError, "at least 2"),
    "identity": (lambda: jaxnn.identity().update(ONES, None), None, None),
    "l1_penalty": (lambda: jaxnn.l1_penalty(ONES, -1.0), ValueError, "strength"),
    "l2_penalty": (lambda: jaxnn.l2_penalty(ONES, -1.0), ValueError, "strength"),
    "leaky_relu": (lambda: jaxnn.leaky_relu("x"), TypeError, "'x'"),
    "leaky_relu_derivative": (
        lambda: jaxnn.leaky_relu_derivative("x"),
        TypeError,
        "'x'",
    ),
    "label_by_path": (
        lambda: jaxnn.label_by_path([("(", True)], False),
        ValueError,
        "not a valid regular expression",
    ),
    "lecun_normal": (lambda: jaxnn.lecun_normal()(KEY, (3,)), ValueError, "at least 2"),
    "loss_scale": (
        lambda: jaxnn.loss_scale(jaxnn.sgd(0.1).init(ONES)),
        ValueError,
        "no DynamicLossScaleState",
    ),
    "masked": (
        lambda: jaxnn.masked(jaxnn.sgd(0.1), {"a": 1}).init(ONES),
        TypeError,
        "mask leaf must be a Python bool",
    ),
    "mean_squared_error": (
        lambda: jaxnn.mean_squared_error(jnp.ones(3), jnp.ones(4)),
        ValueError,
        "same shape",
    ),
    "microbatch": (
        lambda: jaxnn.microbatch(lambda p, b: b, 2)(None, {"x": jnp.ones((5, 2))}),
        ValueError,
        "batch leaf ['x'] has leading dimension 5, which num_microbatches=2",
    ),
    "momentum": (lambda: jaxnn.momentum(0.1, beta=1.5), ValueError, "beta"),
    "nadam": (lambda: jaxnn.nadam(0.1, b2=1.0), ValueError, "b2"),
    "nesterov": (lambda: jaxnn.nesterov(0.1, beta=-0.1), ValueError, "beta"),
    "normal": (lambda: jaxnn.normal(-1.0), ValueError, "stddev"),
    "partition": (
        lambda: jaxnn.partition({"a": jaxnn.sgd(0.1)}, {"a": "b"}).init(ONES),
        ValueError,
        "label 'b'",
    ),
    "piecewise_constant_schedule": (
        lambda: jaxnn.piecewise_constant_schedule(0.1, {3: -0.5}),
        ValueError,
        "boundaries_and_scales",
    ),
    "relu": (lambda: jaxnn.relu("x"), TypeError, "'x'"),
    "relu_derivative": (lambda: jaxnn.relu_derivative("x"), TypeError, "'x'"),
    "rmsprop": (lambda: jaxnn.rmsprop(0.1, decay=1.0), ValueError, "decay"),
    "safe_increment": (
        lambda: jaxnn.safe_increment(jnp.float32(1.0)),
        TypeError,
        "count must be an integer array",
    ),
    "scale": (lambda: jaxnn.scale("x"), TypeError, "step_size"),
    "scale_by_adam": (lambda: jaxnn.scale_by_adam(eps=-1.0), ValueError, "eps"),
    "scale_by_learning_rate": (
        lambda: jaxnn.scale_by_learning_rate(-1.0),
        ValueError,
        "learning_rate",
    ),
    "scale_by_rms": (lambda: jaxnn.scale_by_rms(decay=2.0), ValueError, "decay"),
    "scale_by_rss": (lambda: jaxnn.scale_by_rss(eps=-1.0), ValueError, "eps"),
    "scale_by_schedule": (
        lambda: jaxnn.scale_by_schedule(0.1),
        TypeError,
        "step_size_fn must be callable",
    ),
    "sgd": (lambda: jaxnn.sgd(0.1, momentum=1.0), ValueError, "momentum"),
    "sigmoid": (lambda: jaxnn.sigmoid("x"), TypeError, "'x'"),
    "sigmoid_derivative": (lambda: jaxnn.sigmoid_derivative("x"), TypeError, "'x'"),
    "skip_nonfinite": (
        lambda: jaxnn.skip_nonfinite(jaxnn.gd(0.1), max_consecutive=-1),
        ValueError,
        "max_consecutive",
    ),
    "softmax_cross_entropy": (
        lambda: jaxnn.softmax_cross_entropy(jnp.ones((2, 3)), jnp.array([0, 2])),
        TypeError,
        "use softmax_cross_entropy_with_integer_labels",
    ),
    "softmax_cross_entropy_with_integer_labels": (
        lambda: jaxnn.softmax_cross_entropy_with_integer_labels(
            jnp.ones((2, 3)), jnp.array([0, 3])
        ),
        ValueError,
        "labels must be in",
    ),
    "stateless": (lambda: jaxnn.stateless(1), TypeError, "f must be callable"),
    "tanh": (lambda: jaxnn.tanh("x"), TypeError, "'x'"),
    "tanh_derivative": (lambda: jaxnn.tanh_derivative("x"), TypeError, "'x'"),
    "trace": (lambda: jaxnn.trace(decay=1.0), ValueError, "decay"),
    "uniform": (lambda: jaxnn.uniform(-1.0), ValueError, "epsilon"),
    "unitwise_norm": (
        lambda: jaxnn.unitwise_norm(jnp.ones((2,) * 6)),
        ValueError,
        "rank <= 5",
    ),
    "variance_scaling": (
        lambda: jaxnn.variance_scaling(1.0, "fan_x", "normal"),
        ValueError,
        "mode",
    ),
    "warmup_cosine_decay_schedule": (
        lambda: jaxnn.warmup_cosine_decay_schedule(0.0, 0.1, 10, 5),
        ValueError,
        "decay_steps",
    ),
    "with_extra_args_support": (
        lambda: jaxnn.with_extra_args_support(lambda g: g),
        TypeError,
        "tx must be a gradient transformation",
    ),
    "xavier_normal": (
        lambda: jaxnn.xavier_normal()(KEY, (3,)),
        ValueError,
        "at least 2",
    ),
    "xavier_uniform": (
        lambda: jaxnn.xavier_uniform()(KEY, (3,)),
        ValueError,
        "at least 2",
    ),
    "zeros": (lambda: jaxnn.zeros()(KEY, (2, -1)), ValueError, None),
}


def test_every_public_callable_has_a_bad_input_case():
    functions = {n for n in jaxnn.__all__ if inspect.isroutine(getattr(jaxnn, n))}
    assert functions == set(CASES), (
        f"missing: {sorted(functions - set(CASES))}, "
        f"stale: {sorted(set(CASES) - functions)}"
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_raises_a_clear_error(name):
    call, error, pattern = CASES[name]
    if error is None:
        # identity() has no hyperparameters and accepts any state: nothing to reject.
        call()
        return
    with pytest.raises(error) as info:
        call()
    if pattern is not None:
        assert pattern in str(info.value), str(info.value)


# The error-type rule: TypeError for a wrong type, ValueError for a wrong value;
# NumPy scalars are accepted wherever Python numbers are.
TYPE_OR_VALUE = [
    (lambda: jaxnn.batchnorm_init(2.5), TypeError, "num_features"),
    (lambda: jaxnn.batchnorm_init(0), ValueError, "num_features"),
    (lambda: jaxnn.batchnorm_init(3, jnp.int32), TypeError, "dtype"),
    (lambda: jaxnn.dense_init(KEY, True, 2), TypeError, "n_in"),
    (lambda: jaxnn.cosine_decay_schedule(0.1, 2.5), TypeError, "decay_steps"),
    (lambda: jaxnn.cosine_decay_schedule(0.1, 0), ValueError, "decay_steps"),
    (lambda: jaxnn.skip_nonfinite(jaxnn.gd(0.1), 2.0), TypeError, "max_consecutive"),
    (lambda: jaxnn.skip_nonfinite(lambda g: g), TypeError, "inner"),
    (lambda: jaxnn.masked(None, {"a": True}), TypeError, "inner"),
    (
        lambda: jaxnn.masked(jaxnn.sgd(0.1), True, mask_compatible_extra_args=1),
        TypeError,
        "mask_compatible_extra_args",
    ),
    (lambda: jaxnn.microbatch(lambda p, b: b, 0), ValueError, "num_microbatches"),
    (lambda: jaxnn.microbatch(lambda p, b: b, 2.5), TypeError, "num_microbatches"),
    (lambda: jaxnn.microbatch(lambda p, b: b, "2"), TypeError, "num_microbatches"),
    (lambda: jaxnn.microbatch("grad", 2), TypeError, "grad_fn"),
    (lambda: jaxnn.partition({"a": 1}, "a"), TypeError, "transforms\\['a'\\]"),
    (lambda: jaxnn.label_by_path([("w", None)], False), TypeError, "label"),
    (lambda: jaxnn.scale_by_adam(mu_dtype=jnp.int32), TypeError, "mu_dtype"),
    # The options that issue 11 added (optax's): flags are Python bools, dtypes
    # floating; a real moment dtype cannot hold a complex param's moment.
    (lambda: jaxnn.rmsprop(0.1, eps_in_sqrt=1), TypeError, "eps_in_sqrt"),
    (lambda: jaxnn.rmsprop(0.1, bias_correction="no"), TypeError, "bias_correction"),
    (lambda: jaxnn.scale_by_rms(eps_in_sqrt=None), TypeError, "eps_in_sqrt"),
    (lambda: jaxnn.scale_by_rms(bias_correction=0), TypeError, "bias_correction"),
    (lambda: jaxnn.scale_by_rms(centered="yes"), TypeError, "centered"),
    (lambda: jaxnn.adam(0.1, nesterov=1), TypeError, "nesterov"),
    (lambda: jaxnn.adamw(0.1, nesterov="yes"), TypeError, "nesterov"),
    (lambda: jaxnn.nadam(0.1, nesterov=None), TypeError, "nesterov"),
    (lambda: jaxnn.adamw(0.1, eps_root=-1.0), ValueError, "eps_root"),
    (lambda: jaxnn.adamw(0.1, mu_dtype=jnp.int8), TypeError, "mu_dtype"),
    (lambda: jaxnn.sgd(0.1, 0.9, False, jnp.int32), TypeError, "accumulator_dtype"),
    (lambda: jaxnn.trace(0.9, accumulator_dtype="x"), TypeError, "accumulator_dtype"),
    (lambda: jaxnn.trace(0.9, nesterov=1), TypeError, "nesterov"),
    (
        lambda: jaxnn.trace(0.9, accumulator_dtype=jnp.float32).init(
            {"a": jnp.ones(2, jnp.complex64)}
        ),
        TypeError,
        "accumulator_dtype=float32 is a real dtype",
    ),
    (
        lambda: jaxnn.adam(0.1, mu_dtype=jnp.float32).init(
            {"a": jnp.ones(2, jnp.complex64)}
        ),
        TypeError,
        "mu_dtype=float32 is a real dtype",
    ),
    (lambda: jaxnn.scale_by_learning_rate(0.1, flip_sign=0), TypeError, "flip_sign"),
    (lambda: jaxnn.he_normal(in_axis=1.0)(KEY, (3, 4)), TypeError, "in_axis"),
    (lambda: jaxnn.he_normal(in_axis=2)(KEY, (3, 4)), ValueError, "in_axis"),
    (lambda: jaxnn.normal()(KEY, (3, 4), jnp.int32), TypeError, "dtype"),
    (
        lambda: jaxnn.dropout(KEY, jnp.ones((2, 2)), 0.5, broadcast_dims=(0.0,)),
        TypeError,
        "broadcast_dims",
    ),
    (
        lambda: jaxnn.batchnorm(
            *jaxnn.batchnorm_init(2), jnp.ones((4, 2)), training=True, axis=1.0
        ),
        TypeError,
        "axis",
    ),
    (lambda: jaxnn.variance_scaling(1.0, 3, "normal"), ValueError, "mode"),
]


@pytest.mark.parametrize("call, error, pattern", TYPE_OR_VALUE)
def test_one_error_type_per_kind_of_mistake(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


NUMPY_SCALARS = [
    lambda: jaxnn.skip_nonfinite(jaxnn.gd(0.1), np.int64(3)),
    lambda: jaxnn.skip_nonfinite(jaxnn.gd(0.1), jnp.int32(3)),
    lambda: jaxnn.batchnorm_init(np.int32(3)),
    lambda: jaxnn.dense_init(KEY, np.int64(3), np.int16(2)),
    lambda: jaxnn.cosine_decay_schedule(np.float32(0.1), np.int64(10)),
    lambda: jaxnn.exponential_decay(0.1, np.uint8(10), np.float64(0.5), np.int64(2)),
    lambda: jaxnn.warmup_cosine_decay_schedule(0.0, 1.0, np.int64(2), np.int32(10)),
    lambda: jaxnn.adam(np.float32(1e-3), b1=np.float64(0.9)),
    lambda: jaxnn.dropout(
        KEY, jnp.ones((2, 2)), np.float64(0.5), broadcast_dims=(np.int64(0),)
    ),
    lambda: jaxnn.he_normal(in_axis=np.int64(0), out_axis=np.int8(1))(KEY, (3, 4)),
    lambda: jaxnn.zeros()(KEY, (np.int64(2), 3)),
    lambda: jaxnn.microbatch(lambda p, b: b, np.int64(2))(None, jnp.ones((4, 2))),
]


@pytest.mark.parametrize("call", NUMPY_SCALARS)
def test_numpy_scalars_are_accepted(call):
    call()
