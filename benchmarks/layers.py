"""BatchNorm and dropout: jaxnn vs flax.linen, same process, interleaved.

    python benchmarks/layers.py            # full sizes, 25 rounds
    python benchmarks/layers.py --quick    # small sizes, 3 rounds (smoke test)
    python benchmarks/layers.py --rounds N

Each case is jitted, warmed up, run interleaved (A B A B ...) with
`block_until_ready`, and inputs are donated where an output of the same shape can
reuse them (fresh copies are made outside the timed region). Reported: median ms,
ratio jaxnn/flax (< 1 means jaxnn is faster), and the fraction of memory bandwidth
reached: the minimum bytes the operation must move divided by its time, over the
bandwidth of the triad of `triad.py` (a = b + s·c, jitted and donated) measured in
the same run on as many elements as the BatchNorm input.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# A module beside this script (its directory is on sys.path when it runs).
from triad import measure_bandwidth

import jaxnn


@dataclasses.dataclass(frozen=True)
class Row:
    """One layer, jaxnn against flax; dicts are keyed by library."""

    case: str
    ms: dict[str, float]  # median time
    bandwidth_fraction: dict[str, float]  # of the triad, minimum bytes / time

    @property
    def ratio(self) -> float:
        """Time of jaxnn over flax: below 1, jaxnn is faster."""
        return self.ms["jaxnn"] / self.ms["flax"]


def interleaved(cases: dict, make_args, rounds: int) -> dict[str, float]:
    """Median seconds of each jitted case, run A B A B with fresh donated args."""
    for fn in cases.values():  # warm-up: compile and run twice
        for _ in range(2):
            jax.block_until_ready(fn(*make_args()))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            args = jax.block_until_ready(make_args())
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def report(
    case: str, title: str, med: dict[str, float], min_bytes: int, bandwidth: float
) -> Row:
    """Prints one case and returns its row."""
    row = Row(
        case,
        {name: t * 1e3 for name, t in med.items()},
        {name: min_bytes / t / bandwidth for name, t in med.items()},
    )
    print(f"\n{title}")
    for name in med:
        print(
            f"  {name:6s} {row.ms[name]:9.3f} ms   "
            f"{row.bandwidth_fraction[name]:6.1%} of triad bandwidth"
        )
    print(f"  ratio jaxnn/flax = {row.ratio:.3f}")
    return row


def bench_batchnorm(shape, rounds, bandwidth):
    c = shape[-1]
    rng = np.random.default_rng(0)
    x0 = jnp.asarray(rng.normal(size=shape) + 3.0, jnp.float32)
    dy0 = jnp.asarray(rng.normal(size=shape), jnp.float32)
    params, state = jaxnn.batchnorm_init(c)
    flax_bn = nn.BatchNorm(use_running_average=False, momentum=0.99, epsilon=1e-5)

    def ours(x, dy, params, state):
        def f(x, scale, bias):
            p = jaxnn.BatchNormParams(scale, bias)
            return jaxnn.batchnorm(p, state, x, training=True)

        y, vjp, new_state = jax.vjp(f, x, *params, has_aux=True)
        return y, vjp(dy), new_state

    def theirs(x, dy, params, state):
        def f(x, scale, bias):
            variables = {
                "params": {"scale": scale, "bias": bias},
                "batch_stats": {"mean": state.mean, "var": state.var},
            }
            y, upd = flax_bn.apply(variables, x, mutable=["batch_stats"])
            return y, upd["batch_stats"]

        y, vjp, new_state = jax.vjp(f, x, *params, has_aux=True)
        return y, vjp(dy), new_state

    cases = {
        "jaxnn": jax.jit(ours, donate_argnums=(0, 1)),
        "flax": jax.jit(theirs, donate_argnums=(0, 1)),
    }
    # Same answers (flax's fast variance is accurate enough at offset 3).
    a = cases["jaxnn"](x0 + 0, dy0 + 0, params, state)
    b = cases["flax"](x0 + 0, dy0 + 0, params, state)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(u, v, rtol=2e-3, atol=2e-3)

    med = interleaved(cases, lambda: (x0 + 0, dy0 + 0, params, state), rounds)
    # Read x and dy, write y and dx (the per-feature vectors are negligible).
    row = report(
        "batchnorm",
        f"BatchNorm forward+backward (dx, dscale, dbias), {shape} float32 NHWC",
        med,
        4 * x0.nbytes,
        bandwidth,
    )

    # Accuracy on offset data, the reason for the shifted variance.
    xo = jnp.asarray(1e4 + rng.normal(size=(4096, c)), jnp.float32)
    p, s = jaxnn.batchnorm_init(c)
    y_ours = jaxnn.batchnorm(p, s, xo, training=True)[0]
    y_flax = flax_bn.apply(
        {
            "params": {"scale": p.scale, "bias": p.bias},
            "batch_stats": {"mean": s.mean, "var": s.var},
        },
        xo,
        mutable=["batch_stats"],
    )[0]
    err = [
        float(np.max(np.abs(np.std(np.asarray(y, np.float64), 0) - 1)))
        for y in (y_ours, y_flax)
    ]
    print(f"  x = 1e4 + N(0,1): max |std(y) - 1| jaxnn {err[0]:.1e}, flax {err[1]:.1e}")
    return row, {"jaxnn": err[0], "flax": err[1]}


def bench_dropout(shape, rounds, bandwidth):
    rate = 0.1
    x0 = jnp.asarray(np.random.default_rng(1).normal(size=shape), jnp.float32)
    flax_drop = nn.Dropout(rate, deterministic=False)

    def ours(x, key):
        return jaxnn.dropout(key, x, rate)

    def theirs(x, key):
        return flax_drop.apply({}, x, rngs={"dropout": key})

    cases = {
        "jaxnn": jax.jit(ours, donate_argnums=0),
        "flax": jax.jit(theirs, donate_argnums=0),
    }
    key = jax.random.key(0)
    med = interleaved(cases, lambda: (x0 + 0, key), rounds)
    return report(
        "dropout",
        f"Dropout rate {rate}, {shape} float32 (mask drawn inside the timed call)",
        med,
        2 * x0.nbytes,
        bandwidth,
    )


@dataclasses.dataclass(frozen=True)
class Results:
    """Both layers, the triad they are measured against, BatchNorm's accuracy."""

    rounds: int
    triad_gbps: float
    rows: list[Row]
    # max |std(y) - 1| of BatchNorm on x = 1e4 + N(0, 1), per library
    batchnorm_offset_error: dict[str, float]


def run(*, quick: bool = False, rounds: int | None = None) -> Results:
    """BatchNorm and dropout against flax (small sizes and 3 rounds if `quick`)."""
    rounds = rounds or (3 if quick else 25)
    bn_shape = (8, 8, 8, 16) if quick else (256, 32, 32, 64)
    drop_shape = (64, 256) if quick else (256, 4096)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind} "
        f"({jax.default_backend()}), median of {rounds} interleaved rounds"
    )
    bandwidth = measure_bandwidth(int(np.prod(bn_shape)), rounds)
    print(f"triad a = b + s*c bandwidth: {bandwidth / 1e9:.2f} GB/s")
    bn_row, offset_error = bench_batchnorm(bn_shape, rounds, bandwidth)
    drop_row = bench_dropout(drop_shape, rounds, bandwidth)
    return Results(rounds, bandwidth / 1e9, [bn_row, drop_row], offset_error)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds (default 25; 3 quick)"
    )
    args = parser.parse_args()
    run(quick=args.quick, rounds=args.rounds)


if __name__ == "__main__":
    main()
