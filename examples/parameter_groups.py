"""Parameter groups: weight decay on the kernels only, with `partition`.

Weight decay is meant to shrink the weights that multiply inputs (the kernels);
applied to the biases too, it pulls every bias toward 0 whatever the data says
(PyTorch users make two `param_groups` for this). This example trains the digits
MLP (64 → 128 → 128 → 10, ReLU, batch 128, AdamW with learning rate 3e-3 and a
strong decoupled weight decay of 0.3, so that the effect is visible in 600 steps)
three ways:

    (a) adamw(3e-3, weight_decay=0.3)               every leaf decays
    (b) partition({"decay": adamw(3e-3, weight_decay=0.3), "no_decay": adam(3e-3)},
                  label_by_path([(r"/w$", "decay")], "no_decay"))
    (c) adamw(3e-3, weight_decay=0.3, mask=label_by_path([(r"/w$", True)], False))

(b) and (c) are two spellings of the same optimizer: the script checks that they
give the same params to float32 rounding. The figure shows the training loss and
the norm of all biases: under (a) the biases shrink by a factor (1 − 3e-3 · 0.3)
every step on top of what the gradient does; under (b) they are free.

    python examples/parameter_groups.py --plot parameter_groups.png
"""

from __future__ import annotations

import time

import _plots
import jax
import jax.numpy as jnp
import numpy as np
from _common import digits_and_batches, mlp_forward, mlp_init, mlp_loss, parse_args
from tqdm import tqdm

import jaxnn

SIZES = (64, 128, 128, 10)
LR, DECAY = 3e-3, 0.3


def init(key):
    params = mlp_init(key, SIZES)
    # Non-zero biases, as after pretraining, so that decaying them shows.
    return [{"w": p["w"], "b": jnp.full_like(p["b"], 0.5)} for p in params]


def optimizers():
    kernels = jaxnn.label_by_path([(r"/w$", "decay")], "no_decay")
    kernels_only = jaxnn.label_by_path([(r"/w$", True)], False)
    return {
        "(a) decay on every leaf": jaxnn.adamw(LR, weight_decay=DECAY),
        "(b) partition: kernels only": jaxnn.partition(
            {"decay": jaxnn.adamw(LR, weight_decay=DECAY), "no_decay": jaxnn.adam(LR)},
            kernels,
        ),
        "(c) adamw(mask=...)": jaxnn.adamw(LR, weight_decay=DECAY, mask=kernels_only),
    }


def bias_norm(params):
    return jnp.sqrt(sum(jnp.sum(p["b"] ** 2) for p in params))


def main(steps=600, plot=None, *, batch_size=128, seed=0, quiet=None):
    """Trains with each optimizer; returns losses, bias norms and accuracies."""
    (x_train, y_train, x_test, y_test), batches = digits_and_batches(
        steps, batch_size, seed
    )
    results, curves = {}, {}
    start = time.perf_counter()
    for name, tx in optimizers().items():
        params = init(jax.random.key(seed))
        opt_state = tx.init(params)

        @jax.jit
        def step(params, opt_state, x, y, tx=tx):
            loss, grads = jax.value_and_grad(mlp_loss)(params, x, y)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = jaxnn.apply_updates(params, updates)
            return params, opt_state, loss, bias_norm(params)

        history = []
        for idx in tqdm(batches, desc=name, disable=quiet):
            params, opt_state, loss, norm = step(
                params, opt_state, x_train[idx], y_train[idx]
            )
            history.append((loss, norm))
        losses, norms = np.asarray(jax.device_get(history)).T
        accuracy = jnp.mean(jnp.argmax(mlp_forward(params, x_test), -1) == y_test)
        results[name] = {
            "test_accuracy": float(accuracy),
            "final_loss": float(np.mean(losses[-50:])),
            "bias_norm_first": float(bias_norm(init(jax.random.key(seed)))),
            "bias_norm_last": float(norms[-1]),
            "params": params,
        }
        curves[name] = (losses, norms)
    b, c = (results[n]["params"] for n in list(results)[1:])
    diff = max(
        float(jnp.max(jnp.abs(u - v)))
        for u, v in zip(jax.tree.leaves(b), jax.tree.leaves(c), strict=True)
    )
    print(f"{'optimizer':<30} {'test acc':>8} {'loss (last 50)':>14} {'‖biases‖':>14}")
    for name, r in results.items():
        norms = f"{r['bias_norm_first']:.2f} → {r['bias_norm_last']:.2f}"
        print(
            f"{name:<30} {r['test_accuracy']:>8.2%} {r['final_loss']:>14.4f} "
            f"{norms:>14}"
        )
    print(f"(b) and (c): max |params difference| {diff:.2e}")
    print(f"{time.perf_counter() - start:.1f} s")
    if plot:
        _plots.parameter_groups(plot, {n: curves[n] for n in list(curves)[:2]})
    for r in results.values():
        del r["params"]
    return {"runs": results, "partition_vs_mask_max_difference": diff}


if __name__ == "__main__":
    args = parse_args(__doc__, steps=600)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
