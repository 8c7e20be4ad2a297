"""Optimizers as short chains of building blocks: gd, sgd, ...

Each optimizer returns a `GradientTransformation` whose updates are added to the
params with `apply_updates`. Defaults equal optax's, so `jaxnn.sgd(0.1)` and
`optax.sgd(0.1)` produce the same iterates.
"""

from __future__ import annotations

from jaxnn._checks import check_decay
from jaxnn.optim.base import GradientTransformation, chain
from jaxnn.optim.transforms import ScalarOrSchedule, scale_by_learning_rate, trace


def gd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    """Gradient descent: W ← W − η g.

    Batch gradient descent and SGD share this rule; they differ only in the data
    the gradient is computed on (the whole data set or a mini-batch).

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.

    Returns:
      A GradientTransformation.
    """
    return scale_by_learning_rate(learning_rate)


def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | None = None,
    nesterov: bool = False,
) -> GradientTransformation:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Without momentum: W ← W − η g. With momentum β: v ← βv + g and W ← W − η v,
    or W ← W − η (g + βv) with `nesterov=True`.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      momentum: β in [0, 1), or None for plain SGD.
      nesterov: whether to use Nesterov momentum (needs `momentum`).

    Returns:
      A GradientTransformation.

    Raises:
      ValueError: if a hyperparameter is out of range.
    """
    if momentum is None:
        if nesterov:
            raise ValueError("nesterov=True needs a momentum, got momentum=None")
        return gd(learning_rate)
    check_decay("momentum", momentum)
    return chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))
