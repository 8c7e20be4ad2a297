"""Parameter groups: `partition` (a transform per label) and `label_by_path`.

`partition` is `optax.partition`: each label names a transform, and each transform
updates only the leaves with its label. `label_by_path` builds the labels from
regular expressions on each leaf's path (`"0/dense/w"`, `"block_0/bn/scale"`), so the
usual "no weight decay on biases and norm scales" is one line instead of a
hand-written tree map, and the same rules give bool masks for `masked`,
`adamw(mask=...)` and the penalties.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import jax

from jaxnn._checks import check_bool
from jaxnn._masks import has_no_leaves, is_mask_fn
from jaxnn.optim.base import GradientTransformation, Params
from jaxnn.optim.masking import masked

Labels = Any | Callable[[Params], Any]


class PartitionState(NamedTuple):
    """State of `partition` (the same fields and leaves as optax's).

    Attributes:
      inner_states: a dict from each label to the `MaskedState` of its
        transform, which holds state for the leaves with that label only.
    """

    inner_states: Mapping[Hashable, Any]


def path_string(path: Sequence[Any]) -> str:
    """A key path (from `jax.tree_util`) written as its keys joined by "/".

    Dict keys and attribute names (NamedTuples, dataclasses, flax and equinox
    modules) are written as themselves, sequence indices as numbers:
    `[{"w": ...}]` has the leaf `"0/w"`.

    Args:
      path: a sequence of `jax.tree_util` keys (`DictKey`, `SequenceKey`,
        `GetAttrKey`, `FlattenedIndexKey`).

    Returns:
      The path as a string, `""` for the root.
    """
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(k.name)
        elif isinstance(k, jax.tree_util.FlattenedIndexKey):
            parts.append(str(k.key))
        else:  # a key type from a newer jax: its own printed form
            parts.append(str(k).strip(".[]'\""))
    return "/".join(parts)


def _check_label(where: str, label: Any) -> None:
    if label is None:
        raise TypeError(f"{where} must be a label (str, bool, ...), got None")
    try:
        hash(label)
    except TypeError:
        raise TypeError(
            f"{where} must be a hashable label (str, bool, ...), got {label!r}"
        ) from None


def _leaf_labels(labels: Any) -> list[tuple[str, Any]]:
    """(path, label) for every leaf of a labels tree, labels checked."""
    out = []
    for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]:
        where = path_string(path)
        _check_label(f"param_labels at {where or '<root>'!r}", label)
        out.append((where or "<root>", label))
    return out


def _describe_paths(paths: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(p) for p in paths[:limit])
    more = len(paths) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _check_labels_match(labels: Any, transforms: Mapping[Hashable, Any]) -> None:
    """Every label has a transform, and every transform has a labelled leaf."""
    by_label: dict[Hashable, list[str]] = {}
    for where, label in _leaf_labels(labels):
        by_label.setdefault(label, []).append(where)
    missing = [label for label in by_label if label not in transforms]
    if missing:
        lines = [
            f"label {label!r} (leaves {_describe_paths(by_label[label])})"
            for label in missing
        ]
        raise ValueError(
            "partition: some params have a label with no transform: "
            + "; ".join(lines)
            + f". transforms has the labels {list(transforms)}."
        )
    unused = [label for label in transforms if label not in by_label]
    if unused:
        present = "; ".join(
            f"{label!r} on {_describe_paths(paths)}"
            for label, paths in by_label.items()
        )
        raise ValueError(
            f"partition: no param has the label(s) {unused} given in transforms "
            f"(the params' labels: {present}). A misspelled label, or a rule that "
            "matches nothing?"
        )


def partition(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: Labels,
    *,
    mask_compatible_extra_args: bool = False,
) -> GradientTransformation:
    """Applies a different transform to each group of params, as `optax.partition`.

    PyTorch's param_groups: e.g. AdamW with weight decay on the kernels and plain
    Adam on biases and norm scales, or a smaller learning rate for a pretrained
    part. Each transform sees only the leaves with its label (the others are
    `MaskedNode()`, as in `masked`) and keeps state for those leaves only; the
    transforms are applied in the order of `transforms`, each changing only its
    own leaves. The state has optax's fields and leaves, so optax's tree
    utilities and checkpoints read it.

    `param_labels` is a function when it is callable and every leaf of it is
    callable (the rule of `masked`): a callable pytree of labels, such as an
    equinox Module with strings where the arrays were, is a labels tree. (optax
    0.2.8's `partition` calls any callable, so it fails on such a tree.) Params
    with no leaves, such as the placeholder of `optax.tree.map_params`, are
    passed to every transform without consulting the labels, as optax's
    `masked` does (optax's `partition` still calls a label function on the
    placeholder, so one that indexes the params fails there; jaxnn's does not).

    Args:
      transforms: a mapping from each label to a transform (jaxnn's or optax's).
      param_labels: a pytree of labels (hashable, e.g. strings) with the params'
        structure or a prefix of it, or a function `params -> such a pytree`
        (called on the params in `init` and on the updates in `update`), such as
        `label_by_path(...)`.
      mask_compatible_extra_args: whether the extra keyword arguments of
        `update` with the updates' pytree structure are masked for each
        transform like the updates (as optax; see `masked`).

    Returns:
      A GradientTransformation with state `PartitionState`; `update` passes
      `params` and extra keyword arguments to every transform.

    Raises:
      TypeError: if `transforms` is not a mapping of transforms, a label is
        None or unhashable, or `mask_compatible_extra_args` is not a bool.
      ValueError: (at init/update, when the labels are known) if a label has no
        transform, or a transform's label is on no leaf (both name the label and
        the leaf paths), or the labels do not match the params' structure.

    Example:
      >>> tx = jaxnn.partition(
      ...     {"decay": jaxnn.adamw(1e-3), "no_decay": jaxnn.adam(1e-3)},
      ...     jaxnn.label_by_path([(r"/w$", "decay")], "no_decay"))
    """
    if not isinstance(transforms, Mapping):
        raise TypeError(
            "transforms must be a mapping from label to transform, got "
            f"{type(transforms).__name__}"
        )
    for label, tx in transforms.items():
        _check_label(f"transforms key {label!r}", label)
        if not (
            callable(getattr(tx, "init", None))
            and callable(getattr(tx, "update", None))
        ):
            raise TypeError(
                f"transforms[{label!r}] must be a gradient transformation with init "
                f"and update, got {tx!r}"
            )
    check_bool("mask_compatible_extra_args", mask_compatible_extra_args)
    transforms = dict(transforms)

    def resolve(tree):
        if has_no_leaves(tree):
            return None  # nothing to label; `masked` passes such a tree through
        labels = param_labels(tree) if is_mask_fn(param_labels) else param_labels
        _check_labels_match(labels, transforms)
        return labels

    def group(labels, tx, label):
        # labels None: a leafless tree, which `masked` never reads the mask of.
        mask = (
            True
            if labels is None
            else jax.tree.map(lambda leaf: bool(leaf == label), labels)
        )
        return masked(tx, mask, mask_compatible_extra_args=mask_compatible_extra_args)

    def init(params):
        labels = resolve(params)
        return PartitionState(
            {
                label: group(labels, tx, label).init(params)
                for label, tx in transforms.items()
            }
        )

    def update(updates, state, params=None, **extra_args):
        labels = resolve(updates)
        inner_states = getattr(state, "inner_states", None)
        if not isinstance(inner_states, Mapping) or set(inner_states) != set(
            transforms
        ):
            raise ValueError(
                f"partition expects a PartitionState with the labels "
                f"{list(transforms)}, got {type(state).__name__}"
                + (
                    f" with {list(inner_states)}"
                    if isinstance(inner_states, Mapping)
                    else ""
                )
                + ". Was the state built by this partition's init()?"
            )
        new_states = {}
        for label, tx in transforms.items():
            updates, new_states[label] = group(labels, tx, label).update(
                updates, inner_states[label], params, **extra_args
            )
        return updates, PartitionState(new_states)

    return GradientTransformation(init, update)


def label_by_path(
    rules: Sequence[tuple[str | re.Pattern[str], Any]] | Mapping[str, Any],
    default: Any,
) -> Callable[[Params], Any]:
    """Labels each leaf by the first regular expression that its path matches.

    A leaf's path is its keys joined by "/": dict keys, attribute names
    (NamedTuples, dataclasses, flax and equinox modules) and sequence indices, so
    `[{"dense": {"w": ..., "b": ...}}]` has the leaves `"0/dense/w"` and
    `"0/dense/b"`. Rules are tried in order with `re.search` (anchor with `^`, `$`
    and `(^|/)` as needed); the first match gives the label, and a leaf no rule
    matches gets `default`.

    String labels feed `partition`; bool labels are a mask for `masked`,
    `adamw(mask=...)`, `add_decayed_weights`, `add_l1` and the penalties:

        decay_kernels = jaxnn.label_by_path([(r"/w$", True)], False)
        tx = jaxnn.adamw(1e-3, weight_decay=1e-4, mask=decay_kernels)

    Args:
      rules: a sequence of `(regex, label)` pairs (regex a string or a compiled
        pattern), or a mapping `{regex: label}` (tried in its order).
      default: the label of leaves that no rule matches.

    Returns:
      A function `params -> labels`: a pytree with the params' structure whose
      leaves are labels.

    Raises:
      TypeError: if a rule is not a `(regex, label)` pair, or a label is None or
        unhashable.
      ValueError: if a regex does not compile (names it).
    """
    if isinstance(rules, Mapping):
        rules = list(rules.items())
    if isinstance(rules, str | bytes) or not isinstance(rules, Sequence):
        raise TypeError(
            f"rules must be a sequence of (regex, label) pairs, got {rules!r}"
        )
    compiled = []
    for i, rule in enumerate(rules):
        if not (isinstance(rule, tuple | list) and len(rule) == 2):
            raise TypeError(f"rules[{i}] must be a (regex, label) pair, got {rule!r}")
        pattern, label = rule
        if isinstance(pattern, str):
            try:
                pattern = re.compile(pattern)
            except re.error as e:
                raise ValueError(
                    f"rules[{i}]: {pattern!r} is not a valid regular expression: {e}"
                ) from None
        elif not isinstance(pattern, re.Pattern):
            raise TypeError(
                f"rules[{i}] must be a (regex, label) pair with a string regex, got "
                f"{rule!r}"
            )
        _check_label(f"rules[{i}] label", label)
        compiled.append((pattern, label))
    _check_label("default", default)

    def label_of(path, leaf):
        del leaf
        where = path_string(path)
        for pattern, label in compiled:
            if pattern.search(where):
                return label
        return default

    def labels(params):
        return jax.tree_util.tree_map_with_path(label_of, params)

    return labels
