"""Exploding gradients in a recurrent net with large init, and clipping that tames them.

A linear recurrence h_t = W h_{t-1} + U x_t over T = 30 steps, with W initialized
too large (spectral radius ≈ 1.3), learns a fading-memory target. Backpropagation
multiplies by Wᵀ once per step, so the gradient grows like 1.3³⁰ ≈ 2600 per path
(the notes' 1.5¹⁰ ≈ 58 is the same arithmetic): the gradient norm at init is ~10⁹
and plain SGD diverges to inf/NaN at its second step. The same SGD after each
clipping transform trains. The pre-clip gradient norm is read from the optimizer
state, `opt_state[0].norm`.

    python examples/exploding_gradients.py --plot exploding.png
"""

from __future__ import annotations

import time

import _plots
import jax
import jax.numpy as jnp
import numpy as np
from _common import parse_args
from tqdm import tqdm

import jaxnn

T, N_IN, N_HIDDEN, N_SEQ = 30, 4, 32, 256


def make_data(key):
    """Sequences x (N_SEQ, T, N_IN); target y = Σ_t 0.7^(T-1-t) x_t · c."""
    kx, kc = jax.random.split(key)
    x = jax.random.normal(kx, (N_SEQ, T, N_IN))
    c = jax.random.normal(kc, (N_IN,))
    decay = 0.7 ** jnp.arange(T - 1, -1, -1, dtype=jnp.float32)
    y = jnp.einsum("ntd,t,d->n", x, decay, c)
    return x, y


def init_params(key, radius=1.3):
    kw, ku, kv = jax.random.split(key, 3)
    # A Gaussian n x n matrix with variance r²/n has spectral radius ≈ r.
    w = jax.random.normal(kw, (N_HIDDEN, N_HIDDEN)) * radius / np.sqrt(N_HIDDEN)
    return {
        "W": w,
        "U": jaxnn.xavier_normal()(ku, (N_IN, N_HIDDEN)),
        "v": jaxnn.xavier_normal()(kv, (N_HIDDEN, 1)),
    }


def loss_fn(params, x, y):
    def cell(h, x_t):
        return h @ params["W"] + x_t @ params["U"], None

    h0 = jnp.zeros((x.shape[0], N_HIDDEN))
    h, _ = jax.lax.scan(cell, h0, jnp.swapaxes(x, 0, 1))
    return jaxnn.mean_squared_error((h @ params["v"])[:, 0], y)


def clipping_transforms():
    return {
        "none": jaxnn.identity(),
        "clip_by_value(0.1)": jaxnn.clip_by_value(0.1),
        "clip_by_global_norm(1)": jaxnn.clip_by_global_norm(1.0),
        "clip_by_layer_norm(1)": jaxnn.clip_by_layer_norm(1.0),
        "adaptive_grad_clip(0.1)": jaxnn.adaptive_grad_clip(0.1),
    }


def train(clip, params, x, y, steps, learning_rate, quiet):
    tx = jaxnn.chain(clip, jaxnn.sgd(learning_rate, momentum=0.9))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        report = jaxnn.gradient_report(grads)
        return jaxnn.apply_updates(params, updates), opt_state, loss, report

    losses, norms, recorded, flags = [], [], [], []
    for _ in tqdm(range(steps), leave=False, disable=quiet):
        params, opt_state, loss, report = step(params, opt_state)
        losses.append(loss)
        norms.append(report.global_norm)
        # The clip's state keeps the norm it saw before clipping (identity has
        # no state, so for "none" the report's norm stands in).
        recorded.append(getattr(opt_state[0], "norm", report.global_norm))
        flags.append(report.exploding)
    return tuple(
        np.asarray(jax.device_get(v)) for v in (losses, norms, recorded, flags)
    )


def main(steps=300, plot=None, *, learning_rate=1e-2, radius=1.3, seed=0, quiet=None):
    """Returns {name: {"final_loss", "diverged", "first_norm", ...}} per clip."""
    device = jax.devices()[0]
    print(f"device: {device} ({device.platform})")
    kd, kp = jax.random.split(jax.random.key(seed))
    x, y = make_data(kd)
    params = init_params(kp, radius)
    initial = float(loss_fn(params, x, y))
    results, curves = {}, {}
    start = time.perf_counter()
    for name, clip in tqdm(clipping_transforms().items(), disable=quiet):
        losses, norms, recorded, flags = train(
            clip, params, x, y, steps, learning_rate, quiet
        )
        finite = np.isfinite(losses)
        diverged = not bool(finite.all())
        results[name] = {
            "final_loss": float(losses[-1]),
            "best_loss": float(np.min(losses[finite])) if finite.any() else np.nan,
            "diverged": diverged,
            "first_nonfinite_step": int(np.argmin(finite)) if diverged else None,
            "first_norm": float(norms[0]),
            "recorded_norm_first": float(recorded[0]),
            "recorded_norm_last": float(recorded[-1]),
            "exploding_at_start": bool(flags[0]),
        }
        curves[name] = (losses, recorded)
    seconds = time.perf_counter() - start

    print(
        f"initial loss {initial:.3g}; gradient norm at init "
        f"{results['none']['first_norm']:.3g} (gradient_report.exploding = "
        f"{results['none']['exploding_at_start']})"
    )
    print(
        f"{'transform':<26} {'final loss':>10} {'diverged':>8} "
        f"{'pre-clip norm: step 1':>21} {'last':>9}"
    )
    for name, r in results.items():
        note = f"at {r['first_nonfinite_step'] + 1}" if r["diverged"] else "no"
        first, last = r["recorded_norm_first"], r["recorded_norm_last"]
        print(
            f"{name:<26} {r['final_loss']:>10.3g} {note:>8} {first:>21.3g} {last:>9.3g}"
        )
    print(f"{seconds:.1f} s")

    if plot:
        _plots.exploding_gradients(plot, results, curves, initial, T, radius)
    return results


if __name__ == "__main__":
    args = parse_args(__doc__, steps=300)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
