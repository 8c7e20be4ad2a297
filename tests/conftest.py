"""Shared test configuration: compilation cache, strict rank promotion, eager/jit.

Warnings are errors (pyproject's filterwarnings). Strict *dtype* promotion cannot be
global because optax itself mixes Python floats with int32 counts; jaxnn code is run
under `jax.numpy_dtype_promotion("strict")` in `tests/test_strict_dtypes.py` instead.
"""

import os
from pathlib import Path

# JAX's persistent compilation cache, in `.jax_cache/` at the root of the checkout
# (git-ignored). Compilation dominates the suite: a second run, and every
# subprocess the tests start (examples, 8-device checks, the benchmarks), reads
# the executables compiled before instead of compiling them again. Set in the
# environment before jax is imported, so that those subprocesses inherit it, and
# with `jax.config.update` below in case a plugin imported jax first. A variable
# already set by the user wins (e.g. JAX_COMPILATION_CACHE_DIR elsewhere, or
# JAX_ENABLE_COMPILATION_CACHE=false to compile everything afresh).
#
# It cannot hide a failure: the cache key is a hash of the whole program (the
# StableHLO after tracing, so any change to jaxnn, optax or a test changes it),
# the compile options, the XLA flags, the jax/jaxlib version and the backend and
# device; a hit returns the executable that the same compilation produced, and
# the test then runs it and checks its outputs as before. An unreadable entry (a
# worker reading one that another is still writing) is a warning and a fresh
# compilation (pyproject's filterwarnings keeps that one warning from failing).
# Every compilation is cached, however short (min compile time 0, no minimum
# size): the suite's many small programs are most of its compile time. Nothing
# is evicted (eviction needs the `filelock` package): entries of programs that no
# longer exist stay until `.jax_cache/` is deleted, which is always safe.
ROOT = Path(__file__).resolve().parents[1]
CACHE = {
    "JAX_COMPILATION_CACHE_DIR": str(ROOT / ".jax_cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
}
for _name, _value in CACHE.items():
    os.environ.setdefault(_name, _value)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)
jax.config.update(
    "jax_persistent_cache_min_entry_size_bytes",
    int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]),
)

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(params=["eager", "jit"])
def maybe_jit(request):
    """Returns a function wrapper: identity in the eager run, `jax.jit` in the other."""
    if request.param == "jit":
        return jax.jit
    return lambda f, **kwargs: f


# The slowest modules first (CPU seconds on a fresh clone, largest first). With
# `--dist loadfile` each module runs whole on one worker, handed out in collection
# order; started last, one of these would leave the other worker idle while it
# finishes. Longest first keeps both cores busy to the end. The rest keep their
# order; a module missing here only runs later. Tests inside a module keep theirs.
SLOWEST_FIRST = [
    "test_properties.py",
    "test_examples.py",
    "test_docs.py",
    "test_microbatching.py",
    "test_diagnostics.py",
    "test_clipping.py",
    "test_checkpoint.py",
    "test_strict_dtypes.py",
    "test_dropout.py",
    "test_float16_example.py",
    "test_partition.py",
    "test_benchmarks.py",
]


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
