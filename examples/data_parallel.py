"""Data-parallel training over all devices, checked against single-device training.

The global batch is split over a 1-D device mesh (axis "data") with a
`NamedSharding`; params, BatchNorm state and optimizer state are replicated. Each
device runs the same step on its shard under `jax.shard_map`: BatchNorm takes its
statistics over the *global* batch (`axis_name="data"`), and the gradients are
those of the global-batch mean loss (`lax.pmean`) before the replicated
optimizer update. The result must equal single-device training on the same
global batch, which the script checks (max abs difference of params and BatchNorm
state after training).

On a CPU-only machine the script asks XLA for 8 host devices
(`--xla_force_host_platform_device_count=8`, set before jax is imported, unless
XLA_FLAGS already sets a count; on GPU/TPU hosts the flag only adds unused CPU
devices). On a multi-GPU or TPU host it uses those devices unchanged. Dropout is
left out so both runs compute the same function.

    python examples/data_parallel.py
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    # Only affects the CPU platform; must happen before jax is imported.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import time

import _plots
import jax
import jax.numpy as jnp
import numpy as np
from _common import load_digits_unsplit, parse_args
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

import jaxnn


def init_model(key, sizes=(64, 128, 10)):
    k1, k2 = jax.random.split(key)
    bn, bn_state = jaxnn.batchnorm_init(sizes[1])
    params = {
        "hidden": jaxnn.dense_init(k1, sizes[0], sizes[1]),
        "bn": bn,
        "out": jaxnn.dense_init(k2, sizes[1], sizes[2]),
    }
    return params, bn_state


def loss_fn(params, bn_state, x, y, axis_name):
    h = jaxnn.dense(params["hidden"], x)
    h, bn_state = jaxnn.batchnorm(
        params["bn"], bn_state, h, training=True, axis_name=axis_name
    )
    logits = jaxnn.dense(params["out"], jaxnn.relu(h))
    loss = jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, y))
    if axis_name is not None:
        loss = jax.lax.pmean(loss, axis_name)  # mean over the global batch
    return loss, bn_state


def make_step(tx, axis_name):
    """One training step; with axis_name, one device's part of a sharded step."""

    def step(params, bn_state, opt_state, x, y):
        (loss, bn_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, bn_state, x, y, axis_name
        )
        # No explicit all-reduce of grads needed: the loss is the global-batch
        # mean (pmean above) and the params are replicated (P()), so under
        # shard_map jax.grad returns the gradient of the global loss, summed over
        # devices (the transpose of the implicit broadcast of a replicated value
        # is a psum). main() checks this against single-device training.
        updates, opt_state = tx.update(grads, opt_state, params)
        return jaxnn.apply_updates(params, updates), bn_state, opt_state, loss

    return step


def main(steps=200, plot=None, *, batch_size=256, seed=0, quiet=None):
    """Returns {"devices", "max_abs_diff", "loss_parallel", "loss_single", ...}."""
    devices = jax.devices()
    n_dev = len(devices)
    print(f"devices: {n_dev} x {devices[0]} ({devices[0].platform})")
    if batch_size % n_dev:
        raise ValueError(f"batch_size {batch_size} must divide by {n_dev} devices")
    mesh = Mesh(np.array(devices), ("data",))
    replicated = NamedSharding(mesh, P())
    batch_sharded = NamedSharding(mesh, P("data"))

    x_all, y_all = load_digits_unsplit()
    rng = np.random.default_rng(seed)
    batches = [rng.choice(len(x_all), batch_size, replace=False) for _ in range(steps)]

    params, bn_state = init_model(jax.random.key(seed))
    # SGD, not Adam, for the equality check: Adam's m/√v maps the float rounding
    # noise of near-zero gradients to ±lr steps, so two equal-in-exact-arithmetic
    # runs drift apart by ~lr; with SGD they agree to float32 rounding.
    tx = jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.sgd(0.1, momentum=0.9))
    opt_state = tx.init(params)

    parallel_step = jax.jit(
        jax.shard_map(
            make_step(tx, "data"),
            mesh=mesh,
            in_specs=(P(), P(), P(), P("data"), P("data")),
            out_specs=(P(), P(), P(), P()),
        )
    )
    single_step = jax.jit(make_step(tx, None))

    def train(step, sharding_x, state, desc):
        state = jax.block_until_ready(jax.device_put(state, sharding_x[0]))
        losses = []
        start = time.perf_counter()
        for idx in tqdm(batches, desc=desc, disable=quiet, leave=False):
            x = jax.device_put(x_all[idx], sharding_x[1])
            y = jax.device_put(y_all[idx], sharding_x[1])
            *state, loss = step(*state, x, y)
            # Wait for each step. Without this, one run with 8 host devices on 2
            # cores aborted with an XLA:CPU all-reduce rendezvous timeout (one
            # device thread never arrived), presumably starved while the next
            # step was being dispatched. It is also faster here.
            losses.append(jax.block_until_ready(loss))
        losses = np.asarray(jax.device_get(losses))
        return state, losses, time.perf_counter() - start

    one = devices[0]
    (p_par, s_par, _), l_par, t_par = train(
        parallel_step,
        (replicated, batch_sharded),
        (params, bn_state, opt_state),
        f"{n_dev} devices",
    )
    (p_one, s_one, _), l_one, t_one = train(
        single_step, (one, one), (params, bn_state, opt_state), "1 device"
    )
    diff = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(
            jax.tree.leaves(jax.device_get((p_par, s_par))),
            jax.tree.leaves(jax.device_get((p_one, s_one))),
            strict=True,
        )
    )
    print(
        f"global batch {batch_size} = {n_dev} shards of {batch_size // n_dev}; "
        f"params replicated: {p_par['out']['w'].sharding.is_fully_replicated}"
    )
    print(f"{'run':<12} {'final loss':>10} {'seconds':>8}")
    print(f"{f'{n_dev} devices':<12} {l_par[-1]:>10.5f} {t_par:>8.1f}")
    print(f"{'1 device':<12} {l_one[-1]:>10.5f} {t_one:>8.1f}")
    print(f"max |params and BN state, {n_dev} devices − 1 device| = {diff:.2e}")

    if plot:
        _plots.data_parallel(plot, l_one, l_par, n_dev)
    return {
        "devices": n_dev,
        "platform": devices[0].platform,
        "max_abs_diff": diff,
        "max_loss_diff": float(np.max(np.abs(l_par - l_one))),
        "loss_parallel": float(l_par[-1]),
        "loss_single": float(l_one[-1]),
        "seconds_parallel": t_par,
        "seconds_single": t_one,
    }


if __name__ == "__main__":
    args = parse_args(__doc__, steps=200)
    main(args.steps, args.plot, seed=args.seed, quiet=args.quiet)
