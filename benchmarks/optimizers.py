"""jaxnn vs optax: the jitted optimizer step, timed in the same process, interleaved.

Run `python benchmarks/optimizers.py` (full, about a few minutes on a 2-core CPU) or
`python benchmarks/optimizers.py --quick` (small sizes, a smoke run).

What is timed: `step(params, state, grads) -> (params, state)`, that is
`tx.update(grads, state, params)` followed by `apply_updates`, jitted once per
library with `donate_argnums=(0, 1)` (params and state are donated, so XLA may update
them in place). Per round, jaxnn and optax are each run once (A B A B ..., the order
alternating between rounds), each call is `block_until_ready`-ed, after warm-up
calls; the figure is the median over the rounds.

Cases: (a) one float32 leaf of 2**24 (16.8M) elements; (b) a ResNet-50-shaped tree:
161 float32 leaves, 25.6M parameters (HWIO conv kernels, BatchNorm scale and bias
vectors, a 2048x1000 dense kernel and its bias).

Bandwidth: a jitted, donated triad `a = b + s*c` (reads b and c, writes a into b's
donated buffer: 3 arrays) is timed in the same run on the same number of elements,
and each step's fraction of it is (minimum bytes / step time) / (triad bytes /
triad time). The minimum
bytes model counts each array that must be read or written once, 4 bytes per
float32 element, n elements:

    gd, sgd                       read g, p; write p                      3 n
    momentum, nesterov, adagrad,
    rmsprop                       read g, s, p; write s, p                5 n
    rmsprop centered / momentum   read g, s1, s2, p; write s1, s2, p      7 n
    adam, adamw, nadam            read g, m, v, p; write m, v, p          7 n
    clip_by_global_norm + adamw   adamw plus one extra read of g (norm)   8 n

Compile time is that of `jax.jit(step).lower(...).compile()` for each library. In
the tables it is measured in this process, after the other cases: XLA reuses kernels
it has already compiled (identical elementwise kernels of either library), so these
figures are only indicative. The last table (`--fresh-compile`, on by default for
adam and clip+adamw) compiles each step in a fresh Python process, alternating the
libraries, and reports the median of `--compile-reps` processes.

From each compiled step (`hlo_stats.py`): `kernels`, the fusions one call launches;
`traffic`, the bytes those kernels read and write, in units of the parameter bytes
(4 n), to compare with the minimum above (e.g. 10 for Adam, whose m, v and p are
three kernels that each stream their inputs, against a minimum of 7); and `temp MB`,
the scratch memory XLA allocates (a materialized intermediate shows up here).

Figures from a shared 2-core machine are noisy; rerun before drawing conclusions.
See benchmarks/README.md for the method and the latest table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hlo_stats import step_stats  # benchmarks/hlo_stats.py, beside this script

import jaxnn

LR = 1e-3

# name: (jaxnn factory, optax factory, arrays moved per element)
OPTIMIZERS: dict[str, tuple[Callable, Callable, int]] = {
    "gd": (lambda: jaxnn.gd(LR), lambda: optax.sgd(LR), 3),
    "sgd": (lambda: jaxnn.sgd(LR), lambda: optax.sgd(LR), 3),
    "momentum": (lambda: jaxnn.momentum(LR), lambda: optax.sgd(LR, 0.9), 5),
    "nesterov": (
        lambda: jaxnn.nesterov(LR),
        lambda: optax.sgd(LR, 0.9, nesterov=True),
        5,
    ),
    "adagrad": (lambda: jaxnn.adagrad(LR), lambda: optax.adagrad(LR), 5),
    "rmsprop": (lambda: jaxnn.rmsprop(LR), lambda: optax.rmsprop(LR), 5),
    "rmsprop_centered": (
        lambda: jaxnn.rmsprop(LR, centered=True),
        lambda: optax.rmsprop(LR, centered=True),
        7,
    ),
    "rmsprop_momentum": (
        lambda: jaxnn.rmsprop(LR, momentum=0.9),
        lambda: optax.rmsprop(LR, momentum=0.9),
        7,
    ),
    "adam": (lambda: jaxnn.adam(LR), lambda: optax.adam(LR), 7),
    "adamw": (lambda: jaxnn.adamw(LR), lambda: optax.adamw(LR), 7),
    "nadam": (lambda: jaxnn.nadam(LR), lambda: optax.nadam(LR), 7),
    "clip+adamw": (
        lambda: jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.adamw(LR)),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(LR)),
        8,
    ),
}


def resnet50_shapes(width_div: int = 1) -> dict:
    """Parameter shapes of ResNet-50 (HWIO kernels, BN scale/bias, dense)."""
    shapes: dict = {}

    def conv_bn(name, k, cin, cout):
        shapes[f"{name}/kernel"] = (k, k, cin, cout)
        shapes[f"{name}/bn_scale"] = (cout,)
        shapes[f"{name}/bn_bias"] = (cout,)

    stem = 64 // width_div
    conv_bn("stem", 7, 3, stem)
    cin = stem
    for stage, (blocks, width) in enumerate(
        zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)
    ):
        width //= width_div
        for b in range(blocks):
            name = f"stage{stage}/block{b}"
            conv_bn(f"{name}/conv1", 1, cin, width)
            conv_bn(f"{name}/conv2", 3, width, width)
            conv_bn(f"{name}/conv3", 1, width, 4 * width)
            if b == 0:
                conv_bn(f"{name}/downsample", 1, cin, 4 * width)
            cin = 4 * width
    shapes["head/kernel"] = (cin, 1000)
    shapes["head/bias"] = (1000,)
    return shapes


def make_tree(shapes: dict, seed: int) -> dict:
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {
        name: jax.random.normal(k, shape, jnp.float32) * 0.01
        for k, (name, shape) in zip(keys, shapes.items(), strict=True)
    }


def make_step(tx, apply):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return apply(params, updates), state

    return step


def compile_step(tx, apply, params, grads):
    state = tx.init(params)
    t0 = time.perf_counter()
    compiled = (
        jax.jit(make_step(tx, apply), donate_argnums=(0, 1))
        .lower(params, state, grads)
        .compile()
    )
    return compiled, state, time.perf_counter() - t0, step_stats(compiled)


def copy_tree(tree):
    return jax.tree.map(lambda x: x.copy(), tree)


class Triad:
    """The donated triad a = b + s*c on n float32 elements: reads b, c; writes a.

    `a` is written into the donated buffer of `b` (donating an input the
    computation does not read lets XLA drop it, and every call would then
    page-fault a fresh output buffer). It is timed once per round, next to the
    optimizers, so that load from other processes affects both alike.
    """

    def __init__(self, n: int):
        self.b = jnp.ones((n,), jnp.float32)
        self.c = jnp.full((n,), 2.0, jnp.float32)
        self.s = jnp.float32(1e-3)
        self.fn = jax.jit(lambda b, c, s: b + s * c, donate_argnums=(0,))
        self.times: list[float] = []

    def run(self, record: bool = True) -> None:
        """One blocking triad; its time is kept if `record`."""
        t0 = time.perf_counter()
        self.b = self.fn(self.b, self.c, self.s).block_until_ready()
        if record:
            self.times.append(time.perf_counter() - t0)


def bench_case(label: str, params: dict, grads: dict, rounds: int, warmup: int, names):
    n = sum(x.size for x in jax.tree.leaves(params))
    triad = Triad(n)
    for _ in range(warmup):
        triad.run(record=False)
    print(
        f"\n== {label}: {len(jax.tree.leaves(params))} leaves, {n / 1e6:.1f}M "
        "float32 params"
    )
    header = (
        f"{'optimizer':<18}{'jaxnn ms':>10}{'optax ms':>10}{'ratio':>8}"
        f"{'jaxnn %bw':>11}{'optax %bw':>11}{'compile j/o s':>16}{'c.ratio':>9}"
        f"{'kernels j/o':>13}{'traffic j/o':>13}{'min':>5}{'temp MB j/o':>15}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for name in names:
        ours_f, theirs_f, arrays = OPTIMIZERS[name]
        libs = {
            "jaxnn": (ours_f(), jaxnn.apply_updates),
            "optax": (theirs_f(), optax.apply_updates),
        }
        run = {}
        stats = {}
        for lib, (tx, apply) in libs.items():
            compiled, state, compile_s, stats[lib] = compile_step(
                tx, apply, params, grads
            )
            run[lib] = [compiled, copy_tree(params), state, compile_s, []]
        case_triad = len(triad.times)
        for _ in range(warmup):
            for r in run.values():
                r[1], r[2] = r[0](r[1], r[2], grads)
                jax.block_until_ready((r[1], r[2]))
        order = list(run)
        for i in range(rounds):
            for lib in order if i % 2 == 0 else order[::-1]:
                r = run[lib]
                t0 = time.perf_counter()
                r[1], r[2] = r[0](r[1], r[2], grads)
                jax.block_until_ready((r[1], r[2]))
                r[4].append(time.perf_counter() - t0)
            triad.run()
        triad_bw = 3 * 4 * n / statistics.median(triad.times[case_triad:])
        ms = {lib: statistics.median(r[4]) * 1e3 for lib, r in run.items()}
        bw = {lib: arrays * 4 * n / (ms[lib] / 1e3) / triad_bw for lib in run}
        c = {lib: r[3] for lib, r in run.items()}
        traffic = {lib: st.kernel_bytes / (4 * n) for lib, st in stats.items()}
        temp = {lib: st.temp_bytes / 1e6 for lib, st in stats.items()}
        print(
            f"{name:<18}{ms['jaxnn']:>10.2f}{ms['optax']:>10.2f}"
            f"{ms['jaxnn'] / ms['optax']:>8.2f}{bw['jaxnn']:>11.0%}{bw['optax']:>11.0%}"
            f"{c['jaxnn']:>8.2f}/{c['optax']:<7.2f}{c['jaxnn'] / c['optax']:>9.2f}"
            f"{stats['jaxnn'].fusions:>7}/{stats['optax'].fusions:<5}"
            f"{traffic['jaxnn']:>7.1f}/{traffic['optax']:<5.1f}{arrays:>5}"
            f"{temp['jaxnn']:>8.1f}/{temp['optax']:<6.1f}"
        )
        rows.append((name, ms, bw, c, stats))
        del run
    triad_s = statistics.median(triad.times)
    print(
        f"triad a = b + s*c (median of all rounds): {triad_s * 1e3:.2f} ms = "
        f"{3 * 4 * n / triad_s / 1e9:.1f} GB/s; %bw = minimum bytes / time against "
        "the triad of the same rounds"
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, 3 rounds: a smoke run"
    )
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--only", nargs="*", default=None, help="optimizer names to run"
    )
    parser.add_argument(
        "--fresh-compile",
        nargs="*",
        default=["adam", "clip+adamw"],
        help="optimizers whose tree step is also compiled in fresh processes",
    )
    parser.add_argument("--compile-reps", type=int, default=5)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 15)
    warmup = 1 if args.quick else 3
    names = args.only or list(OPTIMIZERS)
    leaf_n = 2**14 if args.quick else 2**24
    width_div = 16 if args.quick else 1
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, backend "
        f"{jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"{rounds} rounds, median; step = update + apply_updates, donated"
    )
    rng = np.random.default_rng(0)
    leaf = {"w": jnp.asarray(rng.normal(size=leaf_n), jnp.float32)}
    leaf_g = {"w": jnp.asarray(rng.normal(size=leaf_n) * 1e-2, jnp.float32)}
    bench_case(
        f"single leaf 2**{int(np.log2(leaf_n))}", leaf, leaf_g, rounds, warmup, names
    )
    del leaf, leaf_g
    shapes = resnet50_shapes(width_div)
    bench_case(
        "ResNet-50-shaped tree",
        make_tree(shapes, 0),
        make_tree(shapes, 1),
        rounds,
        warmup,
        names,
    )
    fresh = [n for n in args.fresh_compile if n in names]
    if fresh and not args.quick:
        fresh_compile_table(fresh, args.compile_reps)


def compile_once(name: str, lib: str) -> float:
    """Seconds to trace, lower and compile one step on the ResNet-50 tree."""
    shapes = resnet50_shapes()
    params, grads = make_tree(shapes, 0), make_tree(shapes, 1)
    ours, theirs, _ = OPTIMIZERS[name]
    tx, apply = (
        (ours(), jaxnn.apply_updates)
        if lib == "jaxnn"
        else (theirs(), optax.apply_updates)
    )
    return compile_step(tx, apply, params, grads)[2]


def fresh_compile_table(names: list[str], reps: int) -> None:
    """Compile times of the tree step, each in a fresh process (no warm caches)."""
    print(f"\n== compile time in fresh processes, ResNet-50 tree, median of {reps}")
    print(f"{'optimizer':<18}{'jaxnn s':>10}{'optax s':>10}{'ratio':>8}")
    for name in names:
        times: dict[str, list[float]] = {"jaxnn": [], "optax": []}
        for i in range(reps):
            for lib in ("jaxnn", "optax") if i % 2 == 0 else ("optax", "jaxnn"):
                out = subprocess.run(
                    [sys.executable, __file__, "--compile-one", name, lib],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times[lib].append(float(out.stdout.split()[-1]))
        j, o = statistics.median(times["jaxnn"]), statistics.median(times["optax"])
        print(f"{name:<18}{j:>10.2f}{o:>10.2f}{j / o:>8.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compile-one":
        print(compile_once(sys.argv[2], sys.argv[3]))
    else:
        main()
