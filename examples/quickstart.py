"""Quick start: fit a two-layer network to y = sin(3x) with a jitted train step.

Dense layers from `jaxnn.dense_init` (He-normal kernels, zero biases), a tanh
hidden layer, mean squared error, and `chain(clip_by_global_norm, sgd)` with
momentum: the smallest complete training loop.

    python examples/quickstart.py [--steps 500]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from _common import parse_args

import jaxnn


def init_params(key: jax.Array, hidden: int = 32) -> list[dict[str, jax.Array]]:
    k1, k2 = jax.random.split(key)
    return [jaxnn.dense_init(k1, 1, hidden), jaxnn.dense_init(k2, hidden, 1)]


def predict(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    h = jaxnn.tanh(jaxnn.dense(params[0], x))
    return jaxnn.dense(params[1], h)


def main(steps: int = 500, plot=None, *, seed: int = 0, quiet=None) -> dict:
    """Trains the network; returns the first and last mean squared errors.

    `plot` and `quiet` are accepted for the examples' common command line; this
    example draws no figure and shows no progress bar.
    """
    x = jnp.linspace(-1.0, 1.0, 128)[:, None]
    y = jnp.sin(3.0 * x)
    params = init_params(jax.random.key(seed))
    tx = jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.sgd(0.1, momentum=0.9))
    state = tx.init(params)

    def loss_fn(p):
        return jaxnn.mean_squared_error(predict(p, x), y)

    @jax.jit
    def train_step(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s, p)
        return jaxnn.apply_updates(p, updates), s, loss

    first = float(loss_fn(params))
    for _ in range(steps):
        params, state, _ = train_step(params, state)
    last = float(loss_fn(params))
    print(f"device: {jax.devices()[0]}")
    print(f"mse before: {first:.4f}  after {steps} steps: {last:.5f}")
    # The clip's state, first in the chain, keeps the norm it saw before clipping.
    print(f"last pre-clip gradient norm: {float(state[0].norm):.4f}")
    return {"first_loss": first, "last_loss": last}


if __name__ == "__main__":
    args = parse_args(__doc__, steps=500)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
