"""Run by tests/test_optax_findings.py in a subprocess with `jax_enable_x64`.

float64 params must give float64-accurate results:

- the Adam family (adam, adamw, nadam, scale_by_adam, adam with a cosine schedule)
  against its formula written in float64 NumPy, 10 steps on fixed element-wise
  gradients; optax is measured against the same formula as a check of it;
- every other optimizer and clip against optax run in float64;
- the schedules, called with int32 counts as the transforms call them, against
  float64 `math`.

Errors are max |jaxnn − reference| / max |reference| per leaf (per schedule). Prints
one `RESULT {json}` line per check, with `err`; then `DONE`.
"""

import os

os.environ["JAX_ENABLE_X64"] = "1"

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxnn

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
assert jnp.asarray(1.0).dtype == jnp.float64

STEPS = 10
rng = np.random.default_rng(0)
PARAMS = {
    "w": rng.normal(size=(4, 3)),
    "b": rng.normal(size=(3,)) * 0.1,
    "s": np.asarray(0.7),
}


def np_grads(p):
    return {k: np.sin(3 * v) + 0.25 * v + 0.1 for k, v in p.items()}


def jnp_grads(p):
    return {k: jnp.sin(3 * v) + 0.25 * v + 0.1 for k, v in p.items()}


def cosine(init_value, decay_steps, alpha=0.0):
    def schedule(count):
        c = min(count, decay_steps)
        return init_value * (
            (1 - alpha) * 0.5 * (1 + math.cos(math.pi * c / decay_steps)) + alpha
        )

    return schedule


def adam_formula(lr, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, wd=0.0, nadam=False):
    """Params after each step, in float64 NumPy (optax's Adam/AdamW/NAdam)."""
    lr_fn = lr if callable(lr) else (lambda count: lr)
    p = {k: np.array(v, np.float64) for k, v in PARAMS.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    out = []
    for t in range(1, STEPS + 1):
        g = np_grads(p)
        new = {}
        for k in p:
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
            if nadam:
                m_hat = b1 * m[k] / (1 - b1 ** (t + 1)) + (1 - b1) * g[k] / (1 - b1**t)
            else:
                m_hat = m[k] / (1 - b1**t)
            v_hat = v[k] / (1 - b2**t)
            u = m_hat / (np.sqrt(v_hat + eps_root) + eps) + wd * p[k]
            new[k] = p[k] - lr_fn(t - 1) * u
        p = new
        out.append(p)
    return out


def trajectories(runs):
    """Params after each step for several (tx, apply) runs, one compilation."""

    @jax.jit
    def run(params):
        outs = []
        for tx, apply in runs:

            def step(carry, _, tx=tx, apply=apply):
                p, s = carry
                u, s = tx.update(jnp_grads(p), s, p)
                p = apply(p, u)
                return (p, s), p

            outs.append(
                jax.lax.scan(step, (params, tx.init(params)), None, length=STEPS)[1]
            )
        return outs

    params = {k: jnp.asarray(v, jnp.float64) for k, v in PARAMS.items()}
    return [
        [{k: np.asarray(v[i]) for k, v in out.items()} for i in range(STEPS)]
        for out in run(params)
    ]


def rel_err(actual, expected):
    err = 0.0
    for a_step, e_step in zip(actual, expected, strict=True):
        for k in e_step:
            a, e = np.asarray(a_step[k]), np.asarray(e_step[k])
            if a.dtype != np.float64:
                return math.inf  # a float64 run must stay float64
            scale = max(np.max(np.abs(e)), 1e-300)
            err = max(err, float(np.max(np.abs(a - e)) / scale))
    return err


def emit(kind, name, lib, err, **extra):
    result = {"kind": kind, "name": name, "lib": lib, "err": err, **extra}
    print("RESULT " + json.dumps(result), flush=True)


def adam_family():
    cos = cosine(0.05, 8, alpha=0.1)
    cases = {
        "adam": (
            lambda m: m.adam(0.05, b1=0.8, b2=0.99, eps_root=1e-10),
            dict(lr=0.05, b1=0.8, b2=0.99, eps_root=1e-10),
        ),
        "adamw": (
            lambda m: m.adamw(0.05, b2=0.99, weight_decay=0.1),
            dict(lr=0.05, b2=0.99, wd=0.1),
        ),
        "nadam": (lambda m: m.nadam(0.05, b2=0.99), dict(lr=0.05, b2=0.99, nadam=True)),
        "scale_by_adam": (
            lambda m: m.chain(m.scale_by_adam(b2=0.99), m.scale(-0.05)),
            dict(lr=0.05, b2=0.99),
        ),
        "adam_cosine_schedule": (
            lambda m: m.adam(m.cosine_decay_schedule(0.05, 8, alpha=0.1), b2=0.99),
            dict(lr=cos, b2=0.99),
        ),
    }
    runs, expected = [], []
    for make, formula in cases.values():
        runs += [(make(jaxnn), jaxnn.apply_updates), (make(optax), optax.apply_updates)]
        expected.append(adam_formula(**formula))
    outs = trajectories(runs)
    for i, name in enumerate(cases):
        emit("adam_family", name, "jaxnn", rel_err(outs[2 * i], expected[i]))
        emit("adam_family", name, "optax", rel_err(outs[2 * i + 1], expected[i]))


def against_optax():
    cases = {
        "sgd_momentum": lambda m: m.sgd(0.05, momentum=0.9),
        "nesterov": lambda m: m.sgd(0.05, momentum=0.9, nesterov=True),
        "adagrad": lambda m: m.adagrad(0.05),
        "rmsprop_centered_momentum": lambda m: m.rmsprop(
            0.01, centered=True, momentum=0.9
        ),
        "clip_by_global_norm": lambda m: m.chain(
            m.clip_by_global_norm(0.5), m.sgd(0.1)
        ),
        "adaptive_grad_clip": lambda m: m.chain(m.adaptive_grad_clip(0.05), m.sgd(0.1)),
        "clip_by_value": lambda m: m.chain(
            m.clip_by_value(0.3) if m is jaxnn else m.clip(0.3), m.sgd(0.1)
        ),
    }
    runs = []
    for make in cases.values():
        runs += [(make(jaxnn), jaxnn.apply_updates), (make(optax), optax.apply_updates)]
    outs = trajectories(runs)
    for i, name in enumerate(cases):
        emit("vs_optax", name, "jaxnn", rel_err(outs[2 * i], outs[2 * i + 1]))


def schedules():
    counts = list(range(0, 1201, 7))
    cases = {
        "constant_schedule": (
            jaxnn.constant_schedule(0.1234567890123),
            lambda c: 0.1234567890123,
        ),
        "cosine_decay_schedule": (
            jaxnn.cosine_decay_schedule(0.1, 1000, alpha=0.05),
            cosine(0.1, 1000, alpha=0.05),
        ),
        "cosine_decay_schedule_exponent": (
            jaxnn.cosine_decay_schedule(0.1, 1000, exponent=2.0),
            lambda c: 0.1 * (0.5 * (1 + math.cos(math.pi * min(c, 1000) / 1000))) ** 2,
        ),
        "warmup_cosine_decay_schedule": (
            jaxnn.warmup_cosine_decay_schedule(0.0, 0.1, 100, 1000, end_value=1e-3),
            lambda c: (
                0.1 * c / 100
                if c < 100
                else 1e-3
                + (0.1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * min(c - 100, 900) / 900))
            ),
        ),
        "exponential_decay": (
            jaxnn.exponential_decay(0.1, 300, 0.37, transition_begin=50),
            lambda c: 0.1 if c <= 50 else 0.1 * 0.37 ** ((c - 50) / 300),
        ),
        "exponential_decay_staircase": (
            jaxnn.exponential_decay(0.1, 300, 0.37, staircase=True),
            lambda c: 0.1 * 0.37 ** math.floor(c / 300),
        ),
        "piecewise_constant_schedule": (
            jaxnn.piecewise_constant_schedule(0.1, {300: 0.3, 700: 0.7}),
            lambda c: 0.1 * (0.3 if c >= 300 else 1) * (0.7 if c >= 700 else 1),
        ),
    }
    for name, (schedule, exact) in cases.items():
        want = np.asarray([exact(c) for c in counts], np.float64)
        libs = {"jaxnn": schedule}
        args = SCHEDULE_ARGS.get(name)
        if args is not None:
            libs["optax"] = getattr(optax, args[0])(*args[1], **args[2])
        for lib, fn in libs.items():
            got = [jnp.asarray(fn(jnp.asarray(c, jnp.int32))) for c in counts]
            dtypes = sorted({str(g.dtype) for g in got})
            got = np.asarray([np.asarray(g, np.float64) for g in got])
            err = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
            emit("schedule", name, lib, err, dtypes=dtypes)


# optax's twins of the schedules (for the record: optax is not float64-accurate
# everywhere either; only jaxnn's results are asserted).
SCHEDULE_ARGS = {
    "cosine_decay_schedule": ("cosine_decay_schedule", (0.1, 1000), {"alpha": 0.05}),
    "warmup_cosine_decay_schedule": (
        "warmup_cosine_decay_schedule",
        (0.0, 0.1, 100, 1000),
        {"end_value": 1e-3},
    ),
    "exponential_decay": (
        "exponential_decay",
        (0.1, 300, 0.37),
        {"transition_begin": 50},
    ),
}


if __name__ == "__main__":
    adam_family()
    against_optax()
    schedules()
    print("DONE", flush=True)
