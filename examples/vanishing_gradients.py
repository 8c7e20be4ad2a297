"""Vanishing gradients: per-layer gradient norms against depth, and the remedies.

A 20-layer MLP (64 units per layer) on the digits inputs, under every pairing of
sigmoid / tanh / ReLU with zero, U(−0.05, 0.05), Xavier and He initialization, and
with the notes' remedies: BatchNorm and skip connections. For each, the gradient
norm of every layer's weights at initialization (`jaxnn.gradient_report` on the
list of layers, input first), the depth attenuation (first layer's norm over the
last's) and the training loss after a few SGD steps. It also reproduces the
notes' arithmetic with a linear chain: 0.5¹⁰ ≈ 0.001 and 1.5¹⁰ ≈ 58.

    python examples/vanishing_gradients.py --plot vanishing.png
"""

from __future__ import annotations

import functools
import time

import _plots
import jax
import jax.numpy as jnp
import numpy as np
from _common import load_digits_unsplit, parse_args
from tqdm import tqdm

import jaxnn

DEPTH, WIDTH = 20, 64

ACTIVATIONS = {"sigmoid": jaxnn.sigmoid, "tanh": jaxnn.tanh, "relu": jaxnn.relu}
INITS = {
    "zero": jaxnn.zeros(),
    "U(±0.05)": jaxnn.uniform(0.05),
    "xavier": jaxnn.xavier_normal(),
    "he": jaxnn.he_normal(),
}
# (activation, init, batchnorm, skip): the remedies on top of the plain grid.
REMEDIES = {
    "sigmoid U(±0.05) +BN": ("sigmoid", "U(±0.05)", True, False),
    "sigmoid U(±0.05) +skip": ("sigmoid", "U(±0.05)", False, True),
    "sigmoid xavier +BN": ("sigmoid", "xavier", True, False),
    "tanh U(±0.05) +skip": ("tanh", "U(±0.05)", False, True),
}


def configs():
    out = {f"{a} {i}": (a, i, False, False) for a in ACTIVATIONS for i in INITS}
    return {**out, **REMEDIES}


def load_data(n=256):
    """The first n digits: gradients at init need one batch, not a split."""
    x, y = load_digits_unsplit()
    return jnp.asarray(x[:n]), jnp.asarray(y[:n])


def init_params(key, init):
    """DEPTH hidden layers (stacked for lax.scan) and a 10-way output layer."""
    keys = jax.random.split(key, DEPTH + 1)
    w = jnp.stack([init(k, (WIDTH, WIDTH)) for k in keys[:DEPTH]])
    bn, state = jaxnn.batchnorm_init(WIDTH)
    return {
        "w": w,
        "b": jnp.zeros((DEPTH, WIDTH)),
        "bn": jax.tree.map(lambda a: jnp.stack([a] * DEPTH), bn),
        "out": jaxnn.dense_init(keys[-1], WIDTH, 10, w_init=init),
    }, jax.tree.map(lambda a: jnp.stack([a] * DEPTH), state)


def make_loss(activation, batchnorm, skip):
    def loss_fn(params, bn_state, x, y):
        def layer(h, p):
            w, b, bn, state = p
            z = h @ w + b[None, :]
            if batchnorm:
                z, state = jaxnn.batchnorm(bn, state, z, training=True)
            a = activation(z)
            return (h + a if skip else a), state

        h, bn_state = jax.lax.scan(
            layer, x, (params["w"], params["b"], params["bn"], bn_state)
        )
        logits = jaxnn.dense(params["out"], h)
        return jnp.mean(
            jaxnn.softmax_cross_entropy_with_integer_labels(logits, y)
        ), bn_state

    return loss_fn


@functools.cache
def make_run(act, batchnorm, skip, steps, learning_rate):
    """One compiled function per network structure (the init only changes values).

    It returns the report of the gradients at init, then runs `steps` SGD steps
    under lax.scan and returns their losses. x and y are arguments, not
    closed-over constants, so they are not baked into the compiled program.
    """
    loss_fn = make_loss(ACTIVATIONS[act], batchnorm, skip)
    tx = jaxnn.sgd(learning_rate, momentum=0.9)

    @jax.jit
    def run(params, bn_state, x, y):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        _, grads = grad_fn(params, bn_state, x, y)
        # The weight matrices only, one entry per layer in network order.
        layers = [grads["w"][i] for i in range(DEPTH)] + [grads["out"]["w"]]
        report = jaxnn.gradient_report(layers)

        def step(carry, _):
            params, bn_state, opt_state = carry
            (loss, bn_state), grads = grad_fn(params, bn_state, x, y)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (jaxnn.apply_updates(params, updates), bn_state, opt_state), loss

        init = (params, bn_state, tx.init(params))
        _, losses = jax.lax.scan(step, init, None, length=max(steps, 1))
        return report, losses

    return run


def run_config(spec, x, y, steps, key, learning_rate):
    act, init, batchnorm, skip = spec
    params, bn_state = init_params(key, INITS[init])
    run = make_run(act, batchnorm, skip, steps, learning_rate)
    report, losses = run(params, bn_state, x, y)
    return report, np.asarray(losses)


def linear_chain(a, depth=11):
    """h_k = a·h_{k-1} + b_k: dL/db_k = a^(depth-k), first/last = a^(depth-1)."""

    def loss(biases):
        h = jnp.ones(())
        for b in biases:
            h = a * h + b
        return h

    grads = jax.grad(loss)([jnp.zeros(()) for _ in range(depth)])
    return jaxnn.gradient_report(grads)


def main(steps=100, plot=None, *, learning_rate=0.01, only=None, seed=0, quiet=None):
    """Returns {"chain 0.5": ..., "chain 1.5": ..., config name: {...}}.

    Args:
      steps: SGD steps per config after the gradients at init are measured.
      plot: path of a figure to save, or None.
      learning_rate: SGD learning rate (momentum 0.9) for every config.
      only: a subset of config names to run (default: all of `configs()`).
      seed: PRNG seed.
      quiet: True hides the progress bar; None shows it on a terminal only.
    """
    device = jax.devices()[0]
    print(f"device: {device} ({device.platform})")
    start = time.perf_counter()
    x, y = load_data()
    results = {}
    for a in (0.5, 1.5):
        r = linear_chain(a)
        results[f"chain {a}"] = {
            "attenuation": float(r.attenuation),
            "expected": a**10,
            "vanishing": bool(r.vanishing),
            "exploding": bool(r.exploding),
        }
    key = jax.random.key(seed)
    todo = {k: v for k, v in configs().items() if only is None or k in only}
    for name, spec in tqdm(todo.items(), desc="configs", disable=quiet):
        report, losses = run_config(spec, x, y, steps, key, learning_rate)
        results[name] = {
            "layer_norms": np.asarray(report.layer_norms),
            "first": float(report.layer_norms[0]),
            "last_hidden": float(report.layer_norms[-2]),
            "attenuation": float(report.attenuation),
            "vanishing": bool(report.vanishing),
            "exploding": bool(report.exploding),
            "initial_loss": float(losses[0]),
            "final_loss": float(losses[-1]),
        }
    seconds = time.perf_counter() - start

    print("linear chain h_k = a·h_(k-1) + b_k, 11 layers: first/last gradient")
    for a in (0.5, 1.5):
        r = results[f"chain {a}"]
        print(
            f"  a = {a}: measured {r['attenuation']:.4g}, a**10 = {r['expected']:.4g}"
            f" (vanishing={r['vanishing']}, exploding={r['exploding']})"
        )
    print(
        f"{DEPTH}-layer MLP on digits, weight-gradient norms at init; "
        f"loss after {steps} SGD steps"
    )
    print(
        f"{'config':<24} {'layer 1':>9} {'layer 20':>9} {'1/20 ratio':>10} "
        f"{'vanish':>6} {'loss 0':>7} {'loss end':>8}"
    )
    for name in todo:
        r = results[name]
        ratio = r["first"] / r["last_hidden"] if r["last_hidden"] else float("nan")
        print(
            f"{name:<24} {r['first']:>9.2e} {r['last_hidden']:>9.2e} "
            f"{ratio:>10.2e} {r['vanishing']!s:>6} {r['initial_loss']:>7.3f} "
            f"{r['final_loss']:>8.3f}"
        )
    print(f"{seconds:.1f} s")

    if plot:
        _plots.vanishing_gradients(plot, results, DEPTH, ACTIVATIONS, INITS, REMEDIES)
    return results


if __name__ == "__main__":
    args = parse_args(__doc__, steps=100)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
