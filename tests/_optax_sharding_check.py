"""Run by tests/test_optax_findings.py in a subprocess with 8 forced CPU devices.

For every entry of the "optax_sharding" suite of tests/registry.py (each clip
chained before Adam, and one optimizer per state layout) on Auto-axes and
Explicit-axes meshes of 2x4 devices, params are placed with the user's
NamedShardings (sharded and replicated leaves), the state is built by an
eager `init`, and one jitted step (no out_shardings: the compiler chooses) is run.
The new params and the updates must keep each param's sharding, and every state
leaf shaped like a param must have that param's sharding. The optax twins are run
the same way, as the reference. To keep compilations few, all transforms of one
library and mesh run in one program (each on its own gradients); each is traced
alone first, so one that fails to trace is reported without hiding the others.

Prints one line per (mesh, layout, transform, library): `RESULT {json}` with the
list of `problems` (empty: the shardings were kept), then `DONE`.
"""

import os

# Only the partitioner's sharding decisions matter here: skip the backend's
# optimizations (a quarter of the compile time).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8"
    + " --xla_backend_optimization_level=0"
)

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxnn
from tests import registry
from tests.registry import grads_like

jax.config.update("jax_numpy_rank_promotion", "raise")
assert jax.device_count() == 8, jax.devices()

rng = np.random.default_rng(0)
SHAPES = {"w1": (16, 32), "b1": (32,), "w2": (32, 8), "b2": (8,), "emb": (8, 4)}
PARAMS = {
    k: jnp.asarray(rng.normal(size=s) * 0.3, jnp.float32) for k, s in SHAPES.items()
}
# Two layouts: the partitioner's choices depend on the whole program, and each
# layout shows a different drift (a replicated vector next to 'model'-sharded ones
# is moved to P('model') when nothing is sharded over 'data').
LAYOUTS = {
    "mixed": {
        "w1": P(None, "model"),
        "b1": P("model"),
        "w2": P("model", None),
        "b2": P(),  # a replicated vector next to sharded ones
        "emb": P("data", None),
    },
    "model_only": {
        "w1": P(None, "model"),
        "b1": P("model"),
        "w2": P("model", None),
        "b2": P(),
    },
}
# The clips chained before Adam (the moments after a clip must keep the params'
# shardings too) and the optimizers, one per state layout.
SELECTED = registry.entries("optax_sharding")
SHARDING_CLIPS = [e.name for e in SELECTED if e.name.endswith("+adam")]
SHARDING_OPTIMIZERS = [e.name for e in SELECTED if e.name not in SHARDING_CLIPS]
# (mesh kind, layout, transforms, libraries). Each clip is checked wherever a
# drift was seen (and against optax on Auto meshes, where optax keeps the
# shardings; on Explicit meshes optax's adaptive_grad_clip fails to trace), every
# optimizer once per mesh kind. Compiles dominate the run time, hence the plan.
PLAN = [
    ("auto", "mixed", SHARDING_CLIPS + SHARDING_OPTIMIZERS, ("jaxnn",)),
    ("auto", "mixed", SHARDING_CLIPS, ("optax",)),
    ("auto", "model_only", SHARDING_CLIPS, ("jaxnn", "optax")),
    ("explicit", "mixed", SHARDING_CLIPS + SHARDING_OPTIMIZERS, ("jaxnn",)),
]


def spec_str(x):
    s = x.sharding
    return str(getattr(s, "spec", s))


def leaf_problems(tree, shardings, where):
    out = []
    for path, x in jax.tree.leaves_with_path(tree):
        want = shardings[path[0].key]
        if not x.sharding.is_equivalent_to(want, x.ndim):
            out.append(
                f"{where}{jax.tree_util.keystr(path)}: {spec_str(x)}, the user's "
                f"sharding is {want.spec}"
            )
    return out


def state_problems(state, params, shardings, where):
    by_shape = {params[k].shape: shardings[k] for k in params if params[k].ndim}
    out = []
    for path, x in jax.tree.leaves_with_path(state):
        want = by_shape.get(x.shape) if x.ndim else None
        if want is not None and not x.sharding.is_equivalent_to(want, x.ndim):
            out.append(
                f"{where} state{jax.tree_util.keystr(path)} {x.shape}: "
                f"{spec_str(x)}, the param's is {want.spec}"
            )
    return out


def make_step(entries):
    """One jitted step for several transforms (no out_shardings: XLA chooses)."""

    @jax.jit
    def step(params, states):
        out = []
        for (k, tx, apply), s in zip(entries, states, strict=True):
            updates, s = tx.update(grads_like(params, k), s, params)
            out.append((apply(params, updates), s, updates))
        return out

    return step


def run_config(kind, layout, names, libs, emit):
    axis_type = AxisType.Auto if kind == "auto" else AxisType.Explicit
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(axis_type,) * 2)
    specs = LAYOUTS[layout]
    host = {k: PARAMS[k] for k in specs}
    shardings = {k: NamedSharding(mesh, s) for k, s in specs.items()}
    with jax.set_mesh(mesh):
        params = jax.device_put(host, shardings)
        assert not leaf_problems(params, shardings, "input")
        results = {}
        for lib in libs:
            entries, states, meta = [], [], []
            for k, name in enumerate(names):
                entry = registry.BY_NAME[name]
                if lib == "optax" and entry.theirs is None:
                    continue
                make = entry.make if lib == "jaxnn" else entry.twin
                apply = jaxnn.apply_updates if lib == "jaxnn" else optax.apply_updates
                key = (name, lib)
                try:
                    tx = make(host)
                    state = tx.init(params)
                    problems = state_problems(state, params, shardings, "init:")
                    # Trace alone first: a failure (e.g. a sharding type error on an
                    # Explicit mesh) is reported without stopping the others.
                    jax.eval_shape(make_step([(k, tx, apply)]), params, [state])
                except Exception as e:
                    results[key] = [f"{type(e).__name__}: {e}"[:700]]
                    continue
                entries.append((k, tx, apply))
                states.append(state)
                meta.append((key, problems))
            if not entries:
                continue
            out = make_step(entries)(params, states)
            for (key, problems), (new_params, new_state, updates) in zip(
                meta, out, strict=True
            ):
                problems = problems + leaf_problems(new_params, shardings, "params")
                problems += leaf_problems(updates, shardings, "updates")
                problems += state_problems(new_state, params, shardings, "step:")
                results[key] = problems
        for (name, lib), problems in results.items():
            emit(
                {
                    "mesh": kind,
                    "layout": layout,
                    "name": name,
                    "lib": lib,
                    "problems": problems,
                }
            )


def main(only):
    def emit(result):
        print("RESULT " + json.dumps(result), flush=True)

    for kind, layout, names, libs in PLAN:
        names = [n for n in names if not only or n in only]
        run_config(kind, layout, names, libs, emit)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
