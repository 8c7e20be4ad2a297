"""Optimizers as short chains of building blocks: gd, sgd, momentum, ..., nadam.

Each optimizer returns a `GradientTransformation` whose updates are added to the
params with `apply_updates`. Defaults equal optax's, so `jaxnn.sgd(0.1)` and
`optax.sgd(0.1)` produce the same iterates.
"""

from __future__ import annotations

from typing import Any

from jaxnn._checks import check_bool, check_decay, check_floating_dtype
from jaxnn.optim.adaptive import scale_by_adam, scale_by_rms, scale_by_rss
from jaxnn.optim.base import GradientTransformation, ScalarOrSchedule, chain
from jaxnn.optim.regularization import add_decayed_weights
from jaxnn.optim.transforms import scale_by_learning_rate, trace


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
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Without momentum: W ← W − η g. With momentum β: v ← βv + g and W ← W − η v,
    or W ← W − η (g + βv) with `nesterov=True`.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      momentum: β in [0, 1), or None for plain SGD.
      nesterov: whether to use Nesterov momentum (needs `momentum`).
      accumulator_dtype: dtype of the stored velocity v; None keeps the params'
        dtype (as optax; unused without momentum).

    Returns:
      A GradientTransformation.

    Raises:
      ValueError: if a hyperparameter is out of range, or `nesterov=True`
        without `momentum` (optax ignores `nesterov` there).
      TypeError: if `accumulator_dtype` is not a floating dtype (or None).
    """
    check_bool("nesterov", nesterov)
    accumulator_dtype = check_floating_dtype(
        "accumulator_dtype", accumulator_dtype, allow_none=True
    )
    if momentum is None:
        if nesterov:
            raise ValueError("nesterov=True needs a momentum, got momentum=None")
        return gd(learning_rate)
    check_decay("momentum", momentum)
    return chain(
        trace(momentum, nesterov, accumulator_dtype),
        scale_by_learning_rate(learning_rate),
    )


def momentum(
    learning_rate: ScalarOrSchedule, beta: float = 0.9
) -> GradientTransformation:
    """Heavy-ball momentum: v ← βv + g; W ← W − η v.

    The form with η inside the velocity (v ← βv + ηg; W ← W − v) gives identical
    iterates for a constant η; with a schedule, this form applies the current η
    to the whole velocity. Equal to `optax.sgd(learning_rate, momentum=beta)`.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      beta: β in [0, 1) (default 0.9).

    Returns:
      A GradientTransformation with state `(TraceState, lr state)`.

    Raises:
      ValueError: if a concrete hyperparameter is out of range (names it).

    References:
      Polyak, "Some methods of speeding up the convergence of iteration
      methods", 1964.
    """
    check_decay("beta", beta)
    return sgd(learning_rate, momentum=beta)


def nesterov(
    learning_rate: ScalarOrSchedule, beta: float = 0.9
) -> GradientTransformation:
    """Nesterov accelerated gradient: v ← βv + g; W ← W − η (g + βv).

    The look-ahead form v ← βv + η∇L(W − βv), W ← W − v needs the gradient at a
    shifted point; this form needs only the gradient at W and, for a constant η,
    gives the same iterates under the change of variables W' = W − βv
    (Sutskever et al. 2013). Equal to
    `optax.sgd(learning_rate, momentum=beta, nesterov=True)`.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      beta: β in [0, 1) (default 0.9).

    Returns:
      A GradientTransformation.

    Raises:
      ValueError: if a concrete hyperparameter is out of range (names it).

    References:
      Nesterov, 1983; Sutskever et al., "On the importance of initialization
      and momentum in deep learning", ICML 2013.
    """
    check_decay("beta", beta)
    return sgd(learning_rate, momentum=beta, nesterov=True)


def adagrad(
    learning_rate: ScalarOrSchedule,
    initial_accumulator_value: float = 0.1,
    eps: float = 1e-7,
) -> GradientTransformation:
    """Adagrad: G ← G + g²; W ← W − η g / √(G + ε).

    Each parameter's effective rate η/√(G + ε) only decreases, which suits
    sparse features. As optax, G starts at G₀ = 0.1 (Duchi et al. start at 0)
    and ε sits inside the square root.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      initial_accumulator_value: G₀ >= 0 (default 0.1).
      eps: ε >= 0 (default 1e-7).

    Returns:
      A GradientTransformation with state `(ScaleByRssState, lr state)`.

    Raises:
      ValueError: if a concrete hyperparameter is out of range (names it).

    References:
      Duchi et al., "Adaptive Subgradient Methods for Online Learning and
      Stochastic Optimization", JMLR 2011.
    """
    return chain(
        scale_by_rss(initial_accumulator_value, eps),
        scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSprop: G ← βG + (1 − β)|g|²; W ← W − η g / √(G + ε).

    Fixes Adagrad's ever-shrinking rate with a moving average. With
    `eps_in_sqrt=False` the step is η g / (√G + ε) (PyTorch's form); with
    `bias_correction` G is divided by 1 − βᵗ (t the step number), undoing its
    start at `initial_scale` as Adam does. `centered=True` divides by
    √(G − m² + ε), m the moving average of g (bias-corrected too). With
    `momentum` μ the scaled step s = η g / √(…) goes through a trace, u ← μu + s,
    W ← W − u (W ← W − (s + μu) with `nesterov`), in optax's order: the learning
    rate is applied before the momentum, so a schedule scales each step as it
    enters.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      decay: β in [0, 1) (default 0.9).
      eps: ε >= 0 (default 1e-8).
      initial_scale: G₀ >= 0 (default 0.0).
      eps_in_sqrt: whether ε goes inside the square root (default True, as optax
        and TF; False as PyTorch).
      centered: whether to subtract the squared mean gradient.
      momentum: μ in [0, 1), or None (default) for no momentum.
      nesterov: Nesterov momentum (needs `momentum`).
      bias_correction: whether to bias-correct the moving averages (default
        False).

    Returns:
      A GradientTransformation.

    Raises:
      ValueError: if a concrete hyperparameter is out of range (names it), or
        `nesterov=True` without `momentum` (optax ignores `nesterov` there).
      TypeError: if a flag is not a bool.

    References:
      Tieleman & Hinton, "Lecture 6.5 - RMSProp", COURSERA 2012; Graves,
      "Generating Sequences With Recurrent Neural Networks", 2013 (centered).
    """
    rms = scale_by_rms(
        decay, eps, initial_scale, eps_in_sqrt, bias_correction, centered=centered
    )
    lr = scale_by_learning_rate(learning_rate)
    check_bool("nesterov", nesterov)
    if momentum is None:
        if nesterov:
            raise ValueError("nesterov=True needs a momentum, got momentum=None")
        return chain(rms, lr)
    check_decay("momentum", momentum)
    return chain(rms, lr, trace(momentum, nesterov))


def adam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Adam: moment estimates with bias correction.

    With t the step number (1 first)::

        m ← β₁m + (1 − β₁)g       v ← β₂v + (1 − β₂)|g|²
        m̂ = m / (1 − β₁ᵗ)         v̂ = v / (1 − β₂ᵗ)
        W ← W − η m̂ / (√(v̂ + ε_root) + ε)

    The bias correction divides out the zero initialization of m and v (Kingma
    & Ba §3): without it the first step would be (1 − β₁)/√(1 − β₂) times the
    corrected one (about 3.2 with the defaults). With `nesterov=True` m̂ is
    Nadam's look-ahead (see `nadam`).

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      b1: β₁ in [0, 1) (default 0.9).
      b2: β₂ in [0, 1) (default 0.999).
      eps: ε >= 0 outside the square root (default 1e-8).
      eps_root: ε_root >= 0 inside it (default 0.0).
      mu_dtype: dtype of m (None: the params'). float32 under bfloat16 params
        keeps the moments accurate.
      nesterov: whether to use Nesterov momentum (keyword-only, as optax).
      nu_dtype: dtype of v (None: the params'; keyword-only, beyond optax,
        which has only `mu_dtype`).

    Returns:
      A GradientTransformation with state `(ScaleByAdamState, lr state)`.

    Raises:
      ValueError: if a concrete hyperparameter is out of range (names it).

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    return chain(
        scale_by_adam(
            b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype
        ),
        scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any = None,
    *,
    nesterov: bool = False,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """AdamW: Adam with decoupled weight decay, scaled by the learning rate.

    W ← W − η (m̂ / (√(v̂ + ε_root) + ε) + λW), with m̂ and v̂ as in `adam`. The
    decay is multiplied by the learning rate, as in optax and PyTorch (Loshchilov
    & Hutter's schedule multiplier), so a learning-rate schedule also anneals it.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      b1: β₁ in [0, 1) (default 0.9).
      b2: β₂ in [0, 1) (default 0.999).
      eps: ε >= 0 (default 1e-8).
      eps_root: ε_root >= 0 inside the square root (default 0.0).
      mu_dtype: dtype of m (None: the params').
      weight_decay: λ >= 0 (default 1e-4, as optax), or a schedule.
      mask: which params are decayed: None (all), a pytree of bools with the
        params' structure, or a callable `params -> pytree of bools`; use it to
        exempt biases and BatchNorm scales.
      nesterov: whether to use Nesterov momentum (keyword-only, as optax's; the
        same as optax's `nadamw`).
      nu_dtype: dtype of v (None: the params'; keyword-only, beyond optax).

    Returns:
      A GradientTransformation; its `update` needs `params`.

    Raises:
      ValueError: if a concrete hyperparameter is out of range (names it).

    References:
      Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    return chain(
        scale_by_adam(
            b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov, nu_dtype=nu_dtype
        ),
        add_decayed_weights(weight_decay, mask),
        scale_by_learning_rate(learning_rate),
    )


def nadam(
    learning_rate: ScalarOrSchedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    nu_dtype: Any = None,
) -> GradientTransformation:
    """Nadam: Adam with a Nesterov look-ahead first moment.

    As `adam`, with m̂ replaced by the look-ahead β₁m / (1 − β₁ᵗ⁺¹) +
    (1 − β₁)g / (1 − β₁ᵗ), as Dozat (2016) and optax (without Dozat's extra β₂
    factor on v̂, as optax and PyTorch). optax's `nadam` is `adam` with
    `nesterov=True`; so is this one, and `nesterov=False` gives `adam`.

    Args:
      learning_rate: η, a number >= 0 or a schedule `count -> η`.
      b1: β₁ in [0, 1) (default 0.9).
      b2: β₂ in [0, 1) (default 0.999).
      eps: ε >= 0 (default 1e-8).
      eps_root: ε_root >= 0 (default 0.0).
      mu_dtype: dtype of m (None: the params').
      nesterov: whether to use the look-ahead (keyword-only; default True).
      nu_dtype: dtype of v (None: the params'; keyword-only, beyond optax).

    Returns:
      A GradientTransformation with state `(ScaleByAdamState, lr state)`.

    Raises:
      ValueError: if a concrete hyperparameter is out of range (names it).

    References:
      Dozat, "Incorporating Nesterov Momentum into Adam", ICLR workshop 2016.
    """
    return adam(
        learning_rate,
        b1,
        b2,
        eps,
        eps_root,
        mu_dtype,
        nesterov=nesterov,
        nu_dtype=nu_dtype,
    )
