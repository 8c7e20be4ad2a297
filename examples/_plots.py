"""The examples' figures: one function per example, given what it measured.

Each example calls its function when run with `--plot PATH`; `make_figures.py`
regenerates the figures in docs/ that way. Keeping the drawing here lets each
example read as the experiment it runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _common import figure


def train_digits(path: Path, losses, clip_norms, test_accuracy: float) -> None:
    """Batch loss and pre-clip gradient norm per step."""
    with figure(path, figsize=(8, 3), ncols=2, dpi=90) as (fig, ax):
        ax[0].plot(losses, lw=0.8)
        ax[0].set(xlabel="step", ylabel="train loss (batch)", yscale="log")
        ax[1].plot(clip_norms, lw=0.8)
        ax[1].axhline(1.0, color="k", ls="--", lw=0.8, label="clip at 1.0")
        ax[1].set(xlabel="step", ylabel="pre-clip gradient norm", yscale="log")
        ax[1].legend()
        fig.suptitle(f"digits MLP: test accuracy {test_accuracy:.2%}")


def vanishing_gradients(
    path: Path, results, depth: int, activations, inits, remedies
) -> None:
    """Gradient norm per layer at init: one panel per activation, one for remedies."""
    panels = [*activations, "remedies"]
    with figure(path, figsize=(13, 3.4), ncols=4, sharey=True) as (fig, axes):
        layers = np.arange(1, depth + 2)
        for ax, panel in zip(axes, panels, strict=True):
            names = [f"{panel} {i}" for i in inits] if panel != "remedies" else remedies
            for name in [k for k in names if k in results]:
                n = results[name]["layer_norms"]
                label = name.removeprefix(f"{panel} ")
                if not np.any(n[:-1] > 0):
                    label += " (hidden all 0)"
                ax.plot(layers, np.where(n > 0, n, np.nan), marker=".", label=label)
            ax.set(title=panel, xlabel="layer (1 = input side)", yscale="log")
            if ax.get_legend_handles_labels()[0]:  # a panel may be empty (`only`)
                ax.legend(fontsize=7)
        axes[0].set_ylabel("‖∂L/∂W‖ at init")
        fig.suptitle(
            f"gradient norm per layer, {depth}-layer MLP on digits "
            f"(layer {depth + 1} = output)"
        )


def compare_optimizers(
    path: Path, results, paths, curves, steps: int, threshold: float
) -> None:
    """Rosenbrock trajectories (3x3 grid) beside the digits loss curves."""
    names = list(results)
    with figure(path, figsize=(11, 4.6), tight=False) as (fig, _):
        left, right = fig.subfigures(1, 2, width_ratios=[1.1, 1])
        axes = left.subplots(3, 3, sharex=True, sharey=True)
        xs, ys = np.meshgrid(np.linspace(-2, 2, 200), np.linspace(-1, 3, 200))
        zs = np.log10((1 - xs) ** 2 + 100 * (ys - xs**2) ** 2 + 1e-3)
        for i, (ax, name) in enumerate(zip(axes.flat, names, strict=True)):
            ax.contour(xs, ys, zs, levels=8, colors="0.8", linewidths=0.5)
            p = paths[name]
            ax.plot(p[:, 0], p[:, 1], lw=1, color=f"C{i}")
            ax.plot(1, 1, "k*", ms=8)
            ax.plot(-1.5, 2, "ko", ms=3)
            ax.set_title(
                f"{name}: f={results[name]['rosenbrock_loss']:.0e}", fontsize=8
            )
            ax.set(xlim=(-2, 2), ylim=(-1, 3))
            ax.tick_params(labelsize=7)
        left.suptitle(f"Rosenbrock, {steps} steps (start o, minimum *)", fontsize=10)
        ax1 = right.subplots()
        for i, name in enumerate(names):
            curve = curves[name]
            x = np.arange(1, len(curve) + 1)
            ax1.plot(x, curve, lw=1, color=f"C{i}", label=name)
        ax1.axhline(threshold, color="k", ls=":", lw=0.8)
        ax1.set(
            xlabel="step",
            ylabel="training loss (whole train set)",
            yscale="log",
            title="MLP on digits",
        )
        ax1.legend(fontsize=7, ncol=3)


def regularization_and_init(path: Path, results) -> None:
    """Weight histograms, dropout accuracies, unit spread, dead-unit fractions."""
    with figure(path, figsize=(14, 3.2), ncols=4) as (_, axes):
        bins = np.linspace(-0.6, 0.6, 61)
        for name in ("none", "L2 penalty", "L1 penalty", "L1 proximal"):
            w = results["l1_l2"][name]["weights"]
            axes[0].hist(w, bins=bins, histtype="step", label=name)
        axes[0].set(yscale="log", xlabel="weight", title="weight histogram")
        axes[0].legend(fontsize=7)
        d = results["dropout"]
        for rate, width in ((0.0, -0.35), (0.5, 0.35)):
            run = d[f"dropout {rate}"]
            axes[1].bar(
                ["train", "test"],
                [run["train"], run["test"]],
                width=width,
                align="edge",
                label=f"rate {rate:g}",
            )
        axes[1].set(ylim=(0.8, 1.0), title="dropout: accuracy")
        axes[1].legend(fontsize=7)
        z = results["zero_init"]
        axes[2].bar(list(z), [r["unit_spread"] for r in z.values()])
        axes[2].set(title="max |unit_j − unit_0| after training", yscale="log")
        r = results["dying_relu"]
        for when, width in (("before", -0.35), ("after", 0.35)):
            axes[3].bar(
                list(r),
                [v[f"dead_{when}"] for v in r.values()],
                width=width,
                align="edge",
                label=f"{when} training",
            )
        axes[3].set(title="fraction of dead units", ylim=(0, 1))
        axes[3].legend(fontsize=7)


def exploding_gradients(path: Path, results, curves, initial, t, radius) -> None:
    """Loss and pre-clip gradient norm per step, one line per clipping transform."""
    with figure(path, figsize=(9, 3.4), ncols=2, dpi=90) as (fig, axes):
        for name, (losses, recorded) in curves.items():
            style: dict = dict(lw=1.2)
            if name == "none":  # one finite point before inf/NaN: show it
                style = dict(lw=1.5, ls="--", marker="o", ms=5, color="k")
            steps = np.arange(1, len(losses) + 1)
            shown = np.where(np.isfinite(losses), losses, np.nan)
            axes[0].plot(steps, shown, label=name, **style)
            axes[1].plot(steps, recorded, label=name, **style)
        if results["none"]["diverged"]:
            s = results["none"]["first_nonfinite_step"] + 1
            axes[0].axvline(s, color="k", ls=":", lw=1)
            axes[0].annotate(
                f"no clipping:\ninf/NaN at step {s}",
                (s, initial),
                xytext=(8, 0),
                textcoords="offset points",
                fontsize=8,
                color="k",
            )
        log_log = dict(xlabel="step", yscale="log", xscale="log")
        axes[0].set(ylabel="training loss (MSE)", title="loss", **log_log)
        axes[1].set(
            ylabel="global norm before clipping", title="opt_state[0].norm", **log_log
        )
        axes[0].legend(fontsize=7, loc="lower left")
        fig.suptitle(f"linear RNN, T={t}, init spectral radius {radius}, SGD+momentum")


def data_parallel(path: Path, losses_single, losses_parallel, n_devices: int) -> None:
    """Training loss of the single-device and the sharded run (they coincide)."""
    with figure(path, figsize=(5, 3), ncols=1) as (_, ax):
        ax.plot(losses_single, label="1 device", lw=2)
        ax.plot(losses_parallel, "--", label=f"{n_devices} devices (shard_map)", lw=1)
        ax.set(xlabel="step", ylabel="training loss", yscale="log")
        ax.legend()


def microbatching(path: Path, results, batch_size: int) -> None:
    """Scratch memory of the compiled gradient step against the number of pieces."""
    pieces = np.asarray(results["pieces"])
    with figure(path, figsize=(8, 3), ncols=2, dpi=90) as (fig, ax):
        ax[0].plot(pieces, results["scratch_mb"], "o-")
        ax[0].set(
            xscale="log",
            xlabel="pieces n (microbatch size = batch / n)",
            ylabel="XLA scratch memory (MB)",
            ylim=(0, None),
        )
        ax[0].set_xticks(pieces, [str(n) for n in pieces])
        errors = np.maximum(np.asarray(results["relative_error"]), 1e-9)
        ax[1].plot(pieces[1:], errors[1:], "o-")
        ax[1].axhline(2.0**-23, color="k", ls="--", lw=0.8, label="float32 eps (2⁻²³)")
        ax[1].set(
            xscale="log",
            yscale="log",
            xlabel="pieces n",
            ylabel="max |g_n - g_1| / max |g_1|",
        )
        ax[1].set_xticks(pieces[1:], [str(n) for n in pieces[1:]])
        for a in ax:
            a.minorticks_off()
        ax[1].legend()
        fig.suptitle(f"jaxnn.microbatch: gradient step of an MLP, batch {batch_size}")


def parameter_groups(path: Path, curves) -> None:
    """Training loss and the norm of the biases, per optimizer."""
    with figure(path, figsize=(8, 3), ncols=2, dpi=90) as (fig, ax):
        for name, (losses, norms) in curves.items():
            smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
            ax[0].plot(smooth, lw=0.9, label=name)
            ax[1].plot(norms, lw=0.9, label=name)
        ax[0].set(xlabel="step", ylabel="train loss (20-step mean)", yscale="log")
        ax[1].set(xlabel="step", ylabel="‖all biases‖", ylim=(0, None))
        ax[1].legend()
        fig.suptitle(
            "AdamW on the digits MLP: weight decay on every leaf or kernels only"
        )


def optax_wrappers(path: Path, curves) -> None:
    """Training loss per wrapper, and the learning-rate factors of two of them."""
    with figure(path, figsize=(9, 3.2), ncols=2, dpi=90) as (fig, ax):
        for name, (losses, factors) in curves.items():
            smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
            ax[0].plot(smooth, lw=0.9, label=name)
            if name in ("inject_hyperparams", "reduce_on_plateau"):
                ax[1].plot(factors, lw=1.2, label=name)
        ax[0].set(xlabel="step", ylabel="train loss (20-step mean)", yscale="log")
        ax[0].legend(fontsize=7)
        ax[1].set(xlabel="step", ylabel="learning-rate factor", yscale="log")
        ax[1].legend(fontsize=8)
        fig.suptitle("jaxnn.adam inside optax's wrappers (digits MLP)")
