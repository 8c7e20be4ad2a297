"""Traced hyperparameters: every numeric hyperparameter can be a jit argument.

For each public factory that takes numbers, a runner builds it from a dict of
hyperparameters and uses it on fixed inputs (three optimizer steps, a schedule over
40 counts, an initializer draw, a layer's output and gradient, ...). Factories are
grouped; each group's runners are jitted as ONE function whose argument is the
nested dict of every hyperparameter (Python ints become int32 arrays, floats
float32 arrays), called with two sets of values. The test checks that

- the group's function is traced once for both value sets (no recompilation when
  a hyperparameter changes), and
- each result equals the same runner called eagerly with the Python numbers (the
  concrete, validated path), to float32 tolerance (`tests/helpers.py`): a traced
  hyperparameter is a float32 array, while a Python number enters the arithmetic
  in float64 where it meets other Python numbers (e.g. `1 - b1`).

A meta-test keeps the table complete: every public callable is in it or in
EXCLUDED with a reason, and every parameter annotated as a number is traced here
or is structural (an axis or a size, STATIC).
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests.helpers import assert_trees_close
from tests.test_loss_scaling import reference_trajectory

KEY = jax.random.key(0)
_rng = np.random.default_rng(0)
PARAMS = {
    "w": jnp.asarray(_rng.normal(size=(3, 4)), jnp.float32),
    "b": jnp.asarray(_rng.normal(size=(4,)), jnp.float32),
}
TARGET = jax.tree.map(lambda p: 0.3 * p + 0.5, PARAMS)
X = jnp.asarray(_rng.normal(size=(16, 4)) + 2.0, jnp.float32)


def quadratic_grads(params, t):
    """Gradient of Σ(p − target)², shifted a little at each step t."""
    return jax.tree.map(lambda p, s: 2 * (p - s) + 0.1 * t, params, TARGET)


def nonfinite_grads(params, t):
    """Finite at steps 0 and 4, NaN at 1, 2, 3 and 5."""
    g = quadratic_grads(params, t)
    if t in (1, 2, 3, 5):
        g = {**g, "w": g["w"].at[0, 0].set(jnp.nan)}
    return g


def run_transform(tx, grads=quadratic_grads, steps=3):
    """Params and state after `steps` updates of `tx` from PARAMS."""
    params, state = PARAMS, tx.init(PARAMS)
    for t in range(steps):
        updates, state = tx.update(grads(params, t), state, params)
        params = jaxnn.apply_updates(params, updates)
    return params, state


def transform_runner(name):
    return lambda hp: run_transform(getattr(jaxnn, name)(**hp))


def schedule_runner(name):
    return lambda hp: getattr(jaxnn, name)(**hp)(jnp.arange(40, dtype=jnp.int32))


def initializer_runner(name):
    return lambda hp: getattr(jaxnn, name)(**hp)(KEY, (5, 7))


def run_variance_scaling(hp):
    return [
        jaxnn.variance_scaling(mode=mode, distribution=dist, **hp)(KEY, (5, 7))
        for mode, dist in [
            ("fan_in", "normal"),
            ("fan_out", "truncated_normal"),
            ("fan_avg", "uniform"),
        ]
    ]


def run_skip_nonfinite(hp):
    tx = jaxnn.skip_nonfinite(jaxnn.sgd(0.1, momentum=0.9), **hp)
    return run_transform(tx, nonfinite_grads, steps=6)


def run_batchnorm(hp):
    params, state = jaxnn.batchnorm_init(4)
    params = params._replace(scale=params.scale * 1.5, bias=params.bias + 0.25)

    def loss(x, params):
        y, new_state = jaxnn.batchnorm(params, state, x, training=True, **hp)
        return jnp.sum(jnp.sin(y)), (y, new_state)

    (_, (y, new_state)), grads = jax.value_and_grad(loss, (0, 1), has_aux=True)(
        X, params
    )
    y_eval, _ = jaxnn.batchnorm(params, new_state, X, training=False, **hp)
    return y, new_state, grads, y_eval


def run_dropout(hp):
    def f(x):
        return jnp.sum(jaxnn.dropout(KEY, x, **hp) * x)

    return jaxnn.dropout(KEY, X, **hp), jax.grad(f)(X)


def loss_scaling_grads(params, t):
    """Finite at steps 0, 1, 3, 4 and 7; NaN or inf at 2, 5 and 6."""
    g = quadratic_grads(params, t)
    if t in (2, 5, 6):
        bad = jnp.nan if t == 5 else jnp.inf
        g = {**g, "b": g["b"].at[t % 4].set(bad)}
    return g


def run_dynamic_loss_scale(hp):
    """Eight steps of the scaled-loss loop: G = S·g, then `update` unscales."""
    tx = jaxnn.dynamic_loss_scale(jaxnn.sgd(0.1, momentum=0.9), **hp)
    params, state = PARAMS, tx.init(PARAMS)
    scales = []
    for t in range(8):
        s = jaxnn.loss_scale(state)
        scaled = jax.tree.map(lambda g, s=s: g * s, loss_scaling_grads(params, t))
        updates, state = tx.update(scaled, state, params)
        params = jaxnn.apply_updates(params, updates)
        scales.append(state.scale)
    return params, state, jnp.stack(scales)


def penalty_runner(name):
    def run(hp):
        def f(params):
            return getattr(jaxnn, name)(params, **hp)

        return jax.value_and_grad(f)(PARAMS)

    return run


def activation_runner(name):
    def run(hp):
        z = jnp.linspace(-3.0, 3.0, 13)
        out = getattr(jaxnn, name)(z, **hp)
        grad = jax.grad(lambda z: jnp.sum(getattr(jaxnn, name)(z, **hp) * z))(z)
        return out, grad

    return run


def run_gradient_report(hp):
    grads = [
        {"w": PARAMS["w"] * 1e-3, "b": PARAMS["b"]},
        {"w": PARAMS["w"] * 20.0},
    ]
    params = [{"w": PARAMS["w"], "b": PARAMS["b"]}, {"w": PARAMS["w"] * 0.01}]
    return jaxnn.gradient_report(grads, params, **hp)


# A: power-of-two factors, growth after 2 good steps. B: factors that are not
# powers of two, growth after every good step, backoff stopped by min_scale.
LOSS_SCALE_VALUES = [
    dict(
        init_scale=1024.0,
        growth_factor=2.0,
        backoff_factor=0.5,
        growth_interval=2,
        min_scale=1.0,
    ),
    dict(
        init_scale=8.0,
        growth_factor=1.7,
        backoff_factor=0.3,
        growth_interval=1,
        min_scale=4.0,
    ),
]

# group -> public name -> (runner, [values A, values B]).
GROUPS = {
    "optimizers": {
        "gd": (
            transform_runner("gd"),
            [dict(learning_rate=0.1), dict(learning_rate=0.03)],
        ),
        "sgd": (
            transform_runner("sgd"),
            [
                dict(learning_rate=0.1, momentum=0.9),
                dict(learning_rate=0.05, momentum=0.5),
            ],
        ),
        "momentum": (
            transform_runner("momentum"),
            [dict(learning_rate=0.1, beta=0.9), dict(learning_rate=0.02, beta=0.3)],
        ),
        "nesterov": (
            transform_runner("nesterov"),
            [dict(learning_rate=0.1, beta=0.9), dict(learning_rate=0.02, beta=0.3)],
        ),
        "adagrad": (
            transform_runner("adagrad"),
            [
                dict(learning_rate=0.1, initial_accumulator_value=0.1, eps=1e-7),
                dict(learning_rate=0.3, initial_accumulator_value=0.5, eps=1e-3),
            ],
        ),
        "rmsprop": (
            transform_runner("rmsprop"),
            [
                dict(
                    learning_rate=0.01,
                    decay=0.9,
                    eps=1e-8,
                    initial_scale=0.0,
                    momentum=0.9,
                ),
                dict(
                    learning_rate=0.03,
                    decay=0.5,
                    eps=1e-3,
                    initial_scale=1.0,
                    momentum=0.2,
                ),
            ],
        ),
        "adam": (
            transform_runner("adam"),
            [
                dict(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0),
                dict(learning_rate=0.1, b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4),
            ],
        ),
        "adamw": (
            transform_runner("adamw"),
            [
                dict(
                    learning_rate=0.01,
                    b1=0.9,
                    b2=0.999,
                    eps=1e-8,
                    eps_root=0.0,
                    weight_decay=1e-4,
                ),
                dict(
                    learning_rate=0.1,
                    b1=0.5,
                    b2=0.9,
                    eps=1e-3,
                    eps_root=1e-4,
                    weight_decay=0.3,
                ),
            ],
        ),
        "nadam": (
            transform_runner("nadam"),
            [
                dict(learning_rate=0.01, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0),
                dict(learning_rate=0.1, b1=0.5, b2=0.9, eps=1e-3, eps_root=1e-4),
            ],
        ),
    },
    "building_blocks": {
        "scale": (
            transform_runner("scale"),
            [dict(step_size=-0.1), dict(step_size=0.7)],
        ),
        "scale_by_learning_rate": (
            transform_runner("scale_by_learning_rate"),
            [dict(learning_rate=0.1), dict(learning_rate=0.02)],
        ),
        "trace": (transform_runner("trace"), [dict(decay=0.9), dict(decay=0.1)]),
        "scale_by_rss": (
            transform_runner("scale_by_rss"),
            [
                dict(initial_accumulator_value=0.1, eps=1e-7),
                dict(initial_accumulator_value=2.0, eps=0.1),
            ],
        ),
        "scale_by_rms": (
            transform_runner("scale_by_rms"),
            [
                dict(decay=0.9, eps=1e-8, initial_scale=0.0),
                dict(decay=0.3, eps=0.1, initial_scale=1.0),
            ],
        ),
        "scale_by_adam": (
            transform_runner("scale_by_adam"),
            [
                dict(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0),
                dict(b1=0.2, b2=0.7, eps=1e-2, eps_root=1e-3),
            ],
        ),
        "add_decayed_weights": (
            transform_runner("add_decayed_weights"),
            [dict(weight_decay=1e-4), dict(weight_decay=0.5)],
        ),
        "add_l1": (
            transform_runner("add_l1"),
            [dict(strength=1e-3), dict(strength=0.4)],
        ),
        "clip_by_value": (
            transform_runner("clip_by_value"),
            [dict(max_abs=0.5), dict(max_abs=2.0)],
        ),
        "clip_by_global_norm": (
            transform_runner("clip_by_global_norm"),
            [dict(max_norm=1.0), dict(max_norm=50.0)],
        ),
        "clip_by_layer_norm": (
            transform_runner("clip_by_layer_norm"),
            [dict(max_norm=0.3), dict(max_norm=3.0)],
        ),
        "adaptive_grad_clip": (
            transform_runner("adaptive_grad_clip"),
            [dict(clipping=0.1, eps=1e-3), dict(clipping=0.9, eps=0.5)],
        ),
        "skip_nonfinite": (
            run_skip_nonfinite,
            [dict(max_consecutive=1), dict(max_consecutive=2)],
        ),
        "dynamic_loss_scale": (run_dynamic_loss_scale, LOSS_SCALE_VALUES),
    },
    "schedules": {
        "constant_schedule": (
            schedule_runner("constant_schedule"),
            [dict(value=0.3), dict(value=-2.0)],
        ),
        "exponential_decay": (
            schedule_runner("exponential_decay"),
            [
                dict(
                    init_value=1.0,
                    transition_steps=7,
                    decay_rate=0.5,
                    transition_begin=5,
                    end_value=0.2,
                ),
                # A growing schedule: end_value bounds it from above.
                dict(
                    init_value=0.1,
                    transition_steps=3,
                    decay_rate=1.5,
                    transition_begin=0,
                    end_value=3.0,
                ),
            ],
        ),
        "cosine_decay_schedule": (
            schedule_runner("cosine_decay_schedule"),
            [
                dict(init_value=0.1, decay_steps=30, alpha=0.0, exponent=1.0),
                dict(init_value=2.0, decay_steps=13, alpha=0.2, exponent=2.0),
            ],
        ),
        "warmup_cosine_decay_schedule": (
            schedule_runner("warmup_cosine_decay_schedule"),
            [
                dict(
                    init_value=0.0,
                    peak_value=1.0,
                    warmup_steps=5,
                    decay_steps=30,
                    end_value=0.1,
                    exponent=1.0,
                ),
                # peak_value = 0 (alpha = 0) and no warm-up.
                dict(
                    init_value=0.5,
                    peak_value=0.0,
                    warmup_steps=0,
                    decay_steps=12,
                    end_value=0.3,
                    exponent=0.5,
                ),
            ],
        ),
        "piecewise_constant_schedule": (
            schedule_runner("piecewise_constant_schedule"),
            [
                dict(init_value=1.0, boundaries_and_scales={5: 0.5, 20: 0.1}),
                dict(init_value=0.3, boundaries_and_scales={5: 2.0, 20: 0.0}),
            ],
        ),
    },
    "initializers": {
        "constant": (
            initializer_runner("constant"),
            [dict(value=0.3), dict(value=-2.0)],
        ),
        "uniform": (
            initializer_runner("uniform"),
            [dict(epsilon=0.05), dict(epsilon=3.0)],
        ),
        "normal": (initializer_runner("normal"), [dict(stddev=0.01), dict(stddev=2.0)]),
        "variance_scaling": (run_variance_scaling, [dict(scale=1.0), dict(scale=2.5)]),
    },
    "layers": {
        "dropout": (run_dropout, [dict(rate=0.1), dict(rate=0.6)]),
        "batchnorm": (
            run_batchnorm,
            [dict(momentum=0.99, eps=1e-5), dict(momentum=0.5, eps=0.1)],
        ),
        "l1_penalty": (
            penalty_runner("l1_penalty"),
            [dict(strength=1e-3), dict(strength=0.5)],
        ),
        "l2_penalty": (
            penalty_runner("l2_penalty"),
            [dict(strength=1e-3), dict(strength=0.5)],
        ),
        "leaky_relu": (
            activation_runner("leaky_relu"),
            [dict(negative_slope=0.01), dict(negative_slope=0.3)],
        ),
        "leaky_relu_derivative": (
            activation_runner("leaky_relu_derivative"),
            [dict(negative_slope=0.01), dict(negative_slope=-0.2)],
        ),
        "gradient_report": (
            run_gradient_report,
            [
                dict(
                    vanishing_threshold=1e-6,
                    exploding_threshold=1e3,
                    ratio_threshold=1e3,
                    eps=1e-3,
                ),
                # Other thresholds flip both flags.
                dict(
                    vanishing_threshold=0.5,
                    exploding_threshold=10.0,
                    ratio_threshold=2.0,
                    eps=0.5,
                ),
            ],
        ),
    },
}

# Parameters annotated as numbers that fix a structure or a shape: static by nature.
STATIC = {
    "in_axis": "an axis of the kernel shape",
    "out_axis": "an axis of the kernel shape",
    "axis": "the feature axis: decides the reduction",
    "n_in": "a size: decides the parameter shapes",
    "n_out": "a size: decides the parameter shapes",
    "num_microbatches": "a count: decides the pieces' shapes and the scan length",
    "num_features": "a size: decides the parameter shapes",
}

EXCLUDED = {
    **{
        name: "no numeric hyperparameter: its inputs are arrays or trees"
        for name in [
            "all_finite",
            "apply_updates",
            "dense",
            "global_norm",
            "gradient_norms",
            "loss_scale",
            "mean_squared_error",
            "relu",
            "relu_derivative",
            "safe_increment",
            "sigmoid",
            "sigmoid_derivative",
            "softmax_cross_entropy",
            "softmax_cross_entropy_with_integer_labels",
            "tanh",
            "tanh_derivative",
            "unitwise_norm",
        ]
    },
    **{
        name: "builds from other transforms or functions, no number of its own"
        for name in [
            "chain",
            "identity",
            "masked",
            "partition",
            "scale_by_schedule",
            "stateless",
            "with_extra_args_support",
        ]
    },
    **{
        name: "only axes or sizes (STATIC)"
        for name in [
            "batchnorm_init",
            "dense_init",
            "he_normal",
            "he_uniform",
            "lecun_normal",
            "xavier_normal",
            "xavier_uniform",
        ]
    },
    "microbatch": "wraps a function; its one number is a count (STATIC)",
    "label_by_path": "no number: its arguments are regexes and labels",
    "zeros": "no argument",
}

TABLE = {name: entry for group in GROUPS.values() for name, entry in group.items()}
NUMERIC = {"float", "int", "ScalarOrSchedule", "Mapping[int, float]"}


def numeric_params(name):
    """Parameters of `jaxnn.<name>` whose annotation includes a number type."""
    out = set()
    for p in inspect.signature(getattr(jaxnn, name)).parameters.values():
        tokens = {t.strip() for t in str(p.annotation).split("|")}
        if tokens & NUMERIC:
            out.add(p.name)
    return out


def test_every_public_callable_is_in_the_table_or_excluded_with_a_reason():
    routines = {n for n in jaxnn.__all__ if inspect.isroutine(getattr(jaxnn, n))}
    assert not set(TABLE) & set(EXCLUDED)
    assert set(TABLE) | set(EXCLUDED) == routines, (
        f"missing: {sorted(routines - set(TABLE) - set(EXCLUDED))}, "
        f"stale: {sorted((set(TABLE) | set(EXCLUDED)) - routines)}"
    )


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_numeric_parameter_is_traced(name):
    _, values = TABLE[name]
    expected = numeric_params(name) - set(STATIC)
    assert all(set(v) == expected for v in values), (name, expected)


@pytest.mark.parametrize("name", sorted(EXCLUDED))
def test_excluded_callables_have_only_static_numbers(name):
    assert numeric_params(name) <= set(STATIC), name


def as_arrays(hp):
    """Python ints -> int32 arrays, floats -> float32 arrays (dict keys stay)."""
    return jax.tree.map(
        lambda v: jnp.asarray(v, jnp.int32 if isinstance(v, int) else jnp.float32), hp
    )


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_traced_hyperparameters_compile_once_and_match_python_numbers(group):
    entries = GROUPS[group]
    traces = []

    def run_all(hps):
        traces.append(1)
        return {name: entries[name][0](hp) for name, hp in hps.items()}

    jitted = jax.jit(run_all)
    results = []
    for i in range(2):
        hps = {name: values[i] for name, (_, values) in entries.items()}
        traced = jitted(as_arrays(hps))
        for name, hp in hps.items():
            expected = entries[name][0](hp)  # eager, Python numbers
            try:
                assert_trees_close(traced[name], expected)
            except AssertionError as e:
                raise AssertionError(f"{name} with {hp}: {e}") from None
        results.append(traced)
    assert len(traces) == 1, f"{group} was traced {len(traces)} times"
    # The two value sets must give different results, or a traced value that is
    # silently ignored (or baked in at the first trace) would go unnoticed.
    for name in entries:
        a, b = (jax.tree.leaves(r[name]) for r in results)
        assert not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), (
            f"{name}: values A and B give the same result"
        )


def test_dynamic_loss_scale_values_follow_the_gradscaler_reference():
    # The table's runner, with the Python numbers, against the NumPy reference of
    # GradScaler's rules; the group test above equates the traced run with it.
    finite = [t not in (2, 5, 6) for t in range(8)]
    for hp in LOSS_SCALE_VALUES:
        _, state, scales = run_dynamic_loss_scale(hp)
        _, after, goods, skips = reference_trajectory(finite, **hp)
        np.testing.assert_array_equal(scales, after)
        assert int(state.good_steps) == goods[-1]
        assert int(state.total_skipped) == skips[-1] == 3
