"""Quick start: fit a tiny two-layer network to y = sin(3x) with a jitted train step.

Run: python examples/quickstart.py [--steps 500]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

import jaxnn


def init_params(key: jax.Array, hidden: int = 32) -> dict:
    k1, k2 = jax.random.split(key)
    scale1, scale2 = jnp.sqrt(2.0), jnp.sqrt(2.0 / hidden)
    return {
        "w1": scale1 * jax.random.normal(k1, (1, hidden)),
        "b1": jnp.zeros(hidden),
        "w2": scale2 * jax.random.normal(k2, (hidden, 1)),
        "b2": jnp.zeros(1),
    }


def predict(params: dict, x: jax.Array) -> jax.Array:
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def main(steps: int = 500, seed: int = 0) -> dict:
    """Trains the network and returns the first and last mean squared errors."""
    x = jnp.linspace(-1.0, 1.0, 128)[:, None]
    y = jnp.sin(3.0 * x)
    params = init_params(jax.random.key(seed))
    tx = jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.sgd(0.1, momentum=0.9))
    state = tx.init(params)

    def loss_fn(p):
        return jnp.mean((predict(p, x) - y) ** 2)

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
    print(f"last pre-clip gradient norm: {float(state[0].norm):.4f}")
    return {"first_loss": first, "last_loss": last}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=500)
    main(parser.parse_args().steps)
