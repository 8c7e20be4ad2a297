"""jaxnn vs optax: the jitted optimizer step, timed in the same process, interleaved.

Run `python benchmarks/optimizers.py` (full, about 7 minutes on a 2-core CPU, plus
the glue rows: minutes more, mostly compiling the float16 loss-scaling steps) or
`python benchmarks/optimizers.py --quick` (small sizes, a smoke run);
`python benchmarks/run_all.py` runs it with the other benchmarks and saves the
results. `--help` lists the flags.

What is timed: `step(params, state, grads) -> (params, state)`, that is
`tx.update(grads, state, params)` followed by `apply_updates`, jitted once per
library with `donate_argnums=(0, 1)` (params and state are donated, so XLA may update
them in place). Per round, jaxnn and optax are each run once (A B A B ..., the order
alternating between rounds), each call is `block_until_ready`-ed, after warm-up
calls; the figure is the median over the rounds.

Cases: (a) one float32 leaf of 2**24 (16.8M) elements; (b) a ResNet-50-shaped tree:
161 float32 leaves, 25.6M parameters (HWIO conv kernels, BatchNorm scale and bias
vectors, a 2048x1000 dense kernel and its bias).

Bandwidth: the triad of `triad.py` (`a = b + s*c`, jitted and donated: 3 arrays)
is timed once per round on the same number of elements, and each step's fraction of
it is (minimum bytes / step time) / (triad bytes / triad time). The minimum bytes
model counts each array that must be read or written once, 4 bytes per float32
element, n elements:

    gd, sgd                       read g, p; write p                      3 n
    momentum, nesterov, adagrad,
    rmsprop                       read g, s, p; write s, p                5 n
    rmsprop centered / momentum   read g, s1, s2, p; write s1, s2, p      7 n
    adam, adamw, nadam            read g, m, v, p; write m, v, p          7 n
    clip_by_global_norm + adamw   adamw plus one extra read of g (norm)   8 n
    clip_by_layer_norm + adamw    the same (per-leaf norms)               8 n
    adaptive_grad_clip + adamw    adamw plus one extra read of g and p    9 n

Compile time is that of `jax.jit(step).lower(...).compile()` for each library. In
the tables it is measured in this process, after the other cases: XLA reuses kernels
it has already compiled (identical elementwise kernels of either library), so these
figures are only indicative. The last table (`--fresh-compile`, on by default for
adam and the three clips + adamw) compiles each step in a fresh Python process,
alternating the libraries (each process runs this script with `--compile-one NAME
LIB`), and reports the median of `--compile-reps` processes.

From each compiled step (`hlo_stats.py`): `kernels`, the fusions one call launches;
`traffic`, the bytes those kernels read and write, in units of the parameter bytes
(4 n), to compare with the minimum above (e.g. 10 for Adam, whose m, v and p are
three kernels that each stream their inputs, against a minimum of 7); and `temp MB`,
the scratch memory XLA allocates (a materialized intermediate shows up here).

Glue (`--glue`; by default all, none with `--only`): the wrappers that add no
arithmetic of their own, each on the ResNet-50 tree against two references timed in
the same rounds (three steps per round, the order reversed every other round): the
optax equivalent and the plain optimizer the glue wraps, written without it.

    partition          jaxnn.partition({"adamw": adamw, "sgd": sgd},
                       label_by_path([(kernel$, "adamw")], "sgd"))
      optax            optax.partition of optax.adamw and optax.sgd, same labels
      plain            adamw on the kernels' sub-dict and sgd on the rest's,
                       split and merged by hand
    dynamic_loss_scale jaxnn.dynamic_loss_scale(adamw) on float16 params and
                       float16 gradients scaled by S = 2**15
      optax            the jmp recipe with optax's skip: unscale in the gradients'
                       dtype (G * (1/S), as jmp does), then
                       optax.apply_if_finite(optax.adamw)
      plain            G * (1/S) in float32, adamw, and a finite check that
                       zeroes the updates and keeps the state (jnp.where)
    loss_scale_float32 the same three on float32 params (mixed precision's master
                       weights, whose gradients jax.grad returns in float32)
    inject_hyperparams optax.inject_hyperparams(jaxnn.adamw)(learning_rate=...)
      optax            optax.inject_hyperparams(optax.adamw)(learning_rate=...)
      plain            jaxnn.adamw

Their minimum bytes: partition 7 n_kernels + 3 n_rest float32 elements;
inject_hyperparams 7 n; dynamic_loss_scale 8 n float16 elements (adamw's 7 arrays,
which are float16 here, plus the finite check's read of g); loss_scale_float32 the
same 8 n in float32 elements. Targets: the glue's
time at most the optax equivalent's (ratio <= 1) and at most 1.05 times the plain
optimizer's.

Figures from a shared 2-core machine are noisy; rerun before drawing conclusions.
See benchmarks/README.md for the method and the latest table.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

# Modules beside this script (its directory is on sys.path when it runs).
from hlo_stats import HloStats, step_stats
from triad import Triad

import jaxnn

LR = 1e-3
LIBRARIES = ("jaxnn", "optax")


@dataclasses.dataclass(frozen=True)
class Pair:
    """One optimizer in both libraries, and the arrays its step must move."""

    jaxnn: Callable[[], Any]
    optax: Callable[[], Any]
    min_arrays: int  # arrays of n elements read or written at least once


OPTIMIZERS: dict[str, Pair] = {
    "gd": Pair(lambda: jaxnn.gd(LR), lambda: optax.sgd(LR), 3),
    "sgd": Pair(lambda: jaxnn.sgd(LR), lambda: optax.sgd(LR), 3),
    "momentum": Pair(lambda: jaxnn.momentum(LR), lambda: optax.sgd(LR, 0.9), 5),
    "nesterov": Pair(
        lambda: jaxnn.nesterov(LR), lambda: optax.sgd(LR, 0.9, nesterov=True), 5
    ),
    "adagrad": Pair(lambda: jaxnn.adagrad(LR), lambda: optax.adagrad(LR), 5),
    "rmsprop": Pair(lambda: jaxnn.rmsprop(LR), lambda: optax.rmsprop(LR), 5),
    "rmsprop_centered": Pair(
        lambda: jaxnn.rmsprop(LR, centered=True),
        lambda: optax.rmsprop(LR, centered=True),
        7,
    ),
    "rmsprop_momentum": Pair(
        lambda: jaxnn.rmsprop(LR, momentum=0.9),
        lambda: optax.rmsprop(LR, momentum=0.9),
        7,
    ),
    "adam": Pair(lambda: jaxnn.adam(LR), lambda: optax.adam(LR), 7),
    "adamw": Pair(lambda: jaxnn.adamw(LR), lambda: optax.adamw(LR), 7),
    "nadam": Pair(lambda: jaxnn.nadam(LR), lambda: optax.nadam(LR), 7),
    "clip+adamw": Pair(
        lambda: jaxnn.chain(jaxnn.clip_by_global_norm(1.0), jaxnn.adamw(LR)),
        lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(LR)),
        8,
    ),
    # Per-layer clip: optax's nearest is clip_by_block_rms (the same rule on each
    # leaf's RMS instead of its L2 norm, equal cost).
    "layer_clip+adamw": Pair(
        lambda: jaxnn.chain(jaxnn.clip_by_layer_norm(1.0), jaxnn.adamw(LR)),
        lambda: optax.chain(optax.clip_by_block_rms(1.0), optax.adamw(LR)),
        8,
    ),
    "agc+adamw": Pair(
        lambda: jaxnn.chain(jaxnn.adaptive_grad_clip(0.01), jaxnn.adamw(LR)),
        lambda: optax.chain(optax.adaptive_grad_clip(0.01), optax.adamw(LR)),
        9,
    ),
}
# The fresh-process compile table's default optimizers.
FRESH_DEFAULT = ("adam", "clip+adamw", "layer_clip+adamw", "agc+adamw")
APPLY = {"jaxnn": jaxnn.apply_updates, "optax": optax.apply_updates}


@dataclasses.dataclass(frozen=True)
class Row:
    """One optimizer on one case; each dict is keyed by library ("jaxnn", "optax")."""

    optimizer: str
    ms: dict[str, float]  # median step time
    bandwidth_fraction: dict[str, float]  # of the triad, minimum bytes / time
    compile_s: dict[str, float]  # in this process: indicative only
    kernels: dict[str, int]  # fusions one call launches
    traffic: dict[str, float]  # bytes those kernels stream, in units of 4 n
    temp_mb: dict[str, float]  # XLA scratch memory
    min_arrays: int  # the minimum traffic, in units of 4 n

    @property
    def ratio(self) -> float:
        """Time of jaxnn over optax: below 1, jaxnn is faster."""
        return self.ms["jaxnn"] / self.ms["optax"]

    @property
    def compile_ratio(self) -> float:
        """Compile time of jaxnn over optax."""
        return self.compile_s["jaxnn"] / self.compile_s["optax"]


@dataclasses.dataclass(frozen=True)
class Case:
    """The rows of one parameter tree, with the triad timed in the same rounds."""

    label: str
    leaves: int
    params: int
    triad_gbps: float
    rows: list[Row]


@dataclasses.dataclass(frozen=True)
class CompileRow:
    """Compile time of the tree step in fresh processes, median over processes."""

    optimizer: str
    jaxnn_s: float
    optax_s: float
    reps: int

    @property
    def ratio(self) -> float:
        """Compile time of jaxnn over optax."""
        return self.jaxnn_s / self.optax_s


def resnet50_shapes(width_div: int = 1, stages: int = 4) -> dict:
    """Parameter shapes of ResNet-50 (HWIO kernels, BN scale/bias, dense).

    `width_div` divides every width; `stages` < 4 keeps the first stages only.
    """
    shapes: dict = {}

    def conv_bn(name, k, cin, cout):
        shapes[f"{name}/kernel"] = (k, k, cin, cout)
        shapes[f"{name}/bn_scale"] = (cout,)
        shapes[f"{name}/bn_bias"] = (cout,)

    stem = 64 // width_div
    conv_bn("stem", 7, 3, stem)
    cin = stem
    for stage, (blocks, width) in enumerate(
        zip((3, 4, 6, 3)[:stages], (64, 128, 256, 512)[:stages], strict=True)
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


def compile_step(tx, apply, params, grads) -> tuple[Any, Any, float, HloStats]:
    """The donated step, compiled; its initial state, compile seconds and stats."""
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


@dataclasses.dataclass
class _Timed:
    """One library's compiled step and the buffers it updates in place."""

    step: Any
    params: Any
    state: Any
    times: list[float]


def time_interleaved(
    timed: dict[str, _Timed], grads: Any, rounds: int, warmup: int, triad: Triad
) -> tuple[dict[str, float], float]:
    """Median ms per step of each entry of `timed`, and the triad's bandwidth.

    Each round runs every step once, in alternating order (forward on even rounds,
    backward on odd ones, so neither side always follows the other), then one triad,
    so the bandwidth reference sees the same machine state as the steps.
    """
    names = list(timed)
    case_triad = len(triad.times)
    for _ in range(warmup):
        for t in timed.values():
            t.params, t.state = t.step(t.params, t.state, grads)
            jax.block_until_ready((t.params, t.state))
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            t = timed[name]
            t0 = time.perf_counter()
            t.params, t.state = t.step(t.params, t.state, grads)
            jax.block_until_ready((t.params, t.state))
            t.times.append(time.perf_counter() - t0)
        triad.run()
    ms = {name: statistics.median(t.times) * 1e3 for name, t in timed.items()}
    return ms, triad.bandwidth(since=case_triad)


def bench_case(label: str, params: dict, grads: dict, rounds: int, warmup: int, names):
    """Times each optimizer of `names` against optax on one tree; prints the table."""
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
        pair = OPTIMIZERS[name]
        timed, compile_s, stats = {}, {}, {}
        for lib in LIBRARIES:
            tx = getattr(pair, lib)()
            compiled, state, compile_s[lib], stats[lib] = compile_step(
                tx, APPLY[lib], params, grads
            )
            timed[lib] = _Timed(compiled, copy_tree(params), state, [])
        ms, triad_bw = time_interleaved(timed, grads, rounds, warmup, triad)
        row = Row(
            optimizer=name,
            ms=ms,
            bandwidth_fraction={
                lib: pair.min_arrays * 4 * n / (ms[lib] / 1e3) / triad_bw
                for lib in LIBRARIES
            },
            compile_s=compile_s,
            kernels={lib: st.fusions for lib, st in stats.items()},
            traffic={lib: st.kernel_bytes / (4 * n) for lib, st in stats.items()},
            temp_mb={lib: st.temp_bytes / 1e6 for lib, st in stats.items()},
            min_arrays=pair.min_arrays,
        )
        print(format_row(row))
        rows.append(row)
        del timed
    triad_bw = triad.bandwidth()
    print(
        f"triad a = b + s*c (median of all rounds): {triad.nbytes / triad_bw * 1e3:.2f}"
        f" ms = {triad_bw / 1e9:.1f} GB/s; %bw = minimum bytes / time against "
        "the triad of the same rounds"
    )
    return Case(label, len(jax.tree.leaves(params)), n, triad_bw / 1e9, rows)


def format_row(r: Row) -> str:
    """One line of the printed table."""
    j, o = "jaxnn", "optax"
    return (
        f"{r.optimizer:<18}{r.ms[j]:>10.2f}{r.ms[o]:>10.2f}{r.ratio:>8.2f}"
        f"{r.bandwidth_fraction[j]:>11.0%}{r.bandwidth_fraction[o]:>11.0%}"
        f"{r.compile_s[j]:>8.2f}/{r.compile_s[o]:<7.2f}{r.compile_ratio:>9.2f}"
        f"{r.kernels[j]:>7}/{r.kernels[o]:<5}"
        f"{r.traffic[j]:>7.1f}/{r.traffic[o]:<5.1f}{r.min_arrays:>5}"
        f"{r.temp_mb[j]:>8.1f}/{r.temp_mb[o]:<6.1f}"
    )


def leaf_size(quick: bool) -> int:
    """Elements of the single-leaf case."""
    return 2**14 if quick else 2**24


def tree_shapes(quick: bool) -> dict:
    """The ResNet-50 tree, or for a quick run its first stage at widths / 16.

    A quick run is a smoke test: compile time grows with the number of leaves
    (the first stage has 35 of the 161), and the figures are not for quoting.
    """
    return resnet50_shapes(16, stages=1) if quick else resnet50_shapes()


def run(
    names: list[str],
    *,
    quick: bool = False,
    rounds: int | None = None,
    fresh_compile: Sequence[str] = (),
    compile_reps: int = 5,
) -> tuple[list[Case], list[CompileRow]]:
    """Both cases for the optimizers `names`, then the fresh-process compile table.

    Args:
      names: keys of `OPTIMIZERS`.
      quick: small sizes, 3 rounds, 1 warm-up call: a smoke run.
      rounds: timed rounds (default 3 with `quick`, else 15).
      fresh_compile: optimizers whose tree step is also compiled in fresh
        processes (those not in `names` are left out).
      compile_reps: fresh processes per library for that table.

    Returns:
      The single-leaf and tree cases, and the compile table's rows.
    """
    rounds = rounds or (3 if quick else 15)
    warmup = 1 if quick else 3
    leaf_n = leaf_size(quick)
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, backend "
        f"{jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"{rounds} rounds, median; step = update + apply_updates, donated"
    )
    rng = np.random.default_rng(0)
    leaf = {"w": jnp.asarray(rng.normal(size=leaf_n), jnp.float32)}
    leaf_g = {"w": jnp.asarray(rng.normal(size=leaf_n) * 1e-2, jnp.float32)}
    label = f"single leaf 2**{int(np.log2(leaf_n))}"
    cases = [bench_case(label, leaf, leaf_g, rounds, warmup, names)]
    del leaf, leaf_g
    shapes = tree_shapes(quick)
    params, grads = make_tree(shapes, 0), make_tree(shapes, 1)
    label = "ResNet-50-shaped tree" + (" (stage 1, widths / 16)" if quick else "")
    cases.append(bench_case(label, params, grads, rounds, warmup, names))
    del params, grads
    fresh = [n for n in fresh_compile if n in names]
    compile_rows = fresh_compile_table(fresh, compile_reps, quick) if fresh else []
    return cases, compile_rows


# Glue: wrappers benchmarked against the optax equivalent and the plain optimizer.

LOSS_SCALE = 2.0**15
GLUE_REFS = ("jaxnn", "optax", "plain")


def _is_kernel(path: str) -> bool:
    return path.endswith("kernel")


def _kernel_labels(params: dict) -> dict:
    """The partition's labels as an optax user writes them (the tree is a flat dict)."""
    return {k: "adamw" if _is_kernel(k) else "sgd" for k in params}


def _split_by_hand(transforms: dict, label_of: Callable[[str], str]):
    """Each transform on its own sub-dict of the flat params dict, merged by hand.

    The plain equivalent of a partition: no masks, no `MaskedNode`s, one state per
    group built for that group's leaves only.
    """

    def select(tree, label):
        return {k: v for k, v in tree.items() if label_of(k) == label}

    def init(params):
        return {
            label: tx.init(select(params, label)) for label, tx in transforms.items()
        }

    def update(grads, state, params=None):
        out, new_state = {}, {}
        for label, tx in transforms.items():
            sub_params = None if params is None else select(params, label)
            sub_grads = select(grads, label)
            u, new_state[label] = tx.update(sub_grads, state[label], sub_params)
            out.update(u)
        return {k: out[k] for k in grads}, new_state

    return optax.GradientTransformation(init, update)


def _unscale_in_grad_dtype():
    """G * (1/S) in the gradients' own dtype, as jmp's `DynamicLossScale.unscale`."""

    def unscale(grads, params):
        del params
        return jax.tree.map(lambda g: g * jnp.asarray(1 / LOSS_SCALE, g.dtype), grads)

    return optax.stateless(unscale)


def _finite_checked(inner):
    """Plain `inner` with the least a loss-scaled step must add: a finite check.

    G * (1/S) in float32, `inner`, then the updates zeroed and the state kept
    where any unscaled gradient is NaN or inf. S lives in the state (a run-time
    value, as in any training loop) and is never adjusted.
    """

    def init(params):
        return inner.init(params), jnp.asarray(LOSS_SCALE, jnp.float32)

    def update(grads, state, params=None):
        inner_state, scale = state
        inv = 1 / scale
        g = jax.tree.map(lambda x: x.astype(jnp.float32) * inv, grads)
        finite = jaxnn.all_finite(g)
        updates, new_inner = inner.update(g, inner_state, params)
        updates = jax.tree.map(lambda u: jnp.where(finite, u, 0), updates)
        new_inner = jax.tree.map(
            lambda new, old: jnp.where(finite, new, old), new_inner, inner_state
        )
        return updates, (new_inner, scale)

    return optax.GradientTransformation(init, update)


@dataclasses.dataclass(frozen=True)
class Glue:
    """A jaxnn glue transform, its optax equivalent, and the plain optimizer."""

    jaxnn: Callable[[], Any]
    optax: Callable[[], Any]
    plain: Callable[[], Any]
    dtype: Any  # the params' (and gradients') dtype
    grad_scale: float  # the gradients handed to the step are g * grad_scale
    # (minimum bytes of the step, as a multiple of the parameter bytes)
    min_arrays: Callable[[dict], float]


def _partition_min_arrays(params: dict) -> float:
    """The minimum of the partition: 7 arrays on the kernels (adamw), 3 on the rest."""
    kernels = sum(v.size for k, v in params.items() if _is_kernel(k))
    rest = sum(v.size for k, v in params.items() if not _is_kernel(k))
    return (7 * kernels + 3 * rest) / (kernels + rest)


def _loss_scale_glue(dtype: Any) -> Glue:
    """dynamic_loss_scale(adamw) on `dtype` params and gradients scaled by S.

    Minimum: adamw's 7 arrays plus the finite check's read of g, 8 n elements.
    """
    return Glue(
        lambda: jaxnn.dynamic_loss_scale(jaxnn.adamw(LR), init_scale=LOSS_SCALE),
        lambda: optax.chain(
            _unscale_in_grad_dtype(),
            optax.apply_if_finite(optax.adamw(LR), max_consecutive_errors=2**30),
        ),
        lambda: _finite_checked(jaxnn.adamw(LR)),
        dtype,
        LOSS_SCALE,
        lambda params: 8.0,
    )


GLUE: dict[str, Glue] = {
    "partition": Glue(
        lambda: jaxnn.partition(
            {"adamw": jaxnn.adamw(LR), "sgd": jaxnn.sgd(LR)},
            jaxnn.label_by_path([(r"kernel$", "adamw")], "sgd"),
        ),
        lambda: optax.partition(
            {"adamw": optax.adamw(LR), "sgd": optax.sgd(LR)}, _kernel_labels
        ),
        lambda: _split_by_hand(
            {"adamw": jaxnn.adamw(LR), "sgd": jaxnn.sgd(LR)},
            lambda k: "adamw" if _is_kernel(k) else "sgd",
        ),
        jnp.float32,
        1.0,
        _partition_min_arrays,
    ),
    "dynamic_loss_scale": _loss_scale_glue(jnp.float16),
    "loss_scale_float32": _loss_scale_glue(jnp.float32),
    "inject_hyperparams": Glue(
        lambda: optax.inject_hyperparams(jaxnn.adamw)(learning_rate=LR),
        lambda: optax.inject_hyperparams(optax.adamw)(learning_rate=LR),
        lambda: jaxnn.adamw(LR),
        jnp.float32,
        1.0,
        lambda params: 7.0,
    ),
}
GLUE_APPLY = {
    "jaxnn": jaxnn.apply_updates,
    "optax": optax.apply_updates,
    "plain": jaxnn.apply_updates,
}


@dataclasses.dataclass(frozen=True)
class GlueRow:
    """One glue transform; each dict is keyed by "jaxnn", "optax" and "plain"."""

    glue: str
    dtype: str
    ms: dict[str, float]  # median step time
    bandwidth_fraction: dict[str, float]  # of the triad, minimum bytes / time
    compile_s: dict[str, float]  # in this process: indicative only
    kernels: dict[str, int]  # fusions one call launches
    traffic: dict[str, float]  # bytes those kernels stream / parameter bytes
    temp_mb: dict[str, float]  # XLA scratch memory
    min_arrays: float  # the minimum traffic / parameter bytes

    @property
    def ratio(self) -> float:
        """Time of jaxnn's glue over optax's equivalent (target <= 1)."""
        return self.ms["jaxnn"] / self.ms["optax"]

    @property
    def ratio_plain(self) -> float:
        """Time of jaxnn's glue over the plain optimizer (target <= 1.05)."""
        return self.ms["jaxnn"] / self.ms["plain"]


@dataclasses.dataclass(frozen=True)
class GlueCase:
    """The glue rows on one tree, with the triad timed in the same rounds."""

    label: str
    leaves: int
    params: int
    triad_gbps: float
    rows: list[GlueRow]


def bench_glue(
    shapes: dict, label: str, rounds: int, warmup: int, names: Sequence[str]
) -> GlueCase:
    """Times each glue of `names` against its optax equivalent and the plain step."""
    base_params, base_grads = make_tree(shapes, 0), make_tree(shapes, 1)
    n = sum(x.size for x in jax.tree.leaves(base_params))
    triad = Triad(n)
    for _ in range(warmup):
        triad.run(record=False)
    print(f"\n== glue on the {label}: {len(shapes)} leaves, {n / 1e6:.1f}M params")
    header = (
        f"{'glue':<20}{'dtype':>8}{'jaxnn ms':>10}{'optax ms':>10}{'plain ms':>10}"
        f"{'j/optax':>9}{'j/plain':>9}{'%bw j/o/p':>15}{'kernels j/o/p':>17}"
        f"{'traffic j/o/p':>19}{'min':>6}{'temp MB j/o/p':>19}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for name in names:
        glue = GLUE[name]
        params = jax.tree.map(lambda x, g=glue: x.astype(g.dtype), base_params)
        grads = jax.tree.map(
            lambda x, g=glue: (x * g.grad_scale).astype(g.dtype), base_grads
        )
        param_bytes = sum(x.nbytes for x in jax.tree.leaves(params))
        timed, compile_s, stats = {}, {}, {}
        for ref in GLUE_REFS:
            tx = getattr(glue, ref)()
            compiled, state, compile_s[ref], stats[ref] = compile_step(
                tx, GLUE_APPLY[ref], params, grads
            )
            timed[ref] = _Timed(compiled, copy_tree(params), state, [])
        ms, triad_bw = time_interleaved(timed, grads, rounds, warmup, triad)
        min_arrays = glue.min_arrays(params)
        row = GlueRow(
            glue=name,
            dtype=jnp.dtype(glue.dtype).name,
            ms=ms,
            bandwidth_fraction={
                ref: min_arrays * param_bytes / (ms[ref] / 1e3) / triad_bw
                for ref in GLUE_REFS
            },
            compile_s=compile_s,
            kernels={ref: st.fusions for ref, st in stats.items()},
            traffic={ref: st.kernel_bytes / param_bytes for ref, st in stats.items()},
            temp_mb={ref: st.temp_bytes / 1e6 for ref, st in stats.items()},
            min_arrays=min_arrays,
        )
        print(format_glue_row(row))
        rows.append(row)
        del timed
    triad_bw = triad.bandwidth()
    print(
        f"ratios: j/optax = jaxnn's glue / optax's equivalent (target <= 1), "
        f"j/plain = jaxnn's glue / the plain optimizer (target <= 1.05); triad "
        f"{triad_bw / 1e9:.1f} GB/s"
    )
    return GlueCase(label, len(shapes), n, triad_bw / 1e9, rows)


def format_glue_row(r: GlueRow) -> str:
    """One line of the printed glue table."""

    def three(d, fmt):
        return "/".join(format(d[ref], fmt) for ref in GLUE_REFS)

    return (
        f"{r.glue:<20}{r.dtype:>8}{r.ms['jaxnn']:>10.2f}{r.ms['optax']:>10.2f}"
        f"{r.ms['plain']:>10.2f}{r.ratio:>9.3f}{r.ratio_plain:>9.3f}"
        f"{three(r.bandwidth_fraction, '.0%'):>15}{three(r.kernels, 'd'):>17}"
        f"{three(r.traffic, '.1f'):>19}{r.min_arrays:>6.1f}"
        f"{three(r.temp_mb, '.1f'):>19}"
    )


def run_glue(
    names: Sequence[str], *, quick: bool = False, rounds: int | None = None
) -> GlueCase:
    """The glue rows `names` (keys of `GLUE`) on the ResNet-50 tree.

    Args:
      names: keys of `GLUE`.
      quick: the tree's first stage at widths / 16, 3 rounds, 1 warm-up call.
      rounds: timed rounds (default 3 with `quick`, else 15).

    Returns:
      The glue case: one `GlueRow` per name.
    """
    rounds = rounds or (3 if quick else 15)
    label = "ResNet-50-shaped tree" + (" (stage 1, widths / 16)" if quick else "")
    return bench_glue(tree_shapes(quick), label, rounds, 1 if quick else 3, names)


def compile_once(name: str, lib: str, quick: bool) -> float:
    """Seconds to trace, lower and compile one step on the ResNet-50 tree."""
    shapes = tree_shapes(quick)
    params, grads = make_tree(shapes, 0), make_tree(shapes, 1)
    tx = getattr(OPTIMIZERS[name], lib)()
    return compile_step(tx, APPLY[lib], params, grads)[2]


def fresh_compile_table(names: list[str], reps: int, quick: bool) -> list[CompileRow]:
    """Compile times of the tree step, each in a fresh process (no warm caches)."""
    print(f"\n== compile time in fresh processes, ResNet-50 tree, median of {reps}")
    print(f"{'optimizer':<18}{'jaxnn s':>10}{'optax s':>10}{'ratio':>8}")
    rows = []
    for name in names:
        times: dict[str, list[float]] = {lib: [] for lib in LIBRARIES}
        for i in range(reps):
            for lib in LIBRARIES if i % 2 == 0 else LIBRARIES[::-1]:
                command = [sys.executable, __file__, "--compile-one", name, lib]
                out = subprocess.run(
                    command + (["--quick"] if quick else []),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                times[lib].append(float(out.stdout.split()[-1]))
        row = CompileRow(
            name,
            statistics.median(times["jaxnn"]),
            statistics.median(times["optax"]),
            reps,
        )
        print(f"{name:<18}{row.jaxnn_s:>10.2f}{row.optax_s:>10.2f}{row.ratio:>8.2f}")
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, 3 rounds: a smoke run"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds (default 15; 3 quick)"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        choices=list(OPTIMIZERS),
        metavar="NAME",
        help=f"optimizers to run (default all: {' '.join(OPTIMIZERS)})",
    )
    parser.add_argument(
        "--fresh-compile",
        nargs="*",
        default=None,
        metavar="NAME",
        help="optimizers whose tree step is also compiled in fresh processes "
        f"(default {' '.join(FRESH_DEFAULT)}; none with --quick)",
    )
    parser.add_argument(
        "--compile-reps",
        type=int,
        default=5,
        help="fresh processes per library for that table (default 5)",
    )
    parser.add_argument(
        "--glue",
        nargs="*",
        default=None,
        choices=list(GLUE),
        metavar="NAME",
        help="glue transforms to time against optax's equivalent and the plain "
        f"optimizer, after the optimizers (default all: {' '.join(GLUE)}, or none "
        "with --only; `--glue` alone: none)",
    )
    parser.add_argument(
        "--compile-one",
        nargs=2,
        metavar=("NAME", "LIB"),
        help="only compile NAME's tree step with LIB (jaxnn or optax) and print the "
        "seconds: what each fresh process of the compile table runs",
    )
    args = parser.parse_args()
    if args.compile_one:
        name, lib = args.compile_one
        if name not in OPTIMIZERS or lib not in LIBRARIES:
            parser.error(f"--compile-one: unknown optimizer or library {name} {lib}")
        print(compile_once(name, lib, args.quick))
        return
    fresh = args.fresh_compile
    if fresh is None:
        fresh = [] if args.quick else list(FRESH_DEFAULT)
    run(
        args.only or list(OPTIMIZERS),
        quick=args.quick,
        rounds=args.rounds,
        fresh_compile=fresh,
        compile_reps=args.compile_reps,
    )
    glue = args.glue
    if glue is None:
        glue = [] if args.only else list(GLUE)
    if glue:
        run_glue(glue, quick=args.quick, rounds=args.rounds)


if __name__ == "__main__":
    main()
