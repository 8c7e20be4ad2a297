"""All nine optimizers on the Rosenbrock valley and on an MLP for digits.

Rosenbrock f(x, y) = (1 − x)² + 100 (y − x²)², from (−1.5, 2): a narrow curved
valley where plain gradient descent crawls, momentum and the adaptive methods
move faster. On Rosenbrock the gradient is exact, so `sgd` gets the gradient plus
Gaussian noise (σ = 1), standing in for mini-batch noise; `gd` gets it exact. On
digits, `gd` takes the whole training set each step and the others mini-batches
of 64. Each optimizer has its own learning rate (a fair comparison needs each one
near its best; the values in `ROSENBROCK_LR` and `DIGITS_LR` come from a small
sweep by hand). The table gives
the steps each needs to reach a loss threshold.

    python examples/compare_optimizers.py --plot optimizers.png
"""

from __future__ import annotations

import time

import _plots
import jax
import jax.numpy as jnp
import numpy as np
from _common import load_digits, parse_args
from tqdm import tqdm

import jaxnn

NAMES = (
    "gd",
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "nadam",
)
ROSENBROCK_LR = {
    "gd": 1e-3,
    "sgd": 1e-3,
    "momentum": 1e-3,
    "nesterov": 1e-3,
    "adagrad": 1.0,
    "rmsprop": 3e-3,
    "adam": 0.05,
    "adamw": 0.05,
    "nadam": 0.05,
}
DIGITS_LR = {
    "gd": 0.1,
    "sgd": 0.1,
    "momentum": 0.05,
    "nesterov": 0.05,
    "adagrad": 0.1,
    "rmsprop": 1e-3,
    "adam": 3e-3,
    "adamw": 3e-3,
    "nadam": 3e-3,
}
ROSENBROCK_THRESHOLD = 1e-3
DIGITS_THRESHOLD = 0.1


def optimizer(name, learning_rate):
    """The jaxnn optimizer `name`; momentum-style ones with β = 0.9."""
    if name == "adamw":
        # A weight decay on x, y would move the minimum: keep it small.
        return jaxnn.adamw(learning_rate, weight_decay=1e-4)
    return getattr(jaxnn, name)(learning_rate)


def rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def run_rosenbrock(name, steps, key):
    tx = optimizer(name, ROSENBROCK_LR[name])
    noise = 1.0 if name == "sgd" else 0.0

    @jax.jit
    def run(p0, key):
        def step(carry, k):
            p, state = carry
            loss, g = jax.value_and_grad(rosenbrock)(p)
            g = g + noise * jax.random.normal(k, g.shape)
            updates, state = tx.update(g, state, p)
            return (jaxnn.apply_updates(p, updates), state), (p, loss)

        keys = jax.random.split(key, steps)
        _, (path, losses) = jax.lax.scan(step, (p0, tx.init(p0)), keys)
        return path, losses

    path, losses = run(jnp.array([-1.5, 2.0]), key)
    return np.asarray(path), np.asarray(losses)


def init_mlp(key):
    k1, k2 = jax.random.split(key)
    return [jaxnn.dense_init(k1, 64, 128), jaxnn.dense_init(k2, 128, 10)]


def mlp_loss(params, x, y):
    h = jaxnn.relu(jaxnn.dense(params[0], x))
    logits = jaxnn.dense(params[1], h)
    return jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, y))


def run_digits(name, steps, data, key, batch_size=64):
    tx = optimizer(name, DIGITS_LR[name])
    n = data[0].shape[0]
    # gd sees the whole training set every step, the others mini-batches.
    if name == "gd":
        idx = jnp.broadcast_to(jnp.arange(n), (steps, n))
    else:
        keys = jax.random.split(key, steps)
        idx = jax.vmap(lambda k: jax.random.choice(k, n, (batch_size,), False))(keys)

    @jax.jit
    def run(params, idx, x_tr, y_tr, x_te, y_te):
        def step(carry, i):
            params, state = carry
            grads = jax.grad(mlp_loss)(params, x_tr[i], y_tr[i])
            updates, state = tx.update(grads, state, params)
            params = jaxnn.apply_updates(params, updates)
            # Full training-set loss after the step: the curve the table reads.
            return (params, state), mlp_loss(params, x_tr, y_tr)

        (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), idx)
        logits = jaxnn.dense(params[1], jaxnn.relu(jaxnn.dense(params[0], x_te)))
        return losses, jnp.mean(jnp.argmax(logits, -1) == y_te)

    losses, acc = run(init_mlp(jax.random.key(0)), idx, *data)
    return np.asarray(losses), float(acc)


def steps_to(losses, threshold):
    """1-based index of the first loss below threshold, or None."""
    below = np.flatnonzero(np.asarray(losses) < threshold)
    return int(below[0]) + 1 if below.size else None


def main(steps=2000, plot=None, *, digits_steps=None, seed=0, quiet=None):
    """Returns {name: {"rosenbrock_loss", "rosenbrock_steps", "digits_loss", ...}}.

    Args:
      steps: optimizer steps on Rosenbrock.
      plot: path of a figure to save, or None.
      digits_steps: steps on digits; default steps // 4.
      seed: PRNG seed.
      quiet: True hides the progress bar; None shows it on a terminal only.
    """
    device = jax.devices()[0]
    print(f"device: {device} ({device.platform})")
    digits_steps = digits_steps or max(1, steps // 4)
    data = tuple(jnp.asarray(a) for a in load_digits(0.2, seed=seed))
    key = jax.random.key(seed)
    results, paths, curves = {}, {}, {}
    start = time.perf_counter()
    for name in tqdm(NAMES, desc="optimizers", disable=quiet):
        path, r_losses = run_rosenbrock(name, steps, key)
        d_losses, acc = run_digits(name, digits_steps, data, key)
        paths[name], curves[name] = path, d_losses
        results[name] = {
            "rosenbrock_loss": float(rosenbrock(path[-1])),
            "rosenbrock_steps": steps_to(r_losses, ROSENBROCK_THRESHOLD),
            "digits_loss": float(d_losses[-1]),
            "digits_steps": steps_to(d_losses, DIGITS_THRESHOLD),
            "digits_test_accuracy": acc,
        }
    seconds = time.perf_counter() - start

    print(
        f"{'optimizer':<10} {'lr (R)':>7} {'Rosenbrock':>11} "
        f"{f'steps<{ROSENBROCK_THRESHOLD:g}':>11} {'lr (D)':>7} {'digits loss':>11} "
        f"{f'steps<{DIGITS_THRESHOLD:g}':>9} {'test acc':>8}"
    )
    for name, r in results.items():
        rs = r["rosenbrock_steps"] or f">{steps}"
        ds = r["digits_steps"] or f">{digits_steps}"
        print(
            f"{name:<10} {ROSENBROCK_LR[name]:>7g} {r['rosenbrock_loss']:>11.2e} "
            f"{rs!s:>11} {DIGITS_LR[name]:>7g} {r['digits_loss']:>11.4f} "
            f"{ds!s:>9} {r['digits_test_accuracy']:>8.2%}"
        )
    print(f"{seconds:.1f} s")

    if plot:
        _plots.compare_optimizers(plot, results, paths, curves, steps, DIGITS_THRESHOLD)
    return results


if __name__ == "__main__":
    args = parse_args(__doc__, steps=2000)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
