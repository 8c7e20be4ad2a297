"""The registry of transforms (tests/registry.py) is complete, consistent and used.

- Every public jaxnn function whose return annotation is a GradientTransformation
  is the `factory` of an entry, or is in `EXCLUDED` with the module that covers it:
  a new transform added to jaxnn without an entry fails here.
- Every entry is well formed: a known kind, skip keys that are suites with reasons,
  a reason wherever optax has no twin, and a factory that is public.
- Every suite really runs its entries: the collected test ids of each suite's
  module (`pytest --collect-only`, one subprocess, nothing compiled) name every
  entry of the suite; the 8-device scripts take their entries from the registry
  and their calling test asserts that each one was reported.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import typing

import jax
import pytest

import jaxnn
from tests import registry
from tests.helpers import ROOT

KINDS = {"optimizer", "transform", "clip", "wrapper"}

# Public factories of a GradientTransformation that have no registry entry, and why.
EXCLUDED = {
    "partition": "labels route leaves to several transforms: tests/test_partition.py "
    "(against optax.partition, with its own state and sharding checks)",
    "dynamic_loss_scale": "needs a loss scale threaded through the loss: "
    "tests/test_loss_scaling.py",
    "with_extra_args_support": "adapts a plain (init, update) pair, not a "
    "transform of its own: tests/test_base.py",
}

# The suites run in an 8-device subprocess: (script, module that runs it).
SCRIPTS = {
    "sharding_devices": ("tests/_sharding_check.py", "tests/test_sharding.py"),
    "optax_sharding": (
        "tests/_optax_sharding_check.py",
        "tests/test_optax_findings.py",
    ),
}


def _builds_transform(fn) -> bool:
    """True if `fn`'s return annotation is (a subclass of) GradientTransformation."""
    if not callable(fn) or isinstance(fn, type):
        return False
    try:
        ret = typing.get_type_hints(fn).get("return")
    except TypeError:  # not a function (a type alias, a constant)
        return False
    return isinstance(ret, type) and issubclass(ret, jaxnn.GradientTransformation)


TRANSFORM_FACTORIES = {n for n in jaxnn.__all__ if _builds_transform(getattr(jaxnn, n))}


def test_the_annotation_rule_finds_the_factories():
    # A guard on the rule itself: it must find the factories we know of.
    known = {"adam", "sgd", "chain", "masked", "clip_by_value", "skip_nonfinite"}
    assert known <= TRANSFORM_FACTORIES
    assert not {"apply_updates", "global_norm", "cosine_decay_schedule"} & (
        TRANSFORM_FACTORIES
    )


def test_every_transform_factory_has_an_entry_or_a_reason():
    covered = {e.factory for e in registry.ENTRIES}
    missing = TRANSFORM_FACTORIES - covered - set(EXCLUDED)
    assert not missing, (
        f"jaxnn factories without a registry entry (tests/registry.py) or an "
        f"exclusion in tests/test_registry.py: {sorted(missing)}"
    )
    stale = set(EXCLUDED) - TRANSFORM_FACTORIES
    assert not stale, f"excluded names that are no transform factories: {stale}"
    assert not set(EXCLUDED) & covered, "an excluded factory has entries"
    assert all(EXCLUDED.values())


@pytest.mark.parametrize("entry", registry.ENTRIES, ids=lambda e: e.name)
def test_entry_is_well_formed(entry):
    assert entry.factory in jaxnn.__all__, entry.factory
    assert entry.factory in TRANSFORM_FACTORIES, entry.factory
    assert entry.kind in KINDS, entry.kind
    assert re.fullmatch(r"[a-z0-9_+]+", entry.name), "ids: no '-' or spaces"
    for suite, reason in entry.skip.items():
        assert suite in registry.SUITES, f"unknown suite {suite!r}"
        assert isinstance(reason, str) and reason.strip(), f"no reason for {suite}"
    if entry.theirs is None:
        assert entry.no_twin.strip(), "theirs=None needs a no_twin reason"
        assert "properties" in entry.skip, "no twin: nothing to compare with"
    else:
        assert not entry.no_twin, "has a twin: no_twin must be empty"
    # The keywords are the factory's own (unless ours wraps it, e.g. a chain).
    if entry.ours is getattr(jaxnn, entry.factory):
        params = inspect.signature(entry.ours).parameters
        assert set(entry.hparams) <= set(params), set(entry.hparams) - set(params)
    assert any(s not in entry.skip for s in registry.SUITES), "in no suite at all"


def test_suites_are_consistent():
    assert set(registry.SUITE_MODULES) == set(registry.SUITES)
    for suite in registry.SUITES:
        assert registry.entries(suite), f"suite {suite} is empty"
    assert set(registry.names("checkpoint_orbax")) <= set(registry.names("checkpoint"))
    with pytest.raises(ValueError, match="unknown suite"):
        registry.entries("no_such_suite")


def test_make_and_twin_build_every_entry():
    params = {"w": jax.numpy.ones((2, 3)), "b": jax.numpy.ones(3)}
    for e in registry.ENTRIES:
        for p in (None, params):
            assert isinstance(e.make(p), jaxnn.GradientTransformation), e.name
            if e.theirs is not None:
                tx = e.twin(p)
                assert callable(tx.init) and callable(tx.update), e.name


def _collected_ids(modules):
    """{module path: [test ids]} from one `pytest --collect-only` subprocess."""
    # Not this run's pytest settings (an xdist worker's, PYTEST_ADDOPTS).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    args = ["--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider", *modules]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = {m: [] for m in modules}
    for line in proc.stdout.splitlines():
        path, sep, test = line.partition("::")
        if sep and path in out:
            out[path].append(test)
    return out


def _param_ids(test_id):
    """The parts of a test id's parameter list: 'f[a-b]' -> {'a', 'b'}."""
    m = re.search(r"\[(.*)\]$", test_id)
    return set(m.group(1).split("-")) if m else set()


def test_every_suite_module_runs_its_entries():
    in_process = {s: m for s, m in registry.SUITE_MODULES.items() if s not in SCRIPTS}
    ids = _collected_ids(sorted(set(in_process.values())))
    problems = []
    for suite, module in in_process.items():
        seen = set().union(*map(_param_ids, ids[module]))
        missing = set(registry.names(suite)) - seen
        if missing:
            problems.append(f"{module} does not run {sorted(missing)} ({suite})")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("suite", sorted(SCRIPTS))
def test_every_8_device_script_runs_its_entries(suite):
    # The scripts cannot be imported here (they force 8 devices before importing
    # jax): they must take their entries from the registry, and the test that runs
    # them must check the name of every entry in their output.
    script, caller = SCRIPTS[suite]
    assert registry.SUITE_MODULES[suite] == script
    text = (ROOT / script).read_text()
    assert f'registry.entries("{suite}")' in text, script
    assert f'registry.names("{suite}")' in (ROOT / caller).read_text(), caller
