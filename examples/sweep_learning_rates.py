"""Sweep 16 learning rates in one compiled program with `jax.vmap`.

optax bakes a Python-float learning rate into the compiled step, so every value of
a sweep compiles again and never hits the persistent compilation cache (optax
issue 577). A jaxnn optimizer can take the learning rate as an array argument of
the jitted step instead: `jax.vmap` over a vector of rates then trains the digits
MLP of `train_digits.py` for every rate at once, with one compilation. The script
checks that it compiled once, prints the test accuracy per rate, and times the
sweep against 16 sequential runs that each build the optimizer with a Python
float (and so each compile), as a sweep with optax does today.

Both train the same models: after the first step the params are equal. Later
they drift apart at the rounding level (batched and single matmuls round
differently), and at high rates visibly: the dense biases before each BatchNorm
have a true gradient of zero, so Adam turns their rounding noise into steps of
size ~lr, and long runs at large rates end in different (equally good) models.

    python examples/sweep_learning_rates.py               # 16 rates, 1500 steps
    python examples/sweep_learning_rates.py --steps 300 --plot sweep.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_digits
from train_digits import forward, init_model, kernels_only

import jaxnn


def make_optimizer(steps, peak_lr):
    """`train_digits.make_optimizer`, with a peak learning rate that may be traced.

    The warmup-cosine schedule is built once with peak 1 and end 1e-2 and scaled
    by `peak_lr` (the same values as a schedule with peak `peak_lr` and end
    `peak_lr * 1e-2`), so `peak_lr` enters only as a multiplier.
    """
    unit = jaxnn.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=1.0,
        warmup_steps=max(1, steps // 10),
        decay_steps=max(steps, 2),
        end_value=1e-2,
    )
    return jaxnn.chain(
        jaxnn.clip_by_global_norm(1.0),
        jaxnn.adamw(
            lambda count: peak_lr * unit(count), weight_decay=1e-4, mask=kernels_only
        ),
    )


def make_functions(steps, traces, rate=0.2):
    """One training step and one evaluation, as functions of the learning rate."""

    def loss_fn(params, bn_state, x, y, key):
        logits, bn_state = forward(params, bn_state, x, key, training=True, rate=rate)
        return jnp.mean(
            jaxnn.softmax_cross_entropy_with_integer_labels(logits, y)
        ), bn_state

    def train_step(params, bn_state, opt_state, x, y, key, lr):
        traces.append(None)  # runs once per trace, i.e. once per compilation
        tx = make_optimizer(steps, lr)
        (_, bn_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, bn_state, x, y, key
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        return jaxnn.apply_updates(params, updates), bn_state, opt_state

    def accuracy(params, bn_state, x, y):
        logits, _ = forward(
            params, bn_state, x, jax.random.key(0), training=False, rate=rate
        )
        return jnp.mean(jnp.argmax(logits, -1) == y)

    return train_step, accuracy


def batch_indices(steps, n, batch_size, seed):
    """The batches of `train_digits.main`: a fresh permutation every epoch."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    out = []
    for step in range(steps):
        lo = (step * batch_size) % n
        if lo + batch_size > n:
            order = rng.permutation(n)
            lo = 0
        out.append(order[lo : lo + batch_size])
    return out


def run_sweep(rates, steps, data, batches, seed, quiet):
    """All rates at once: vmap over the rate (and over each rate's model)."""
    x_train, y_train, x_test, y_test = data
    key, init_key = jax.random.split(jax.random.key(seed))
    params, bn_state = init_model(init_key)
    traces = []
    train_step, accuracy = make_functions(steps, traces)
    k = len(rates)

    def stack(tree):
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (k, *x.shape)), tree)

    lrs = jnp.asarray(rates, jnp.float32)
    start = time.perf_counter()
    params, bn_state = stack(params), stack(bn_state)
    opt_state = jax.vmap(lambda p, lr: make_optimizer(steps, lr).init(p))(params, lrs)
    step = jax.jit(
        jax.vmap(train_step, in_axes=(0, 0, 0, None, None, None, 0)),
        donate_argnums=(0, 1, 2),
    )
    first = 0.0
    for i, idx in enumerate(tqdm(batches, desc="sweep", disable=quiet)):
        params, bn_state, opt_state = step(
            params,
            bn_state,
            opt_state,
            x_train[idx],
            y_train[idx],
            jax.random.fold_in(key, i),
            lrs,
        )
        if i == 0:  # the first call compiles: time it to the end of the step
            jax.block_until_ready(params)
            first = time.perf_counter() - start
    acc = jax.jit(jax.vmap(accuracy, in_axes=(0, 0, None, None)))(
        params, bn_state, x_test, y_test
    )
    acc = np.asarray(acc)  # blocks until the device has finished
    return acc, time.perf_counter() - start, first, len(traces)


def run_sequential(rates, steps, data, batches, seed, quiet):
    """One run per rate, each with a Python-float rate: each compiles its step."""
    x_train, y_train, x_test, y_test = data
    traces = []
    train_step, accuracy = make_functions(steps, traces)
    eval_fn = jax.jit(accuracy)
    accs = []
    first = 0.0
    start = time.perf_counter()
    for lr in tqdm(rates, desc="sequential", disable=quiet):
        run_start = time.perf_counter()
        key, init_key = jax.random.split(jax.random.key(seed))
        params, bn_state = init_model(init_key)
        lr = float(lr)
        opt_state = make_optimizer(steps, lr).init(params)
        # What a sweep over optax optimizers does: the rate is a constant of the
        # compiled program, so each value is a new program.
        step = jax.jit(
            lambda p, s, o, x, y, k, lr=lr: train_step(p, s, o, x, y, k, lr),
            donate_argnums=(0, 1, 2),
        )
        for i, idx in enumerate(batches):
            params, bn_state, opt_state = step(
                params,
                bn_state,
                opt_state,
                x_train[idx],
                y_train[idx],
                jax.random.fold_in(key, i),
            )
            if i == 0:
                jax.block_until_ready(params)
                first += time.perf_counter() - run_start
        accs.append(float(eval_fn(params, bn_state, x_test, y_test)))
    return np.asarray(accs), time.perf_counter() - start, first, len(traces)


def main(
    steps=1500,
    plot=None,
    *,
    num_rates=16,
    low=1e-4,
    high=1.0,
    batch_size=128,
    seed=0,
    sequential=True,
    quiet=None,
):
    """Runs the sweep (and the sequential baseline); returns the figures."""
    device = jax.devices()[0]
    print(f"device: {device} ({device.platform})")
    data = load_digits(0.2, seed=seed, stratify=True)  # train_digits.main's split
    batches = batch_indices(steps, len(data[0]), batch_size, seed)
    rates = np.geomspace(low, high, num_rates).astype(np.float32)

    acc, sweep_s, sweep_first, sweep_traces = run_sweep(
        rates, steps, data, batches, seed, quiet
    )
    assert sweep_traces == 1, f"the vmapped step compiled {sweep_traces} times"
    result = {
        "rates": rates.tolist(),
        "test_accuracy": acc.tolist(),
        "sweep_seconds": sweep_s,
        "sweep_first_step_seconds": sweep_first,
        "sweep_compilations": sweep_traces,
        "device": str(device),
    }
    if sequential:
        seq_acc, seq_s, seq_first, seq_traces = run_sequential(
            rates, steps, data, batches, seed, quiet
        )
        result.update(
            sequential_accuracy=seq_acc.tolist(),
            sequential_seconds=seq_s,
            sequential_first_step_seconds=seq_first,
            sequential_compilations=seq_traces,
            speedup=seq_s / sweep_s,
            max_accuracy_difference=float(np.max(np.abs(seq_acc - acc))),
        )

    print(f"{'learning rate':>13} {'test acc':>8}" + ("  sequential" * sequential))
    for i, lr in enumerate(rates):
        row = f"{lr:>13.2e} {acc[i]:>8.2%}"
        if sequential:
            row += f"  {seq_acc[i]:>10.2%}"
        print(row)
    best = int(np.argmax(acc))
    print(f"best: {rates[best]:.2e} ({acc[best]:.2%})")
    print(
        f"vmapped sweep: {sweep_s:.1f} s, {sweep_traces} compilation "
        f"(first step, compiling: {sweep_first:.1f} s)"
    )
    if sequential:
        print(
            f"{num_rates} sequential runs: {seq_s:.1f} s, {seq_traces} compilations "
            f"(first steps, compiling: {seq_first:.1f} s in all); "
            f"{seq_s / sweep_s:.1f}x the sweep's time"
        )
    if plot:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(rates, acc, "o-", label="vmapped sweep")
        if sequential:
            ax.plot(rates, seq_acc, "x", label="sequential runs")
        ax.set(
            xscale="log",
            xlabel="peak learning rate (AdamW, warmup-cosine)",
            ylabel="test accuracy",
            title=f"digits MLP, {steps} steps",
        )
        ax.legend()
        fig.tight_layout()
        fig.savefig(plot, dpi=90)
        plt.close(fig)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--rates", type=int, default=16, help="number of rates")
    parser.add_argument("--plot", help="save accuracy vs learning rate to this path")
    parser.add_argument(
        "--no-sequential", action="store_true", help="skip the sequential baseline"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()
    main(
        args.steps,
        args.plot,
        num_rates=args.rates,
        sequential=not args.no_sequential,
        quiet=True if args.quiet else None,
    )
