"""What the examples share: the digits data, a plain MLP, the command line, figures.

The examples import this module by name (`from _common import ...`): Python puts
the directory of the script it runs on `sys.path`, so `python examples/NAME.py`
finds it from any working directory.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxnn


class Digits(NamedTuple):
    """scikit-learn's digits (8x8 images flattened to 64 features, 10 classes).

    Features are float32, standardized with the training statistics (see
    `standardize`); labels are int32.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def standardize(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """(x - mean) / (std + 1), with the mean and std per pixel of `x_train`.

    The digits pixels are counts from 0 to 16. Three border pixels are 0 in every
    image (std 0: plain standardization would divide by zero) and about a dozen
    are almost always 0 (std below 0.5): plain standardization would turn their
    rare non-zero values into outliers of up to 42 standard deviations. Adding 1
    to the std bounds every feature by 7.3 in absolute value, and leaves the
    informative pixels (std 3 to 6.5) close to unit variance (0.75 to 0.87).

    Returns:
      `[x_train, *others]`, each standardized with `x_train`'s statistics.
    """
    mean, std = x_train.mean(0), x_train.std(0) + 1.0
    return [(x - mean) / std for x in (x_train, *others)]


def load_digits(
    test_size: float = 0.2, *, seed: int = 0, stratify: bool = False
) -> Digits:
    """Digits split into train and test (`test_size` of the images) by `seed`.

    Args:
      test_size: fraction of the 1797 images held out for testing.
      seed: seed of the split.
      stratify: keep the class proportions equal in both parts.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    x, y = sklearn_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32),
        y.astype(np.int32),
        test_size=test_size,
        random_state=seed,
        stratify=y if stratify else None,
    )
    x_train, x_test = standardize(x_train, x_test)
    return Digits(x_train, y_train, x_test, y_test)


def digits_and_batches(
    steps: int, batch_size: int, seed: int
) -> tuple[Digits, list[np.ndarray]]:
    """The stratified 80/20 digits split and `steps` random minibatch index arrays."""
    data = load_digits(0.2, seed=seed, stratify=True)
    rng = np.random.default_rng(seed)
    batches = [rng.integers(0, len(data.x_train), batch_size) for _ in range(steps)]
    return data, batches


def load_digits_unsplit() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits (float32 features standardized as in `standardize`, int32)."""
    from sklearn.datasets import load_digits as sklearn_digits

    x, y = sklearn_digits(return_X_y=True)
    (x,) = standardize(x.astype(np.float32))
    return x, y.astype(np.int32)


def parse_args(doc: str, *, steps: int) -> argparse.Namespace:
    """The flags every example takes: --steps, --plot, --seed, --quiet.

    Args:
      doc: the example's module docstring; its first line is the description.
      steps: the default of --steps (what the README's figures were measured at).

    Returns:
      The namespace, with `quiet` True or None (None: tqdm shows its progress bar
      only on a terminal).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--steps", type=int, default=steps, help=f"default {steps}")
    parser.add_argument("--plot", type=Path, help="save the figure to this path")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    parser.add_argument(
        "--quiet", action="store_const", const=True, help="no progress bar"
    )
    return parser.parse_args()


@contextlib.contextmanager
def figure(
    path: str | Path,
    *,
    figsize: tuple[float, float],
    nrows: int | None = None,
    ncols: int | None = None,
    dpi: int = 80,
    tight: bool = True,
    **subplot_kw: Any,
) -> Iterator[tuple[Any, Any]]:
    """A matplotlib figure that is saved to `path` when the `with` block ends.

    `with figure(path, figsize=(8, 3), ncols=2) as (fig, axes):` draws on `axes`;
    the figure is then laid out, written and closed.

    Args:
      path: where the figure is written (the format follows the extension).
      figsize: width and height in inches.
      nrows: rows of the grid of axes from `plt.subplots`; with neither `nrows`
        nor `ncols`, `axes` is None and the caller lays out `fig` itself.
      ncols: columns of that grid.
      dpi: resolution of the saved image.
      tight: apply `fig.tight_layout()` before saving.
      **subplot_kw: further arguments of `plt.subplots` (`sharey`, ...).
    """
    import matplotlib.pyplot as plt  # only the examples' --plot needs matplotlib

    if nrows is None and ncols is None:
        fig, axes = plt.figure(figsize=figsize), None
    else:
        fig, axes = plt.subplots(nrows or 1, ncols or 1, figsize=figsize, **subplot_kw)
    try:
        yield fig, axes
        if tight:
            fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def mlp_init(key: jax.Array, sizes: tuple[int, ...]) -> list[dict[str, jax.Array]]:
    """A ReLU MLP's layers `{"w", "b"}` for `sizes` (inputs, hidden..., classes)."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        jaxnn.dense_init(k, n_in, n_out)
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp_forward(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    """The logits: ReLU after every layer but the last."""
    for layer in params[:-1]:
        x = jaxnn.relu(jaxnn.dense(layer, x))
    return jaxnn.dense(params[-1], x)


def mlp_loss(params: list[dict[str, jax.Array]], x: jax.Array, y: jax.Array):
    """The mean softmax cross-entropy of the MLP on integer labels `y`."""
    logits = mlp_forward(params, x)
    return jnp.mean(jaxnn.softmax_cross_entropy_with_integer_labels(logits, y))
