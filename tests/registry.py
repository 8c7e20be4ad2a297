"""The one registry of jaxnn transforms used by every cross-cutting test module.

Each `Entry` is one configured transform: a jaxnn factory called with keyword
hyperparameters, its optax twin called with the same keywords, and flags that the
suites read instead of keeping their own name sets. Structural variants (nesterov,
centered, momentum on or off, masks, schedules, chains, wrappers) are entries of
their own, so a test id names exactly what ran. `tests/test_registry.py` keeps the
registry complete (every public jaxnn factory of a GradientTransformation is the
`factory` of an entry or excluded with a reason) and checks that each suite module
really runs `entries(suite)`.

Fields of `Entry`:

- `name`: unique id, used as the test id in every suite.
- `factory`: the public jaxnn name the entry exercises (`jaxnn.<factory>`); for
  chains, the transform the chain is there to test.
- `ours(**hparams)`: builds the jaxnn transform. Keyword names are the jaxnn
  factory's own, so that suites override them (`make(learning_rate=1e-2)`, traced
  or sampled values in the property tests).
- `theirs(**hparams)`: builds the optax twin from the same keywords, or None where
  optax has none (then `no_twin` says why). `skip_nonfinite`'s twin is its inner
  optimizer: the same on finite gradients only.
- `hparams`: the fixed values most suites use. A value wrapped in `FromParams(fn)`
  is a function of the params: `make(params=p)` passes `fn(p)` (e.g. a tree mask
  built from the params, as optax users build them), `make()` passes `fn` itself
  (a callable mask: the same mask, computed by the library at `init`).
  A `PerLibrary(jaxnn=..., optax=...)` value gives each library its own (schedules).
- `kind`: "optimizer" (returns updates to add to the params), "transform" (a
  gradient transformation meant to be chained), "clip", or "wrapper" (wraps or
  chains other transforms).
- `squares`: keeps a second moment (sum or average of g²): g² overflows float32
  above ~1.8e19, and the moment loses range in bfloat16/float16.
- `param_term`: adds a function of the params (zero gradients give a non-zero
  update).
- `centered`: subtracts the squared first moment (G − m²): inf − inf = NaN when g²
  overflows.
- `same_state`: optax's state has the same layout (the suites compare it leaf by
  leaf with ours).
- `skip`: {suite: reason} for the suites the entry is not in; `entries(suite)` is
  every entry not skipped there.

`SUITES` name the cross-cutting tests (`SUITE_MODULES` says where each runs):
properties (hypothesis equivalence with optax), adversarial (extreme gradients),
sharding (abstract init) and sharding_devices (8 devices), checkpoint and
checkpoint_orbax (bit-identical resume), strict_dtypes, optax_findings (issue 11)
and optax_sharding (its 8-device part), optimizers (trajectories, convergence).
Costly suites (one compilation, or one 8-device program, per entry) select a few
entries: every other entry names in `skip` why the selected ones already cover it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

import jaxnn

SUITES = (
    "properties",
    "adversarial",
    "sharding",
    "sharding_devices",
    "checkpoint",
    "checkpoint_orbax",
    "strict_dtypes",
    "optax_findings",
    "optax_sharding",
    "optimizers",
)

# Where each suite runs: the test module whose collected ids must name every entry of
# the suite, and for the 8-device ones the subprocess script that runs them (its
# entries are the module-level `SELECTED` list, printed by the script's checks).
SUITE_MODULES = {
    "properties": "tests/test_properties.py",
    "adversarial": "tests/test_adversarial.py",
    "sharding": "tests/test_sharding.py",
    "sharding_devices": "tests/_sharding_check.py",
    "checkpoint": "tests/test_checkpoint.py",
    "checkpoint_orbax": "tests/test_checkpoint.py",
    "strict_dtypes": "tests/test_strict_dtypes.py",
    "optax_findings": "tests/test_optax_findings.py",
    "optax_sharding": "tests/_optax_sharding_check.py",
    "optimizers": "tests/test_optimizers.py",
}


@dataclasses.dataclass(frozen=True)
class FromParams:
    """A hyperparameter computed from the params (see `Entry.make`)."""

    fn: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class PerLibrary:
    """A hyperparameter each library gets its own of (e.g. a schedule)."""

    jaxnn: Any
    optax: Any


@dataclasses.dataclass(frozen=True)
class Entry:
    """One configured jaxnn transform and its optax twin (fields: module docstring)."""

    name: str
    factory: str
    ours: Callable[..., Any]
    theirs: Callable[..., Any] | None
    hparams: Mapping[str, Any]
    kind: str
    squares: bool = False
    param_term: bool = False
    centered: bool = False
    same_state: bool = True
    no_twin: str = ""
    skip: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "hparams", types.MappingProxyType(dict(self.hparams)))
        object.__setattr__(self, "skip", types.MappingProxyType(dict(self.skip)))

    def _kwargs(self, lib, params, overrides):
        def resolve(v):
            if isinstance(v, PerLibrary):
                v = getattr(v, lib)
            if isinstance(v, FromParams):
                v = v.fn if params is None else v.fn(params)
            return v

        return {k: resolve(v) for k, v in {**self.hparams, **overrides}.items()}

    def make(self, params=None, **overrides):
        """The jaxnn transform with `hparams` updated by `overrides`."""
        return self.ours(**self._kwargs("jaxnn", params, overrides))

    def twin(self, params=None, **overrides):
        """The optax twin with the same keywords (an error if there is none)."""
        if self.theirs is None:
            raise ValueError(f"{self.name} has no optax twin: {self.no_twin}")
        return self.theirs(**self._kwargs("optax", params, overrides))


def grads_like(params, k=0):
    """Deterministic, element-wise 'gradients' (they keep the params' shardings).

    `k` shifts them, so that the gradients of several transforms run in one
    program are different computations (not merged by the compiler).
    """
    return jax.tree.map(
        lambda p: (jnp.sin(3 * p + 0.01 * k) + 0.25 * p + 0.1).astype(p.dtype), params
    )


# --- helpers for the entries --------------------------------------------------------


def matrix_mask(params):
    """True for leaves of rank >= 2 (Python bools, as masks must be)."""
    return jax.tree.map(lambda x: x.ndim >= 2, params)


def half_life_schedule(count):
    """0.1 halved every 4 steps: a schedule as a plain function of the count."""
    return 0.1 * 0.5 ** (count / 4)


def double(updates, params):
    del params
    return jax.tree.map(lambda g: 2 * g, updates)


def reference_layer_norm_clip(max_norm):
    """clip_by_layer_norm from optax: clip_by_global_norm applied to each leaf."""
    clip = optax.clip_by_global_norm(max_norm)

    def update(updates, state, params=None, **extra):
        del params, extra
        return jax.tree.map(lambda g: clip.update(g, clip.init(g))[0], updates), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _drop(fn, *names):
    """`fn` called without the jaxnn-only keywords `names` (optax has none of them)."""

    @functools.wraps(fn)
    def call(**kw):
        return fn(**{k: v for k, v in kw.items() if k not in names})

    return call


def _renamed(fn, **names):
    """`fn` with jaxnn keyword k passed as optax's `names[k]`."""

    def call(**kw):
        return fn(**{names.get(k, k): v for k, v in kw.items()})

    return call


# --- why entries are left out of a suite ---------------------------------------------

_COSTLY = {
    "sharding": (
        "an abstract init per entry: the entries here cover every kind of state "
        "(counts, traces, sums of squares, centered moments, float32 moments, "
        "masks, chains, skip_nonfinite, per-leaf norms); this init is built from "
        "the same parts"
    ),
    "sharding_devices": (
        "one 8-device program per entry: adam, clip_adamw, sgd_momentum, adagrad "
        "and rmsprop_centered_momentum cover every kind of optimizer state "
        "(trace, sums of squares, centered moments, clip state in a chain)"
    ),
    "optax_sharding": (
        "8-device programs per entry: each clip before Adam and one optimizer per "
        "state layout are there; this entry adds no new layout or reduction"
    ),
    "checkpoint": (
        "one compiled train step per entry: the optimizers of the suite cover "
        "every state type (counts, traces, sums of squares, centered moments, "
        "chains, skip_nonfinite's counters); this one adds none (a mask adds only "
        "MaskedNode placeholders, which hold no arrays)"
    ),
    "checkpoint_orbax": (
        "orbax round trips are slow: a chain (clip_adamw) and skip_nonfinite hold "
        "every state type; the other entries are checked with numpy.savez"
    ),
}


def _costly(*keep):
    """Skip reasons for the costly suites, except those in `keep`."""
    return {s: r for s, r in _COSTLY.items() if s not in keep}


_PARTS = (
    "a part of the optimizers of this suite, which trace it"
    " (optimizers are chains of these transforms)"
)
_NO_SAMPLED = (
    "no hyperparameter to sample (a function or a fixed composition); "
    "compared with optax in tests/test_optax_findings.py and tests/test_transforms.py"
)
_LR_SCHEDULE = (
    "its learning rate is a schedule, which this suite overrides with numbers; "
    "schedules as learning rates are tested in test_schedule_as_learning_rate_*"
)
_e = Entry  # (name, factory, ours, theirs, hparams, kind, **flags)


_sq = dict(squares=True)
_not_optimizers = {"optimizers": "not an optimizer (test_optimizers trains with it)"}

ENTRIES: tuple[Entry, ...] = (
    # ---------------------------------------------------------------- transforms
    _e(
        "scale",
        "scale",
        jaxnn.scale,
        optax.scale,
        dict(step_size=-0.1),
        "transform",
        skip={**_costly(), **_not_optimizers, "strict_dtypes": _PARTS},
    ),
    _e(
        "scale_by_learning_rate",
        "scale_by_learning_rate",
        jaxnn.scale_by_learning_rate,
        optax.scale_by_learning_rate,
        dict(learning_rate=0.1),
        "transform",
        skip={**_costly(), **_not_optimizers, "strict_dtypes": _PARTS},
    ),
    _e(
        "scale_by_schedule",
        "scale_by_schedule",
        jaxnn.scale_by_schedule,
        optax.scale_by_schedule,
        dict(step_size_fn=half_life_schedule),
        "transform",
        skip={
            "strict_dtypes": "a schedule times the gradients: the entries here with "
            "schedules (adam_schedule, adamw_warmup_cosine, sgd_exponential_decay, "
            "sgd_piecewise) trace the same",
            **_costly(),
            **_not_optimizers,
            "properties": _NO_SAMPLED,
            "adversarial": "a schedule times the gradients: scale's case",
        },
    ),
    _e(
        "trace",
        "trace",
        jaxnn.trace,
        optax.trace,
        dict(decay=0.9),
        "transform",
        skip={**_costly(), **_not_optimizers, "strict_dtypes": _PARTS},
    ),
    _e(
        "trace_nesterov",
        "trace",
        jaxnn.trace,
        optax.trace,
        dict(decay=0.9, nesterov=True),
        "transform",
        skip={
            **_costly(),
            **_not_optimizers,
            "strict_dtypes": _PARTS,
            "optax_findings": "trace's state layout and its findings are trace's",
        },
    ),
    _e(
        "scale_by_rss",
        "scale_by_rss",
        jaxnn.scale_by_rss,
        optax.scale_by_rss,
        {},
        "transform",
        **_sq,
        skip={**_costly(), **_not_optimizers, "strict_dtypes": _PARTS},
    ),
    _e(
        "scale_by_rms",
        "scale_by_rms",
        jaxnn.scale_by_rms,
        optax.scale_by_rms,
        {},
        "transform",
        **_sq,
        skip={**_costly(), **_not_optimizers, "strict_dtypes": _PARTS},
    ),
    _e(
        "scale_by_rms_centered",
        "scale_by_rms",
        jaxnn.scale_by_rms,
        _drop(optax.scale_by_stddev, "centered"),
        dict(centered=True),
        "transform",
        **_sq,
        centered=True,
        skip={**_costly(), **_not_optimizers, "strict_dtypes": _PARTS},
    ),
    _e(
        "scale_by_adam",
        "scale_by_adam",
        jaxnn.scale_by_adam,
        optax.scale_by_adam,
        {},
        "transform",
        **_sq,
        skip={**_costly(), **_not_optimizers, "strict_dtypes": _PARTS},
    ),
    _e(
        "scale_by_adam_nesterov",
        "scale_by_adam",
        jaxnn.scale_by_adam,
        optax.scale_by_adam,
        dict(nesterov=True),
        "transform",
        **_sq,
        skip={
            **_costly(),
            **_not_optimizers,
            "strict_dtypes": _PARTS,
            "optax_findings": "scale_by_adam's state layout and findings",
        },
    ),
    _e(
        "add_decayed_weights",
        "add_decayed_weights",
        jaxnn.add_decayed_weights,
        optax.add_decayed_weights,
        dict(weight_decay=0.1),
        "transform",
        param_term=True,
        skip={**_costly(), **_not_optimizers},
    ),
    _e(
        "add_decayed_weights_schedule",
        "add_decayed_weights",
        jaxnn.add_decayed_weights,
        optax.add_decayed_weights,
        dict(weight_decay=half_life_schedule),
        "transform",
        param_term=True,
        skip={
            **_costly(),
            **_not_optimizers,
            "properties": _NO_SAMPLED,
            "adversarial": "add_decayed_weights' case with a varying factor",
            "strict_dtypes": "schedules under strict promotion: adamw_warmup_cosine",
        },
    ),
    _e(
        "add_l1",
        "add_l1",
        jaxnn.add_l1,
        None,
        dict(strength=0.1),
        "transform",
        param_term=True,
        no_twin="optax has no L1 term",
        skip={
            **_costly(),
            **_not_optimizers,
            "properties": "no optax twin (tests/test_regularizers.py checks it)",
        },
    ),
    _e(
        "identity",
        "identity",
        jaxnn.identity,
        optax.identity,
        {},
        "transform",
        skip={
            **_costly(),
            **_not_optimizers,
            "properties": _NO_SAMPLED,
            "adversarial": "returns its input: nothing to break",
            "strict_dtypes": "returns its input: no arithmetic to promote",
        },
    ),
    _e(
        "stateless",
        "stateless",
        jaxnn.stateless,
        optax.stateless,
        dict(f=double),
        "transform",
        skip={
            **_costly(),
            **_not_optimizers,
            "properties": _NO_SAMPLED,
            "adversarial": "applies the user's function: its arithmetic, not ours",
            "strict_dtypes": "applies the user's function: its arithmetic, not ours",
        },
    ),
    # --------------------------------------------------------------------- clips
    _e(
        "clip_by_value",
        "clip_by_value",
        jaxnn.clip_by_value,
        _renamed(optax.clip, max_abs="max_delta"),
        dict(max_abs=0.5),
        "clip",
        same_state=False,  # jaxnn keeps the pre-clip norm in its state
        skip={**_costly(), **_not_optimizers},
    ),
    _e(
        "clip_by_global_norm",
        "clip_by_global_norm",
        jaxnn.clip_by_global_norm,
        optax.clip_by_global_norm,
        dict(max_norm=0.5),
        "clip",
        same_state=False,
        skip={**_costly(), **_not_optimizers},
    ),
    _e(
        "clip_by_layer_norm",
        "clip_by_layer_norm",
        jaxnn.clip_by_layer_norm,
        reference_layer_norm_clip,
        dict(max_norm=0.5),
        "clip",
        same_state=False,
        skip={**_costly("sharding"), **_not_optimizers},
    ),
    _e(
        "adaptive_grad_clip",
        "adaptive_grad_clip",
        jaxnn.adaptive_grad_clip,
        optax.adaptive_grad_clip,
        dict(clipping=0.1),
        "clip",
        same_state=False,
        skip={**_costly(), **_not_optimizers},
    ),
    # ----------------------------------------------------------------- optimizers
)
_momentum_twin = _renamed(optax.sgd, beta="momentum")


def _nesterov_twin(**kw):
    return _momentum_twin(nesterov=True, **kw)


def _then_adam(clip: Entry) -> Entry:
    """`clip` chained before Adam: its output and the moments after it."""

    def ours(learning_rate, **kw):
        return jaxnn.chain(clip.ours(**kw), jaxnn.adam(learning_rate))

    def theirs(learning_rate, **kw):
        return optax.chain(clip.theirs(**kw), optax.adam(learning_rate))

    keep = ("optax_sharding",)
    return _e(
        f"{clip.name}+adam",
        clip.factory,
        ours,
        theirs,
        {**clip.hparams, "learning_rate": 0.1},
        "wrapper",
        **_sq,
        same_state=False,
        skip={
            **_costly(*keep),
            **_not_optimizers,
            "properties": "the clip and adam are entries here; the chain of two "
            "entries is compared with optax in tests/test_optax_findings.py",
            "adversarial": "the clip and adam are entries here",
            "strict_dtypes": "the clip and adam are entries here",
        },
    )


_OPT_ONLY_IN_SOME = {
    "adversarial": "a variant of this factory that adds no new arithmetic",
}

ENTRIES += (
    _e(
        "gd",
        "gd",
        jaxnn.gd,
        optax.sgd,
        dict(learning_rate=0.1),
        "optimizer",
        same_state=False,  # optax.sgd without momentum chains an identity
        skip=_costly("checkpoint", "sharding"),
    ),
    _e(
        "sgd",
        "sgd",
        jaxnn.sgd,
        optax.sgd,
        dict(learning_rate=0.1),
        "optimizer",
        same_state=False,
        skip={
            "strict_dtypes": "without momentum sgd's update is gd's (gd is here)",
            **_costly("checkpoint"),
            "adversarial": "without momentum sgd's update is gd's (gd is here)",
        },
    ),
    _e(
        "sgd_momentum",
        "sgd",
        jaxnn.sgd,
        optax.sgd,
        dict(learning_rate=0.1, momentum=0.9),
        "optimizer",
        same_state=False,
        skip={
            **_costly("sharding_devices", "optax_sharding"),
            "strict_dtypes": "sgd_nesterov traces its momentum and the nesterov step",
        },
    ),
    _e(
        "sgd_nesterov",
        "sgd",
        jaxnn.sgd,
        optax.sgd,
        dict(learning_rate=0.1, momentum=0.9, nesterov=True),
        "optimizer",
        same_state=False,
        skip={
            **_costly(),
            "adversarial": "nesterov's arithmetic is trace_nesterov's (here)",
            "optax_findings": "the state layout and findings of sgd_momentum",
        },
    ),
    _e(
        "momentum",
        "momentum",
        jaxnn.momentum,
        _momentum_twin,
        dict(learning_rate=0.1, beta=0.9),
        "optimizer",
        skip=_costly("checkpoint", "sharding"),
    ),
    _e(
        "nesterov",
        "nesterov",
        jaxnn.nesterov,
        _nesterov_twin,
        dict(learning_rate=0.1, beta=0.9),
        "optimizer",
        skip=_costly("checkpoint", "optax_sharding", "sharding"),
    ),
    _e(
        "adagrad",
        "adagrad",
        jaxnn.adagrad,
        optax.adagrad,
        dict(learning_rate=0.1),
        "optimizer",
        **_sq,
        skip=_costly("checkpoint", "sharding_devices", "optax_sharding", "sharding"),
    ),
    _e(
        "rmsprop",
        "rmsprop",
        jaxnn.rmsprop,
        optax.rmsprop,
        dict(learning_rate=0.1),
        "optimizer",
        **_sq,
        skip={
            **_costly(),
            "strict_dtypes": "rmsprop_centered_momentum traces every part of it",
        },
    ),
    _e(
        "rmsprop_centered",
        "rmsprop",
        jaxnn.rmsprop,
        optax.rmsprop,
        dict(learning_rate=0.1, centered=True),
        "optimizer",
        **_sq,
        centered=True,
        skip={
            **_costly(),
            "strict_dtypes": "rmsprop_centered_momentum traces every part of it",
            "optax_findings": "the state layout and findings of "
            "rmsprop_centered_momentum",
        },
    ),
    _e(
        "rmsprop_momentum",
        "rmsprop",
        jaxnn.rmsprop,
        optax.rmsprop,
        dict(learning_rate=0.1, momentum=0.9),
        "optimizer",
        **_sq,
        skip={
            **_costly(),
            "adversarial": "rmsprop then a trace: both are here",
            "strict_dtypes": "rmsprop_centered_momentum traces every part of it",
            "optax_findings": "the state layout and findings of "
            "rmsprop_centered_momentum",
        },
    ),
    _e(
        "rmsprop_centered_momentum",
        "rmsprop",
        jaxnn.rmsprop,
        optax.rmsprop,
        dict(learning_rate=0.1, centered=True, momentum=0.9),
        "optimizer",
        **_sq,
        centered=True,
        skip={
            **_costly("checkpoint", "sharding_devices", "optax_sharding", "sharding"),
            "adversarial": "rmsprop_centered then a trace: both are here",
            "optimizers": "rmsprop_centered_nesterov runs centered momentum "
            "(and the nesterov step on top)",
        },
    ),
    _e(
        "rmsprop_centered_nesterov",
        "rmsprop",
        jaxnn.rmsprop,
        optax.rmsprop,
        dict(learning_rate=0.1, centered=True, momentum=0.6, nesterov=True),
        "optimizer",
        **_sq,
        centered=True,
        skip={
            **_costly(),
            "adversarial": "rmsprop_centered then trace_nesterov: both are here",
            "strict_dtypes": "rmsprop_centered_momentum traces the same ops",
            "optax_findings": "the state layout and findings of "
            "rmsprop_centered_momentum",
        },
    ),
    _e(
        "rmsprop_bias_correction",
        "rmsprop",
        jaxnn.rmsprop,
        optax.rmsprop,
        dict(learning_rate=0.1, momentum=0.9, eps_in_sqrt=False, bias_correction=True),
        "optimizer",
        **_sq,
        skip={
            **_costly(),
            "adversarial": "optax's options (issue 11): the same moments",
            "optimizers": "tests/test_optax_signatures.py runs optax's rmsprop "
            "options on a training trajectory",
        },
    ),
    _e(
        "adam",
        "adam",
        jaxnn.adam,
        optax.adam,
        dict(learning_rate=0.1),
        "optimizer",
        **_sq,
        skip=_costly("checkpoint", "sharding_devices", "optax_sharding"),
    ),
    _e(
        "adam_schedule",
        "adam",
        jaxnn.adam,
        optax.adam,
        dict(
            learning_rate=PerLibrary(
                jaxnn.cosine_decay_schedule(0.1, 10),
                optax.cosine_decay_schedule(0.1, 10),
            )
        ),
        "optimizer",
        **_sq,
        skip={
            **_costly(),
            "properties": "its learning rate is a function: adam's properties "
            "hold at every step's value",
            "adversarial": "adam's case with a varying learning rate",
            "optimizers": _LR_SCHEDULE,
        },
    ),
    _e(
        "adam_f32_moments",
        "adam",
        jaxnn.adam,
        _drop(optax.adam, "nu_dtype"),
        dict(learning_rate=0.1, mu_dtype=jnp.float32, nu_dtype=jnp.float32),
        "optimizer",
        **_sq,
        skip={
            **_costly("sharding"),
            "properties": "test_float32_moments_with_bfloat16_params sets these "
            "dtypes on every factory that has them",
            "adversarial": "adam's arithmetic (float32 params: the same dtypes)",
            "optimizers": "test_mu_nu_dtype_keep_float32_moments_under_bf16",
        },
    ),
    _e(
        "adamw",
        "adamw",
        jaxnn.adamw,
        optax.adamw,
        dict(learning_rate=0.1, weight_decay=0.1),
        "optimizer",
        **_sq,
        param_term=True,
        skip={
            **_costly("checkpoint"),
            "strict_dtypes": "adamw_masked traces the same ops and the mask",
        },
    ),
    _e(
        "adamw_masked",
        "adamw",
        jaxnn.adamw,
        optax.adamw,
        dict(learning_rate=0.1, weight_decay=0.1, mask=FromParams(matrix_mask)),
        "optimizer",
        **_sq,
        param_term=True,
        skip={
            **_costly("optax_sharding", "sharding"),
            "properties": "a mask selects leaves: adamw's properties per leaf "
            "(tests/test_optimizers.py compares the masked trajectory with optax)",
            "adversarial": "adamw's and adam's arithmetic, per leaf",
        },
    ),
    _e(
        "adamw_warmup_cosine",
        "adamw",
        jaxnn.adamw,
        optax.adamw,
        dict(
            learning_rate=PerLibrary(
                jaxnn.warmup_cosine_decay_schedule(0.0, 0.1, 5, 50, 1e-3),
                optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, 50, 1e-3),
            )
        ),
        "optimizer",
        **_sq,
        param_term=True,
        skip={
            **_costly(),
            "properties": "its learning rate is a function",
            "adversarial": "adamw's case with a varying learning rate",
            "optimizers": _LR_SCHEDULE,
            "optax_findings": "adam_schedule holds a schedule's state and findings",
        },
    ),
    _e(
        "nadam",
        "nadam",
        jaxnn.nadam,
        optax.nadam,
        dict(learning_rate=0.1),
        "optimizer",
        **_sq,
        skip=_costly("checkpoint", "optax_sharding", "sharding"),
    ),
)


def _masked():
    def ours(mask, **kw):
        return jaxnn.masked(jaxnn.adam(**kw), mask)

    def theirs(mask, **kw):
        return optax.masked(optax.adam(**kw), mask)

    return ours, theirs


def _clip_adamw(lib):
    def build(max_norm, **kw):
        return lib.chain(lib.clip_by_global_norm(max_norm), lib.adamw(**kw))

    return build


def _skip_nonfinite(**kw):
    return jaxnn.skip_nonfinite(jaxnn.adam(**kw))


_WRAPPED = "wraps adam (an entry here) without changing its arithmetic"

ENTRIES += (
    _e(
        "masked",
        "masked",
        *_masked(),
        dict(mask=FromParams(matrix_mask), learning_rate=0.1),
        "wrapper",
        **_sq,
        skip={
            **_costly(),
            **_not_optimizers,
            "properties": "adam per selected leaf; the mask is compared with "
            "optax in tests/test_masking.py and tests/test_optax_findings.py",
            "adversarial": _WRAPPED,
        },
    ),
    _e(
        "masked_fn",
        "masked",
        *_masked(),
        dict(mask=matrix_mask, learning_rate=0.1),
        "wrapper",
        **_sq,
        skip={
            **_costly(),
            **_not_optimizers,
            "properties": "adam per selected leaf; the mask is compared with "
            "optax in tests/test_masking.py and tests/test_optax_findings.py",
            "adversarial": _WRAPPED,
            "strict_dtypes": "masked's arithmetic: the entry masked (mask "
            "computed at init there too, without params)",
        },
    ),
    _e(
        "clip_adamw",
        "chain",
        _clip_adamw(jaxnn),
        _clip_adamw(optax),
        dict(max_norm=0.5, learning_rate=0.1, weight_decay=0.1),
        "wrapper",
        **_sq,
        param_term=True,
        same_state=False,
        skip={
            "strict_dtypes": "a chain of entries of this suite "
            "(clip_by_global_norm, adamw_masked)",
            **_costly("checkpoint", "checkpoint_orbax", "sharding_devices", "sharding"),
            **_not_optimizers,
            "properties": "a chain of two entries of this suite",
            "adversarial": "a chain of two entries of this suite",
        },
    ),
    _e(
        "skip_nonfinite",
        "skip_nonfinite",
        _skip_nonfinite,
        optax.adam,  # On finite gradients skip_nonfinite is its inner Adam.
        dict(learning_rate=0.1),
        "wrapper",
        **_sq,
        same_state=False,
        skip={
            **_costly("checkpoint", "checkpoint_orbax", "optax_sharding", "sharding"),
            **_not_optimizers,
            "properties": "on finite gradients it is adam (an entry here); "
            "tests/test_safety.py checks the skipping",
            "adversarial": "test_skip_nonfinite_protects_state wraps every entry",
        },
    ),
    _e(
        "sgd_exponential_decay",
        "sgd",
        jaxnn.sgd,
        optax.sgd,
        dict(
            learning_rate=PerLibrary(
                jaxnn.exponential_decay(0.1, 10, 0.5),
                optax.exponential_decay(0.1, 10, 0.5),
            )
        ),
        "optimizer",
        same_state=False,
        skip={
            **_costly(),
            "properties": "its learning rate is a function",
            "adversarial": "gd's case with a varying learning rate",
            "optimizers": _LR_SCHEDULE,
            "optax_findings": "adam_schedule holds a schedule's state and findings",
        },
    ),
    _e(
        "sgd_piecewise",
        "sgd",
        jaxnn.sgd,
        optax.sgd,
        dict(
            learning_rate=PerLibrary(
                jaxnn.piecewise_constant_schedule(0.1, {3: 0.5, 6: 0.1}),
                optax.piecewise_constant_schedule(0.1, {3: 0.5, 6: 0.1}),
            )
        ),
        "optimizer",
        same_state=False,
        skip={
            **_costly(),
            "properties": "its learning rate is a function",
            "adversarial": "gd's case with a varying learning rate",
            "optimizers": _LR_SCHEDULE,
            "optax_findings": "adam_schedule holds a schedule's state and findings",
        },
    ),
)

ENTRIES += tuple(
    _then_adam(e)
    for e in ENTRIES
    if e.name
    in (
        "clip_by_value",
        "clip_by_global_norm",
        "clip_by_layer_norm",
        "adaptive_grad_clip",
    )
)

BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES}
assert len(BY_NAME) == len(ENTRIES), "entry names must be unique"


def entries(suite: str) -> list[Entry]:
    """Every entry not skipped for `suite`, in registry order."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; known: {SUITES}")
    return [e for e in ENTRIES if suite not in e.skip]


def names(suite: str) -> list[str]:
    """The names of `entries(suite)` (test ids)."""
    return [e.name for e in entries(suite)]
