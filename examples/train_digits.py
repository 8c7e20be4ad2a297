"""Train an MLP on scikit-learn's digits with every jaxnn technique, jitted.

He initialization, BatchNorm (running statistics as explicit state), inverted
dropout with explicit keys, global-norm clipping and AdamW with a warmup-cosine
schedule, decaying the dense kernels only (chosen by path with `label_by_path`).
The train and eval steps are jitted with donated buffers, so the same script
runs unchanged on CPU, GPU or TPU.

    python examples/train_digits.py            # ~97-98% test accuracy
    python examples/train_digits.py --steps 300 --plot digits.png
"""

from __future__ import annotations

import functools
import time

import _plots
import jax
import jax.numpy as jnp
import numpy as np
from _common import load_digits, parse_args
from tqdm import tqdm

import jaxnn


def init_model(key, sizes=(64, 256, 256, 10)):
    """Dense layers with He init; a BatchNorm after every hidden dense layer."""
    keys = jax.random.split(key, len(sizes) - 1)
    params, bn_state = [], []
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
        layer = {"dense": jaxnn.dense_init(k, n_in, n_out, w_init=jaxnn.he_normal())}
        if i < len(sizes) - 2:
            layer["bn"], state = jaxnn.batchnorm_init(n_out)
            bn_state.append(state)
        params.append(layer)
    return params, bn_state


def forward(params, bn_state, x, key, *, training, rate=0.2):
    """Dense -> BatchNorm -> ReLU -> dropout for hidden layers, dense logits."""
    new_state = []
    h = x
    keys = jax.random.split(key, len(params))
    for layer, state, k in zip(params[:-1], bn_state, keys, strict=False):
        h = jaxnn.dense(layer["dense"], h)
        h, state = jaxnn.batchnorm(layer["bn"], state, h, training=training)
        h = jaxnn.relu(h)
        h = jaxnn.dropout(k, h, rate, deterministic=not training)
        new_state.append(state)
    return jaxnn.dense(params[-1]["dense"], h), new_state


# Weight decay on the dense kernels only ("0/dense/w", ...), not on biases or
# BatchNorm's scale and offset ("0/dense/b", "0/bn/scale", "0/bn/bias").
kernels_only = jaxnn.label_by_path([(r"/w$", True)], False)


def make_optimizer(steps: int, peak_lr: float = 3e-3):
    schedule = jaxnn.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak_lr,
        warmup_steps=max(1, steps // 10),
        decay_steps=max(steps, 2),
        end_value=peak_lr * 1e-2,
    )
    return jaxnn.chain(
        jaxnn.clip_by_global_norm(1.0),
        jaxnn.adamw(schedule, weight_decay=1e-4, mask=kernels_only),
    )


def make_steps(tx, rate=0.2):
    def loss_fn(params, bn_state, x, y, key):
        logits, bn_state = forward(params, bn_state, x, key, training=True, rate=rate)
        return jnp.mean(
            jaxnn.softmax_cross_entropy_with_integer_labels(logits, y)
        ), bn_state

    # params, BatchNorm state and optimizer state are replaced every step: donate
    # their buffers so XLA updates them in place instead of allocating new ones.
    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def train_step(params, bn_state, opt_state, x, y, key):
        (loss, bn_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, bn_state, x, y, key
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        # opt_state[0] is the clip's state: the pre-clip global gradient norm.
        # Returned in a fresh array since opt_state's buffers are donated next step.
        metrics = jnp.stack([loss, opt_state[0].norm])
        return jaxnn.apply_updates(params, updates), bn_state, opt_state, metrics

    @jax.jit
    def eval_step(params, bn_state, x, y):
        logits, _ = forward(
            params, bn_state, x, jax.random.key(0), training=False, rate=rate
        )
        loss = jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, y))
        return loss, jnp.mean(jnp.argmax(logits, -1) == y)

    return train_step, eval_step


def main(steps=1500, plot=None, *, batch_size=128, seed=0, quiet=None):
    """Trains and returns {"test_accuracy", "train_loss", "test_loss", "seconds"}."""
    device = jax.devices()[0]
    print(f"device: {device} ({device.platform})")
    x_train, y_train, x_test, y_test = load_digits(0.2, seed=seed, stratify=True)
    key, init_key = jax.random.split(jax.random.key(seed))
    params, bn_state = init_model(init_key)
    tx = make_optimizer(steps)
    opt_state = tx.init(params)
    train_step, eval_step = make_steps(tx)

    rng = np.random.default_rng(seed)
    n = len(x_train)
    order = rng.permutation(n)
    history = []
    start = time.perf_counter()
    for step in tqdm(range(steps), desc="train_digits", disable=quiet):
        lo = (step * batch_size) % n
        if lo + batch_size > n:  # new epoch: reshuffle
            order = rng.permutation(n)
            lo = 0
        idx = order[lo : lo + batch_size]
        params, bn_state, opt_state, metrics = train_step(
            params,
            bn_state,
            opt_state,
            x_train[idx],
            y_train[idx],
            jax.random.fold_in(key, step),
        )
        history.append(metrics)
    test_loss, test_acc = eval_step(params, bn_state, x_test, y_test)
    train_loss, train_acc = eval_step(params, bn_state, x_train, y_train)
    test_acc = float(test_acc)  # blocks until the device has finished
    seconds = time.perf_counter() - start
    losses, clip_norms = np.asarray(jax.device_get(history)).T

    print(
        f"{'steps':>6} {'train loss':>10} {'train acc':>9} {'test loss':>9} "
        f"{'test acc':>8} {'seconds':>7}"
    )
    print(
        f"{steps:>6} {float(train_loss):>10.4f} {float(train_acc):>9.2%} "
        f"{float(test_loss):>9.4f} {test_acc:>8.2%} {seconds:>7.1f}"
    )
    if plot:
        _plots.train_digits(plot, losses, clip_norms, test_acc)
    return {
        "test_accuracy": test_acc,
        "train_accuracy": float(train_acc),
        "train_loss": float(train_loss),
        "test_loss": float(test_loss),
        "final_batch_loss": float(losses[-1]),
        "seconds": seconds,
        "device": str(device),
    }


if __name__ == "__main__":
    args = parse_args(__doc__, steps=1500)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
