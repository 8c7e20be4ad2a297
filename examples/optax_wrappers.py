"""optax's wrappers around a jaxnn optimizer: they take jaxnn transforms unchanged.

A jaxnn transform is an optax `GradientTransformation` in all but name (the same
`(init, update)` fields and call signatures), so optax's wrappers take it as it is.
This example trains the digits MLP (64 → 128 → 128 → 10, ReLU, batch 128) with
`jaxnn.adam(3e-3)` alone and inside five optax wrappers:

    inject_hyperparams   the learning rate lives in the state: cut to 3e-4 half-way
    MultiSteps           one Adam step per 4 batches (gradients averaged), so the
                         run makes a quarter of the updates on 4x the data each
    reduce_on_plateau    chained after Adam: scales the updates by 0.3 when the
                         loss (passed as `value=`, averaged over windows of 10
                         steps) has not improved for 2 windows; floor 1e-2
    apply_if_finite      every 50th gradient is NaN; the wrapper skips those steps
    lookahead            slow weights pulled halfway to the fast ones every 5 steps

The figure shows each run's training loss, and the learning-rate factor that
inject_hyperparams and reduce_on_plateau apply, read from their states.

    python examples/optax_wrappers.py --plot optax_wrappers.png
"""

from __future__ import annotations

import time

import _plots
import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import digits_and_batches, mlp_forward, mlp_init, mlp_loss, parse_args
from tqdm import tqdm

import jaxnn

SIZES = (64, 128, 128, 10)
LR = 3e-3


def optimizers():
    return {
        "jaxnn.adam": jaxnn.adam(LR),
        "inject_hyperparams": optax.inject_hyperparams(jaxnn.adam)(learning_rate=LR),
        "MultiSteps (k=4)": optax.MultiSteps(jaxnn.adam(LR), every_k_schedule=4),
        "reduce_on_plateau": optax.chain(
            jaxnn.adam(LR),
            optax.contrib.reduce_on_plateau(
                factor=0.3, patience=2, cooldown=2, accumulation_size=10, min_scale=1e-2
            ),
        ),
        "apply_if_finite": optax.apply_if_finite(jaxnn.adam(LR), 3),
        "lookahead": optax.lookahead(jaxnn.adam(LR), 5, 0.5),
    }


def lr_factor(name, opt_state):
    """The factor the wrapper applies to the learning rate (1 for the others)."""
    if name == "inject_hyperparams":
        return opt_state.hyperparams["learning_rate"] / LR
    if name == "reduce_on_plateau":
        return opt_state[1].scale
    return jnp.ones(())


def main(steps=600, plot=None, *, batch_size=128, seed=0, quiet=None):
    """Trains with jaxnn.adam in each wrapper; returns losses and accuracies."""
    (x_train, y_train, x_test, y_test), batches = digits_and_batches(
        steps, batch_size, seed
    )
    results, curves = {}, {}
    start = time.perf_counter()
    for name, tx in optimizers().items():
        params = mlp_init(jax.random.key(seed), SIZES)
        if name == "lookahead":
            params = optax.LookaheadParams.init_synced(params)
        opt_state = tx.init(params)

        @jax.jit
        def step(params, opt_state, x, y, poison, tx=tx, name=name):
            fast = params.fast if name == "lookahead" else params
            loss, grads = jax.value_and_grad(mlp_loss)(fast, x, y)
            # A NaN gradient now and then: only apply_if_finite survives it, so
            # only its run gets one.
            bad = poison & (name == "apply_if_finite")
            grads = jax.tree.map(lambda g: jnp.where(bad, jnp.nan, g), grads)
            # reduce_on_plateau reads the loss from `value`; lookahead takes no
            # extra arguments.
            extra = {} if name == "lookahead" else {"value": loss}
            updates, opt_state = tx.update(grads, opt_state, params, **extra)
            params = optax.apply_updates(params, updates)
            return params, opt_state, loss, lr_factor(name, opt_state)

        history = []
        for i, idx in enumerate(tqdm(batches, desc=name, disable=quiet)):
            if name == "inject_hyperparams" and i == steps // 2:
                opt_state.hyperparams["learning_rate"] = jnp.asarray(LR / 10)
            params, opt_state, loss, factor = step(
                params, opt_state, x_train[idx], y_train[idx], i % 50 == 49
            )
            history.append((loss, factor))
        losses, factors = np.asarray(jax.device_get(history)).T
        final = params.slow if name == "lookahead" else params
        accuracy = jnp.mean(jnp.argmax(mlp_forward(final, x_test), -1) == y_test)
        results[name] = {
            "test_accuracy": float(accuracy),
            "final_loss": float(np.mean(losses[-50:])),
            "all_finite": bool(
                all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(final))
            ),
            "last_lr_factor": float(factors[-1]),
        }
        if name == "apply_if_finite":
            results[name]["skipped"] = int(opt_state.total_notfinite)
        curves[name] = (losses, factors)
    print(f"{'wrapper':<20} {'test acc':>8} {'loss (last 50)':>14} {'lr factor':>9}")
    for name, r in results.items():
        print(
            f"{name:<20} {r['test_accuracy']:>8.2%} {r['final_loss']:>14.4f} "
            f"{r['last_lr_factor']:>9.3g}"
        )
    print(f"apply_if_finite skipped {results['apply_if_finite']['skipped']} steps")
    print(f"{time.perf_counter() - start:.1f} s")
    if plot:
        _plots.optax_wrappers(plot, curves)
    return results


if __name__ == "__main__":
    args = parse_args(__doc__, steps=600)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
