"""Regenerates the plots in docs/ from the examples (about ten minutes on a CPU).

    python examples/make_figures.py                   # writes every docs/*.png
    python examples/make_figures.py float16_training  # only the named examples

Each figure is also one example's `--plot PATH` (with the arguments listed in
FIGURES), e.g.
`python examples/vanishing_gradients.py --plot docs/vanishing_gradients.png`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
# example -> (figure in docs/, keyword arguments of the example's main).
FIGURES = {
    "vanishing_gradients": ("vanishing_gradients.png", {}),
    "compare_optimizers": ("optimizers.png", {}),
    "exploding_gradients": ("exploding_gradients.png", {}),
    "float16_training": ("float16_training.png", {}),
    # --steps 300: the sweep's shape is the same as at 1500 steps, in a fifth of
    # the time (python examples/sweep_learning_rates.py --steps 300 --plot ...).
    "sweep_learning_rates": ("sweep_learning_rates.png", {"steps": 300}),
    "parameter_groups": ("parameter_groups.png", {}),
    "microbatching": ("microbatching.png", {}),
    "optax_wrappers": ("optax_wrappers.png", {}),
}


def main(names=()):
    DOCS.mkdir(exist_ok=True)
    sys.path.insert(0, str(HERE))  # the examples import _common and _plots by name
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise SystemExit(f"unknown examples {unknown}; known: {sorted(FIGURES)}")
    for name, (png, kwargs) in FIGURES.items():
        if names and name not in names:
            continue
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {name} -> docs/{png}")
        module.main(plot=DOCS / png, quiet=True, **kwargs)


if __name__ == "__main__":
    main(sys.argv[1:])
