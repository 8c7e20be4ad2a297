"""L1 vs L2, dropout's train/test gap, zero-init symmetry and dying ReLUs, measured.

Four small experiments on scikit-learn's digits, each a claim of the notes:

1. L1 drives weights to zero, L2 only shrinks them. Subgradient methods (an L1
   penalty in the loss, or `jaxnn.add_l1`) step by ±ηλ and so oscillate around 0:
   they give many *tiny* weights but no *exact* zeros. Exact zeros need a
   proximal step (soft-thresholding after each update), written here as a
   five-line `jaxnn.stateless` transform. Both fractions are reported.
2. Dropout narrows the gap between train and test accuracy of an over-large MLP
   trained on few examples.
3. Zero initialization cannot break symmetry: after training, all hidden units
   of a layer are still identical (max difference between units = 0).
4. A ReLU unit whose bias was pushed far negative (here by initializing it at
   −3; a single huge update does the same) has z ≤ 0 on every input and gets
   no gradient again: it is dead. Leaky ReLU units keep a gradient of α there
   and most of them come back.

    python examples/regularization_and_init.py --plot regularization.png
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

TINY = 1e-3


def init_mlp(key, sizes, w_init=None, b_init=None):
    keys = jax.random.split(key, len(sizes) - 1)
    w_init = w_init or jaxnn.he_normal()
    b_init = b_init or jaxnn.zeros()
    return [
        jaxnn.dense_init(k, a, b, w_init=w_init, b_init=b_init)
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def forward(params, x, activation, key=None, rate=0.0):
    """Hidden layers with `activation` (and dropout when key is given)."""
    hidden = []
    h = x
    for i, layer in enumerate(params[:-1]):
        z = jaxnn.dense(layer, h)
        hidden.append(z)
        h = activation(z)
        if key is not None and rate > 0:
            h = jaxnn.dropout(jax.random.fold_in(key, i), h, rate)
    return jaxnn.dense(params[-1], h), hidden


def train(
    params,
    data,
    tx,
    steps,
    *,
    activation=jaxnn.relu,
    penalty=None,
    rate=0.0,
    batch_size=64,
    seed=0,
):
    """Mini-batch training under lax.scan; returns the final params."""
    x_tr, y_tr = data[0], data[1]
    n = x_tr.shape[0]

    def loss_fn(params, x, y, key):
        logits, _ = forward(params, x, activation, key, rate)
        loss = jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, y))
        return loss + (penalty(params) if penalty else 0.0)

    @jax.jit
    def run(params, x_tr, y_tr, key):
        def step(carry, k):
            params, state = carry
            idx = jax.random.choice(k, n, (min(batch_size, n),), replace=False)
            grads = jax.grad(loss_fn)(params, x_tr[idx], y_tr[idx], k)
            updates, state = tx.update(grads, state, params)
            return (jaxnn.apply_updates(params, updates), state), None

        keys = jax.random.split(key, steps)
        (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), keys)
        return params

    return run(params, x_tr, y_tr, jax.random.key(seed))


def accuracy(params, x, y, activation=jaxnn.relu):
    logits, _ = forward(params, x, activation)
    return float(jnp.mean(jnp.argmax(logits, -1) == y))


def mean_loss(params, x, y, activation=jaxnn.relu):
    logits, _ = forward(params, x, activation)
    return float(jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, y)))


def prox_l1(threshold):
    """Proximal L1 step: soft-threshold the *updated* params by `threshold`.

    Returns updates u' such that params + u' = sign(w)·max(|w| − threshold, 0)
    with w = params + u: weights that cross zero land exactly on it.
    """

    def fn(updates, params):
        def one(u, p):
            w = p + u
            return jnp.sign(w) * jnp.maximum(jnp.abs(w) - threshold, 0.0) - p

        return jax.tree.map(one, updates, params)

    return jaxnn.stateless(fn)


def l1_vs_l2(data, steps, key, lr=0.1, lam=3e-3):
    kernels_only = lambda p: [{"w": True, "b": False} for _ in p]  # noqa: E731
    runs = {
        "none": (jaxnn.sgd(lr), None),
        "L2 penalty": (
            jaxnn.sgd(lr),
            lambda p: jaxnn.l2_penalty(p, lam, mask=kernels_only),
        ),
        "L1 penalty": (
            jaxnn.sgd(lr),
            lambda p: jaxnn.l1_penalty(p, lam, mask=kernels_only),
        ),
        "add_l1": (
            jaxnn.chain(jaxnn.add_l1(lam, mask=kernels_only), jaxnn.sgd(lr)),
            None,
        ),
        "L1 proximal": (
            jaxnn.chain(
                jaxnn.sgd(lr),
                jaxnn.masked(prox_l1(lr * lam), kernels_only),
            ),
            None,
        ),
    }
    out = {}
    for name, (tx, penalty) in runs.items():
        params = train(init_mlp(key, (64, 64, 10)), data, tx, steps, penalty=penalty)
        w = np.concatenate([np.ravel(layer["w"]) for layer in params])
        out[name] = {
            "test_accuracy": accuracy(params, data[2], data[3]),
            "exact_zeros": float(np.mean(w == 0)),
            "tiny": float(np.mean(np.abs(w) < TINY)),
            "weights": w,
        }
    return out


def dropout_gap(data, steps, key, n_train=200):
    small = (data[0][:n_train], data[1][:n_train], data[2], data[3])
    out = {}
    for rate in (0.0, 0.5):
        params = train(
            init_mlp(key, (64, 512, 512, 10)), small, jaxnn.adam(1e-3), steps, rate=rate
        )
        tr = accuracy(params, small[0], small[1])
        te = accuracy(params, data[2], data[3])
        out[f"dropout {rate}"] = {
            "train": tr,
            "test": te,
            "gap": tr - te,
            "train_loss": mean_loss(params, small[0], small[1]),
            "test_loss": mean_loss(params, data[2], data[3]),
        }
    return out


def zero_init_symmetry(data, steps, key):
    out = {}
    for name, init in (("zero", jaxnn.zeros()), ("xavier", jaxnn.xavier_normal())):
        params = init_mlp(key, (64, 32, 32, 10), w_init=init)
        params = train(
            params, data, jaxnn.sgd(0.1, 0.9), steps, activation=jaxnn.sigmoid
        )
        # Columns of w are the hidden units: compare each to the first one.
        spread = max(
            float(jnp.max(jnp.abs(layer["w"] - layer["w"][:, :1])))
            for layer in params[:-1]
        )
        out[f"{name} init"] = {
            "unit_spread": spread,
            "test_accuracy": accuracy(params, data[2], data[3], jaxnn.sigmoid),
        }
    return out


def dying_relu(data, steps, key, lr=0.05, bias=-3.0, negative_slope=0.1):
    out = {}
    leaky = lambda z: jaxnn.leaky_relu(z, negative_slope)  # noqa: E731
    for name, act in (("relu", jaxnn.relu), (f"leaky_relu({negative_slope})", leaky)):
        # A hidden bias of -3 (what one huge update can leave behind) puts most
        # units at z <= 0 on every input: a dead ReLU unit gets no gradient.
        params = init_mlp(key, (64, 256, 10), b_init=jaxnn.constant(bias))

        def dead(params, act=act):
            _, hidden = forward(params, data[0], act)
            # A unit is dead when z <= 0 on every training input.
            return float(np.mean(np.concatenate([jnp.all(z <= 0, 0) for z in hidden])))

        before = dead(params)
        params = train(params, data, jaxnn.sgd(lr, 0.9), steps, activation=act)
        out[name] = {
            "dead_before": before,
            "dead_after": dead(params),
            "test_accuracy": accuracy(params, data[2], data[3], act),
        }
    return out


def main(steps=400, plot=None, *, seed=0, quiet=None):
    """Returns {"l1_l2": ..., "dropout": ..., "zero_init": ..., "dying_relu": ...}."""
    device = jax.devices()[0]
    print(f"device: {device} ({device.platform})")
    data = tuple(jnp.asarray(a) for a in load_digits(0.3, seed=seed))
    key = jax.random.key(seed)
    start = time.perf_counter()
    results = {}
    parts = [
        ("l1_l2", l1_vs_l2),
        ("dropout", dropout_gap),
        ("zero_init", zero_init_symmetry),
        ("dying_relu", dying_relu),
    ]
    for name, fn in tqdm(parts, desc="experiments", disable=quiet):
        results[name] = fn(data, steps, key)
    seconds = time.perf_counter() - start

    print(f"1. L1 vs L2 (MLP 64-64-10, {steps} SGD steps, λ = 3e-3, kernels only)")
    print(f"   {'run':<12} {'test acc':>8} {'exact 0':>8} {f'|w|<{TINY:g}':>9}")
    for name, r in results["l1_l2"].items():
        print(
            f"   {name:<12} {r['test_accuracy']:>8.2%} {r['exact_zeros']:>8.1%} "
            f"{r['tiny']:>9.1%}"
        )
    print("2. dropout (MLP 64-512-512-10 on 200 training examples)")
    print(
        f"   {'run':<12} {'train':>7} {'test':>7} {'gap':>7} {'train loss':>10} "
        f"{'test loss':>9}"
    )
    for name, r in results["dropout"].items():
        print(
            f"   {name:<12} {r['train']:>7.2%} {r['test']:>7.2%} {r['gap']:>7.2%} "
            f"{r['train_loss']:>10.4f} {r['test_loss']:>9.4f}"
        )
    print("3. symmetry (sigmoid MLP 64-32-32-10): max |unit_j − unit_0| after training")
    for name, r in results["zero_init"].items():
        print(
            f"   {name:<12} spread {r['unit_spread']:.3g}, "
            f"test acc {r['test_accuracy']:.2%}"
        )
    print("4. dead units (z <= 0 on every input), MLP 64-256-10, hidden bias init -3")
    for name, r in results["dying_relu"].items():
        print(
            f"   {name:<12} before {r['dead_before']:.1%}, after "
            f"{r['dead_after']:.1%}, test acc {r['test_accuracy']:.2%}"
        )
    print(f"{seconds:.1f} s")

    if plot:
        _plots.regularization_and_init(plot, results)
    for r in results["l1_l2"].values():
        del r["weights"]  # plotted; too big for the returned summary
    return results


if __name__ == "__main__":
    args = parse_args(__doc__, steps=400)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
