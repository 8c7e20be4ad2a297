"""Float16 training: gradients that underflow to zero, and dynamic loss scaling.

float16's smallest positive number is 2⁻²⁴ ≈ 6e-8: any gradient element of
magnitude at most 2⁻²⁵ rounds to exactly 0 and the parameter it belongs to gets
no signal. The digits MLP of `train_digits.py` barely meets that limit
(measured with 2 ReLU layers of 256, He init, batch 128, no BatchNorm: float16
ends with 3.6 points more exact zeros in layer 1 than float32, and the same
98.1% test accuracy), so this example makes the network deeper, as the notes'
vanishing-gradient example does: 8 hidden sigmoid layers of 128 units with
Xavier init. Backpropagation multiplies the per-example gradient by σ' ≤ 1/4
per layer and the batch-mean loss contributes 1/512: at initialization the
median per-example gradient of the pre-activations is 3.6e-5 at layer 8 and
1.3e-9 at layer 1 (a factor ~4.3 per layer), and all of layers 1-2's and 59%
of layer 3's are at most 2⁻²⁵. In float32 Adam trains them anyway (it
normalizes each parameter's gradient); in float16 they are zero.

Four runs, each one jitted `lax.scan` over 1500 steps of Adam (learning rate
3e-3, float32 moments via `mu_dtype`/`nu_dtype`) after `clip_by_global_norm(1.0)`,
batch 512, the loss computed in float32 from float32 logits:

    (a) float32
    (b) float16 params and activations
    (c) (b) with `dynamic_loss_scale(..., growth_interval=200)` around the chain
    (d) float32 master params, float16 forward and backward, loss scaling

Measured on a 2-core CPU (seed 0; about 70 s for the four runs; re-measured
after the optax-signature and cross-entropy changes of 2026-12-02, which move the
rounding of the trajectory):

    variant                         test acc   train loss   skipped   S first → last
    (a) float32                       88.61%       0.0129         0
    (b) float16                       10.00%       2.3027         0
    (c) float16 + loss scaling        88.06%       0.0194         4   2^15 → 2^18
    (d) float32 master + scaling      89.72%       0.0149         3   2^15 → 2^19

    exact zeros per layer (mean over steps), input side first:
                  L1     L2     L3     L4     L5     L6     L7     L8     L9
    (a), (c), (d) 0.062  0      0      0      0      0      0      0      0
    (b)           1.000  1.000  0.990  0.888  0.548  0.141  0.017  0.001  0.001

Layer 1's 6.2% in every run is structural (4 of the 64 pixels are blank in
every training image, so their weights get no gradient in any precision); the
rest of (b)'s zeros are underflow. Layers 1-2 of (b) never receive a gradient,
layer 3 almost never, and the net stays at chance (loss log 10 = 2.303). With
loss scaling, S doubles every 200 finite steps from 2¹⁵ until a scaled gradient
overflows float16, which skips that step and halves S: four such steps in (c).
The scaled gradients reach float16 with no underflow beyond float32's, and (c)
matches (a).

Over three initializations and batch orders (a vmapped copy of this setup,
measured before that change):
(a) 91.4/93.3/91.7%, (b) 10.0% each time, (c) 88.1/91.7/92.2%. A deep sigmoid
net's final accuracy moves by one to three points with the rounding of its
trajectory alone, so (c) against (a) agrees to within that noise, not better.
float16 params did not clearly hurt here ((c) against (d): 1.7 points, within
that noise): Adam's steps of ~3e-3 are far above the float16 spacing of weights
of ~0.1 (6e-5). With a learning rate decayed below that spacing, float16 params
would stop moving, and (d), the setup of PyTorch's autocast, is the one to use.

    python examples/float16_training.py --plot float16.png
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import jaxnn

HIDDEN = (128,) * 8

# name: (params dtype, compute dtype, dynamic loss scaling)
VARIANTS = {
    "float32": (jnp.float32, jnp.float32, False),
    "float16": (jnp.float16, jnp.float16, False),
    "float16 + loss scaling": (jnp.float16, jnp.float16, True),
    "float32 master + float16 + loss scaling": (jnp.float32, jnp.float16, True),
}


def load_data(seed: int = 0):
    """Digits (8x8 images, 10 classes), standardized with the train statistics."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.2, random_state=seed, stratify=y
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1.0
    return (
        (x_train - mean) / std,
        y_train.astype(np.int32),
        (x_test - mean) / std,
        y_test.astype(np.int32),
    )


def init_model(key, hidden=HIDDEN, dtype=jnp.float32):
    """Dense layers with Xavier init: a list of {"w", "b"}, input side first."""
    sizes = (64, *hidden, 10)
    keys = jax.random.split(key, len(sizes) - 1)
    params = [
        jaxnn.dense_init(k, n_in, n_out, w_init=jaxnn.xavier_normal())
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]
    return jax.tree.map(lambda p: p.astype(dtype), params)


def forward(params, x, compute_dtype):
    """Sigmoid MLP computed in `compute_dtype`; float32 logits (as autocast)."""
    params = jax.tree.map(lambda p: p.astype(compute_dtype), params)
    h = x.astype(compute_dtype)
    for layer in params[:-1]:
        h = jaxnn.sigmoid(jaxnn.dense(layer, h))
    return jaxnn.dense(params[-1], h).astype(jnp.float32)


def batches(n, steps, batch_size, seed):
    """(steps, batch_size) indices: a fresh permutation of the data every epoch."""
    rng = np.random.default_rng(seed)
    per_epoch = n // batch_size
    epochs = -(-steps // per_epoch)
    idx = np.concatenate(
        [rng.permutation(n)[: per_epoch * batch_size] for _ in range(epochs)]
    )
    return idx.reshape(-1, batch_size)[:steps]


def train(variant, data, steps, *, batch_size, learning_rate, growth_interval, seed):
    """Trains one variant; returns (params, per-step metrics as NumPy arrays)."""
    param_dtype, compute_dtype, scaling = VARIANTS[variant]
    x_train, y_train, _, _ = data
    params = init_model(jax.random.key(seed), dtype=param_dtype)
    # float32 moments whatever the params' dtype: v ~ g² would underflow in float16.
    tx = jaxnn.chain(
        jaxnn.clip_by_global_norm(1.0),
        jaxnn.adam(learning_rate, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
    )
    if scaling:
        # Wraps the whole chain, so the clip sees the unscaled gradients.
        tx = jaxnn.dynamic_loss_scale(tx, growth_interval=growth_interval)

    def step(carry, idx):
        params, opt_state = carry
        x, y = x_train[idx], y_train[idx]
        s = jaxnn.loss_scale(opt_state) if scaling else jnp.float32(1.0)

        def scaled_loss(p):
            logits = forward(p, x, compute_dtype)
            loss = jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, y))
            return loss * s, loss

        grads, loss = jax.grad(scaled_loss, has_aux=True)(params)
        # Exact zeros do not depend on the scale: report the scaled gradients.
        zeros = jaxnn.gradient_report(grads).layer_zero_fractions
        updates, opt_state = tx.update(grads, opt_state, params)
        params = jaxnn.apply_updates(params, updates)
        skipped = opt_state.total_skipped if scaling else jnp.int32(0)
        return (params, opt_state), (loss, s, zeros, skipped)

    @jax.jit
    def run(params, indices):
        (params, _), metrics = jax.lax.scan(step, (params, tx.init(params)), indices)
        return params, metrics

    indices = batches(len(x_train), steps, batch_size, seed)
    params, metrics = run(params, jnp.asarray(indices))
    loss, scale, zeros, skipped = (np.asarray(m) for m in jax.device_get(metrics))
    return params, {"loss": loss, "scale": scale, "zeros": zeros, "skipped": skipped}


def main(
    steps=1500,
    plot=None,
    *,
    batch_size=512,
    learning_rate=3e-3,
    growth_interval=200,
    seed=0,
    variants=tuple(VARIANTS),
    quiet=None,
):
    """Trains each variant; returns {variant: {"test_accuracy", ...}}."""
    device = jax.devices()[0]
    print(f"device: {device} ({device.platform})")
    data = tuple(jnp.asarray(a) for a in load_data(seed))
    x_test, y_test = data[2], data[3]
    results, curves = {}, {}
    for variant in variants:
        start = time.perf_counter()
        params, m = train(
            variant,
            data,
            steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            growth_interval=growth_interval,
            seed=seed,
        )
        logits = forward(params, x_test, VARIANTS[variant][1])
        accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y_test))
        tail = max(1, steps // 10)
        results[variant] = {
            "test_accuracy": accuracy,
            "final_loss": float(np.mean(m["loss"][-tail:])),
            "layer_zero_fractions": m["zeros"].mean(0).tolist(),
            "max_zero_fraction": float(m["zeros"].mean(0).max()),
            "scale_first": float(m["scale"][0]),
            "scale_last": float(m["scale"][-1]),
            "scale_min": float(m["scale"].min()),
            "scale_max": float(m["scale"].max()),
            "skipped": int(m["skipped"][-1]),
            "seconds": time.perf_counter() - start,
        }
        curves[variant] = m
        if not quiet:
            print(f"trained {variant} in {results[variant]['seconds']:.1f} s")

    print(
        f"{'variant':<40} {'test acc':>8} {'loss':>8} {'skipped':>7} "
        f"{'scale first → last':>22}"
    )
    for name, r in results.items():
        scale = (
            f"2^{np.log2(r['scale_first']):.0f} → 2^{np.log2(r['scale_last']):.0f}"
            if VARIANTS[name][2]
            else "-"
        )
        print(
            f"{name:<40} {r['test_accuracy']:>8.2%} {r['final_loss']:>8.4f} "
            f"{r['skipped']:>7} {scale:>22}"
        )
    print("fraction of gradient entries exactly zero, per layer (mean over steps):")
    print(
        f"{'variant':<40} "
        + " ".join(f"{f'L{i + 1}':>5}" for i in range(len(HIDDEN) + 1))
    )
    for name, r in results.items():
        print(
            f"{name:<40} " + " ".join(f"{z:>5.3f}" for z in r["layer_zero_fractions"])
        )

    if plot:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        layers = np.arange(1, len(HIDDEN) + 2)
        width = 0.8 / len(results)
        colors = dict(
            zip(VARIANTS, ["k", "tab:red", "tab:blue", "tab:green"], strict=True)
        )
        for i, (name, r) in enumerate(results.items()):
            axes[0].bar(
                layers + (i - (len(results) - 1) / 2) * width,
                r["layer_zero_fractions"],
                width,
                label=name,
                color=colors[name],
            )
            axes[1].plot(curves[name]["loss"], lw=0.6, label=name, color=colors[name])
            if VARIANTS[name][2]:
                axes[2].plot(
                    curves[name]["scale"], lw=1.2, label=name, color=colors[name]
                )
        axes[0].set(
            xlabel="layer (input side first)",
            ylabel="gradient entries = 0",
            title="exact zeros (mean over steps)",
            xticks=layers,
        )
        axes[1].set(
            xlabel="step", ylabel="train loss (batch)", yscale="log", title="loss"
        )
        axes[2].set(
            xlabel="step",
            ylabel="loss scale S",
            yscale="log",
            title="dynamic loss scale",
        )
        axes[1].legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        fig.savefig(plot, dpi=90)
        plt.close(fig)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--plot", help="save a figure to this path")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args()
    main(args.steps, args.plot, quiet=True if args.quiet else None)
