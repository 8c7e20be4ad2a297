"""optax's signatures are part of jaxnn's contract (issue 11, DESIGN "Optimizers").

Every public name of `jaxnn.__all__` that optax also has takes optax's parameters in
optax's positional order, with optax's names, kinds and defaults; parameters that
only jaxnn has are keyword-only and come after. The comparison is derived from
`inspect.signature` of both libraries, so a drift on either side fails here.

The second half checks the *meaning* of the options optax has and jaxnn lacked
(eps_root in adamw, nesterov in the Adam family, eps_in_sqrt and bias_correction in
RMSprop, accumulator_dtype in sgd and trace, axis in AGC, the two softmax
cross-entropies): trajectories and values equal optax's, called by keyword and
positionally (a call copied from optax code means the same thing in jaxnn).
"""

from __future__ import annotations

import inspect
import typing

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxnn
from tests.helpers import (
    TOL,
    assert_trees_close,
    mlp_loss,
    mlp_params,
    scan_trajectories,
)

# Where optax defines the names jaxnn shares. optax.tree is left out on purpose:
# it holds tree utilities whose names collide with transforms without meaning the
# same thing (optax.tree.scale(scalar, tree) is not the transform optax.scale).
OPTAX_NAMESPACES = {
    "optax": optax,
    "optax.losses": optax.losses,
    "optax.transforms": optax.transforms,
    "optax.schedules": optax.schedules,
}

# Exceptions, each with its reason. Keep this list short and every entry honest:
# an entry here means a call copied from optax code raises in jaxnn (never that it
# silently means something else).
ALLOWED_DIFFERENCES = {
    # optax.ClipState is an alias of EmptyState (no fields). jaxnn's ClipState keeps
    # the pre-clip norm for logging (DESIGN, Clipping: "the pre-clip norm is kept in
    # the transform's state"), so `ClipState()` copied from optax raises TypeError
    # (missing `norm`) instead of building a different state.
    "ClipState": "jaxnn's ClipState has a `norm` field; optax's is EmptyState",
    # DESIGN: `microbatch(grad_fn, num_microbatches)` is gradient accumulation inside
    # one step; optax's `microbatch(fun, argnums, microbatch_size, ...)` is a general
    # split-map-accumulate. optax's `microbatch_size` is required, so every valid
    # optax call passes three arguments or names optax's parameters: each raises
    # TypeError in jaxnn (test_optax_microbatch_calls_raise below).
    "microbatch": "jaxnn's is gradient accumulation with two parameters; optax "
    "calls need three and raise",
}


def optax_counterparts(name):
    """The distinct optax objects named `name` in OPTAX_NAMESPACES.

    Type aliases (optax.Schedule is `Callable[[count], value]`, ScalarOrSchedule a
    Union) are annotations, not callables: they have no parameters to compare
    (`inspect.signature(optax.Schedule)` raises), so they are left out.
    """
    found = []
    for where, ns in OPTAX_NAMESPACES.items():
        obj = getattr(ns, name, None)
        if obj is None or typing.get_origin(obj) is not None:
            continue
        if all(obj is not o for _, o in found):
            found.append((where, obj))
    return found


SHARED = sorted(n for n in jaxnn.__all__ if optax_counterparts(n))
POSITIONAL = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
)


def _same_default(a, b):
    if a is b:
        return True
    return type(a) is type(b) and bool(a == b)


def plain(obj):
    """The signature of `obj` without annotations (optax's are long)."""
    sig = inspect.signature(obj)
    return sig.replace(
        parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
        return_annotation=sig.empty,
    )


def signature_problems(jaxnn_obj, optax_obj):
    """Ways jaxnn's signature departs from optax's (an empty list if none)."""
    js = inspect.signature(jaxnn_obj).parameters
    os_ = inspect.signature(optax_obj).parameters
    problems = []

    def describe(p):
        default = "" if p.default is p.empty else f"={p.default!r}"
        return f"{p.name}{default} ({p.kind.description})"

    # Positional parameters (and *args): same order, names, kinds, defaults. The
    # name of a var-positional parameter is not part of the call (no caller can
    # write it), so only its kind and place are compared.
    o_pos = [p for p in os_.values() if p.kind in (*POSITIONAL, p.VAR_POSITIONAL)]
    j_pos = [p for p in js.values() if p.kind in (*POSITIONAL, p.VAR_POSITIONAL)]
    for i, o in enumerate(o_pos):
        if i >= len(j_pos):
            problems.append(f"missing optax parameter #{i} {describe(o)}")
            continue
        j = j_pos[i]
        if o.kind is o.VAR_POSITIONAL:
            if j.kind is not j.VAR_POSITIONAL:
                problems.append(f"#{i}: optax has *{o.name}, jaxnn {describe(j)}")
            continue
        if (j.name, j.kind) != (o.name, o.kind) or not _same_default(
            j.default, o.default
        ):
            problems.append(f"#{i}: optax {describe(o)}, jaxnn {describe(j)}")
    for j in j_pos[len(o_pos) :]:
        problems.append(
            f"extra positional jaxnn parameter {describe(j)}: jaxnn-only "
            "parameters must be keyword-only"
        )

    # Keyword-only parameters: optax's must all exist in jaxnn with its default.
    for o in os_.values():
        if o.kind is not o.KEYWORD_ONLY:
            continue
        j = js.get(o.name)
        if j is None:
            problems.append(f"missing optax keyword-only parameter {describe(o)}")
        elif j.kind is not j.KEYWORD_ONLY or not _same_default(j.default, o.default):
            problems.append(f"optax {describe(o)}, jaxnn {describe(j)}")
    o_var_kw = any(p.kind is p.VAR_KEYWORD for p in os_.values())
    j_var_kw = any(p.kind is p.VAR_KEYWORD for p in js.values())
    if o_var_kw and not j_var_kw:
        problems.append("optax takes **kwargs, jaxnn does not")
    return problems


def test_shared_names_are_found():
    # Guards against a vacuous pass (e.g. a renamed optax namespace).
    expected = {
        "adam",
        "adamw",
        "nadam",
        "rmsprop",
        "sgd",
        "adagrad",
        "scale_by_adam",
        "scale_by_rms",
        "trace",
        "masked",
        "chain",
        "clip_by_global_norm",
        "adaptive_grad_clip",
        "softmax_cross_entropy",
        "cosine_decay_schedule",
        "ScaleByAdamState",
    }
    assert expected <= set(SHARED), sorted(expected - set(SHARED))


def test_allow_list_entries_are_shared_and_still_differ():
    for name in ALLOWED_DIFFERENCES:
        assert name in SHARED, f"{name} is allow-listed but not shared with optax"
        assert any(
            signature_problems(getattr(jaxnn, name), obj)
            for _, obj in optax_counterparts(name)
        ), f"{name} matches optax now: remove it from ALLOWED_DIFFERENCES"


@pytest.mark.parametrize("name", [n for n in SHARED if n not in ALLOWED_DIFFERENCES])
def test_signature_matches_optax(name):
    """jaxnn.<name> takes optax.<name>'s parameters (issue 11, item 1)."""
    report = []
    for where, obj in optax_counterparts(name):
        problems = signature_problems(getattr(jaxnn, name), obj)
        if problems:
            report.append(f"vs {where}.{name}{plain(obj)}:")
            report.extend(f"  - {p}" for p in problems)
    if report:
        pytest.fail(
            f"jaxnn.{name}{plain(getattr(jaxnn, name))}\n" + "\n".join(report),
            pytrace=False,
        )


def test_comparator_catches_known_drifts():
    # The comparator itself must be able to fail: a reordered, renamed,
    # re-defaulted or extra positional parameter is each reported.
    def ref(a, b=1.0, *, k=None):
        pass

    def reordered(b=1.0, a=None, *, k=None):
        pass

    def renamed(a, c=1.0, *, k=None):
        pass

    def redefault(a, b=2.0, *, k=None):
        pass

    def extra_positional(a, b=1.0, x=0, *, k=None):
        pass

    def missing_kw(a, b=1.0):
        pass

    def extra_kw_ok(a, b=1.0, *, k=None, x=0):
        pass

    for bad in (reordered, renamed, redefault, extra_positional, missing_kw):
        assert signature_problems(bad, ref), bad.__name__
    assert not signature_problems(extra_kw_ok, ref)


# ------------------------------------------------------------------ meanings

STEPS = 6


def trajectories_equal(pairs, params=None, steps=STEPS, dtype=jnp.float32, **tol):
    """Runs each (jaxnn tx, optax tx) pair in one compilation; asserts equal params."""
    params = mlp_params(0) if params is None else params
    runs = []
    for tx_j, tx_o in pairs:
        runs += [(tx_j, jaxnn.apply_updates), (tx_o, optax.apply_updates)]
    out = scan_trajectories(runs, params, mlp_loss, steps)
    for k in range(len(pairs)):
        assert_trees_close(out[2 * k], out[2 * k + 1], dtype, **tol)


def test_adamw_eps_root_matches_optax():
    """adamw(eps_root=...) exists and equals optax's (was missing)."""
    trajectories_equal(
        [
            (
                jaxnn.adamw(0.01, eps_root=1e-3, weight_decay=0.1),
                optax.adamw(0.01, eps_root=1e-3, weight_decay=0.1),
            )
        ]
    )


def test_adamw_positional_call_means_what_it_means_in_optax():
    """adamw(lr, b1, b2, eps, 1e-3) sets eps_root as in optax, not weight_decay."""
    args = (0.01, 0.9, 0.99, 1e-6, 1e-3, None, 0.2)
    trajectories_equal([(jaxnn.adamw(*args), optax.adamw(*args))])


@pytest.mark.parametrize("name", ["adam", "adamw", "nadam"])
def test_adam_family_nesterov_matches_optax(name):
    """adam/adamw(nesterov=True) and nadam(nesterov=False) equal optax's."""
    nesterov = name != "nadam"
    kw = {"weight_decay": 0.1} if name == "adamw" else {}
    trajectories_equal(
        [
            (
                getattr(jaxnn, name)(0.01, nesterov=nesterov, **kw),
                getattr(optax, name)(0.01, nesterov=nesterov, **kw),
            )
        ]
    )


def test_scale_by_adam_positional_mu_dtype_as_optax():
    """scale_by_adam's 5th positional parameter is mu_dtype (optax), not nesterov."""
    params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), mlp_params(0))
    tx_j = jaxnn.scale_by_adam(0.9, 0.999, 1e-8, 0.0, jnp.float32)
    tx_o = optax.scale_by_adam(0.9, 0.999, 1e-8, 0.0, jnp.float32)
    s_j, s_o = tx_j.init(params), tx_o.init(params)
    assert jax.tree.map(lambda x: x.dtype, s_j.mu) == jax.tree.map(
        lambda x: x.dtype, s_o.mu
    )
    g = jax.tree.map(lambda x: (x * 0.3 + 0.1).astype(x.dtype), params)
    u_j, _ = tx_j.update(g, s_j, params)
    u_o, _ = tx_o.update(g, s_o, params)
    assert_trees_close(u_j, u_o, jnp.bfloat16)


@pytest.mark.parametrize(
    "kw",
    [
        {"eps_in_sqrt": False},
        {"bias_correction": True},
        {"eps_in_sqrt": False, "bias_correction": True, "centered": True},
        {"bias_correction": True, "momentum": 0.9, "nesterov": True},
    ],
    ids=lambda kw: ",".join(kw),
)
def test_rmsprop_eps_in_sqrt_and_bias_correction_match_optax(kw):
    """rmsprop's eps_in_sqrt and bias_correction exist and equal optax's."""
    trajectories_equal(
        [(jaxnn.rmsprop(0.01, eps=1e-3, **kw), optax.rmsprop(0.01, eps=1e-3, **kw))]
    )


def test_scale_by_rms_eps_in_sqrt_and_bias_correction_match_optax():
    """scale_by_rms(eps_in_sqrt=False, bias_correction=True) equals optax's."""
    kw = {"eps": 1e-3, "eps_in_sqrt": False, "bias_correction": True}
    trajectories_equal(
        [
            (
                jaxnn.chain(jaxnn.scale_by_rms(**kw), jaxnn.scale(-0.01)),
                optax.chain(optax.scale_by_rms(**kw), optax.scale(-0.01)),
            )
        ]
    )


def test_rmsprop_positional_call_means_what_it_means_in_optax():
    """rmsprop(lr, decay, eps, initial_scale, False, True): eps_in_sqrt, centered."""
    args = (0.01, 0.9, 1e-3, 0.0, False, True)
    trajectories_equal([(jaxnn.rmsprop(*args), optax.rmsprop(*args))])


def test_sgd_and_trace_accumulator_dtype_match_optax():
    """sgd(accumulator_dtype=...) and trace(accumulator_dtype=...) as optax."""
    params = mlp_params(0)
    tx_j = jaxnn.sgd(0.05, 0.9, True, jnp.bfloat16)  # optax's positional order
    tx_o = optax.sgd(0.05, 0.9, True, jnp.bfloat16)
    for a, b in zip(
        jax.tree.leaves(tx_j.init(params)),
        jax.tree.leaves(tx_o.init(params)),
        strict=True,
    ):
        assert a.dtype == b.dtype == jnp.bfloat16
    trajectories_equal(
        [
            (tx_j, tx_o),
            (
                jaxnn.chain(
                    jaxnn.trace(0.9, accumulator_dtype=jnp.bfloat16),
                    jaxnn.scale(-0.05),
                ),
                optax.chain(
                    optax.trace(0.9, accumulator_dtype=jnp.bfloat16),
                    optax.scale(-0.05),
                ),
            ),
        ],
        params=params,
        # The trace is stored in bfloat16 by both; optax also rounds decay·trace
        # to bfloat16 before adding the gradient (jaxnn adds in float32), so the
        # runs agree to bfloat16 accuracy.
        dtype=jnp.bfloat16,
    )


def test_adaptive_grad_clip_axis_matches_optax():
    """adaptive_grad_clip(axis=...) and unitwise_norm(x, axis) equal optax's."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    np.testing.assert_allclose(
        jaxnn.unitwise_norm(x, axis=1), optax.transforms.unitwise_norm(x, axis=1)
    )
    # optax applies `axis` to every leaf: no scalar leaves here.
    params = {
        "w1": jnp.asarray(rng.normal(size=(4, 6)), jnp.float32),
        "w2": jnp.asarray(rng.normal(size=(6, 3)), jnp.float32),
    }
    xs = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)

    def loss(p):
        return jnp.mean((jnp.tanh(xs @ p["w1"]) @ p["w2"]) ** 2)

    runs = [
        (
            jaxnn.chain(jaxnn.adaptive_grad_clip(0.05, axis=-1), jaxnn.sgd(0.1)),
            jaxnn.apply_updates,
        ),
        (
            optax.chain(optax.adaptive_grad_clip(0.05, axis=-1), optax.sgd(0.1)),
            optax.apply_updates,
        ),
    ]
    out = scan_trajectories(runs, params, loss, STEPS)
    assert_trees_close(out[0], out[1])


def test_optax_defaults_of_add_decayed_weights_and_scale_by_learning_rate():
    """add_decayed_weights() (0.0) and scale_by_learning_rate(None) as optax."""
    params = mlp_params(0)
    g = jax.tree.map(lambda x: x * 0.5 + 1.0, params)
    for tx_j, tx_o in (
        (jaxnn.add_decayed_weights(), optax.add_decayed_weights()),
        (jaxnn.scale_by_learning_rate(None), optax.scale_by_learning_rate(None)),
    ):
        u_j, _ = tx_j.update(g, tx_j.init(params), params)
        u_o, _ = tx_o.update(g, tx_o.init(params), params)
        assert_trees_close(u_j, u_o)


def test_softmax_cross_entropy_takes_probabilities_as_optax():
    """softmax_cross_entropy(logits, labels) takes probabilities, as optax's."""
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(5, 7)) * 3, jnp.float32)
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(5, 7)), jnp.float32))
    np.testing.assert_allclose(
        jaxnn.softmax_cross_entropy(logits, probs),
        optax.softmax_cross_entropy(logits, probs),
        **TOL["roundings"],
    )
    # optax's axis and where.
    where = jnp.asarray(rng.random(size=(5, 7)) > 0.3)
    np.testing.assert_allclose(
        jaxnn.softmax_cross_entropy(logits.T, probs.T, axis=0, where=where.T),
        optax.softmax_cross_entropy(logits.T, probs.T, axis=0, where=where.T),
        **TOL["roundings"],
    )


def test_softmax_cross_entropy_with_integer_labels_as_optax():
    """softmax_cross_entropy_with_integer_labels exists with optax's meaning."""
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(5, 7)) * 3, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 7, size=(5,)), jnp.int32)
    fn = jaxnn.softmax_cross_entropy_with_integer_labels
    np.testing.assert_allclose(
        fn(logits, labels),
        optax.softmax_cross_entropy_with_integer_labels(logits, labels),
        **TOL["roundings"],
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda f: jaxnn.microbatch(f, 1, 2),
        lambda f: jaxnn.microbatch(f, 0, 4, optax.microbatching.AccumulationType.MEAN),
        lambda f: jaxnn.microbatch(f, 1, microbatch_size=2),
        lambda f: jaxnn.microbatch(f, argnums=1, microbatch_size=2),
        lambda f: jaxnn.microbatch(fun=f, argnums=1, microbatch_size=2),
    ],
)
def test_optax_microbatch_calls_raise(call):
    """microbatch is allow-listed: a call written for optax's raises, never runs."""
    # optax's third parameter has no default: its calls cannot pass two arguments.
    params = inspect.signature(optax.microbatching.microbatch).parameters
    assert params["microbatch_size"].default is inspect.Parameter.empty
    with pytest.raises(TypeError):
        call(lambda p, b: b)
