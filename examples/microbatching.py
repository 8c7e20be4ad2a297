"""Microbatching: the same gradient in less memory, by splitting the batch.

`jaxnn.microbatch(grad_fn, n)` runs `grad_fn` on n pieces of the batch one after the
other (a `lax.scan`) and averages the results, so the compiled step holds the
activations of one piece at a time. This example compiles the gradient step of an
MLP (64 → 1024 → 1024 → 1024 → 10, ReLU, batch 4096: about 16 MB of activations
per hidden layer) for n = 1, 2, 4, ..., 64 and reads XLA's own account of the
step's scratch memory (`compiled.memory_analysis().temp_size_in_bytes`), and
checks that every n gives the full-batch gradient to float32 rounding.

Measured on a CPU (XLA's memory figures do not depend on the machine's speed;
rel. error is max |g_n − g_1| / max |g_1| over the leaves):

    pieces   scratch MB   rel. error     loss
         1         96.0     0         3.2019
         2         52.6     2.4e-07   3.2019
         4         28.3     2.2e-07   3.2019
         8         16.1     2.2e-07   3.2019
        16         10.1     3.0e-07   3.2019
        32          7.0     3.7e-07   3.2019
        64          5.5     4.4e-07   3.2019

Scratch memory falls about n-fold until the per-piece activations are no longer
the largest buffers (the gradient accumulator, 8.7 MB of float32, is not divided);
the gradients differ from the full batch's by a few float32 roundings of the sums.

    python examples/microbatching.py --plot microbatching.png
"""

from __future__ import annotations

import time

import _plots
import jax
import jax.numpy as jnp
from _common import mlp_init, mlp_loss, parse_args

import jaxnn

SIZES = (64, 1024, 1024, 1024, 10)


def loss_fn(params, batch):
    return mlp_loss(params, batch["x"], batch["y"])


def main(
    steps=None,
    plot=None,
    *,
    batch_size=4096,
    pieces=(1, 2, 4, 8, 16, 32, 64),
    seed=0,
    quiet=None,
):
    """Compiles the step for each number of pieces; returns memory and errors.

    `steps` is unused (every example takes it); `quiet` too (nothing runs long).
    """
    del steps, quiet
    key_p, key_x, key_y = jax.random.split(jax.random.key(seed), 3)
    params = mlp_init(key_p, SIZES)
    batch = {
        "x": jax.random.normal(key_x, (batch_size, SIZES[0])),
        "y": jax.random.randint(key_y, (batch_size,), 0, SIZES[-1]),
    }
    grad_fn = jax.value_and_grad(loss_fn)
    start = time.perf_counter()
    results = {"pieces": [], "scratch_mb": [], "relative_error": [], "loss": []}
    full = None
    for n in pieces:
        step = jax.jit(jaxnn.microbatch(grad_fn, n))
        compiled = step.lower(params, batch).compile()
        scratch = compiled.memory_analysis().temp_size_in_bytes / 2**20
        loss, grads = compiled(params, batch)
        if full is None:
            full = grads
        err = max(
            float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
            for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(full), strict=True)
        )
        for k, v in (
            ("pieces", n),
            ("scratch_mb", scratch),
            ("relative_error", err),
            ("loss", float(loss)),
        ):
            results[k].append(v)
    print(f"{'pieces':>6} {'scratch MB':>10} {'rel. error':>10} {'loss':>8}")
    for n, mb, err, loss in zip(*results.values(), strict=True):
        print(f"{n:>6} {mb:>10.1f} {err:>10.2e} {loss:>8.4f}")
    print(f"{time.perf_counter() - start:.1f} s")
    if plot:
        _plots.microbatching(plot, results, batch_size)
    return results


if __name__ == "__main__":
    args = parse_args(__doc__, steps=0)
    main(plot=args.plot, seed=args.seed)
