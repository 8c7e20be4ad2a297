"""Regenerates the plots in docs/ from the examples (about two minutes on a CPU).

    python examples/make_figures.py           # writes docs/*.png

Each figure is also one example's `--plot PATH`, e.g.
`python examples/vanishing_gradients.py --plot docs/vanishing_gradients.png`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"
FIGURES = {
    "vanishing_gradients": "vanishing_gradients.png",
    "compare_optimizers": "optimizers.png",
    "exploding_gradients": "exploding_gradients.png",
}


def main():
    DOCS.mkdir(exist_ok=True)
    for name, png in FIGURES.items():
        spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== {name} -> docs/{png}")
        module.main(plot=DOCS / png, quiet=True)


if __name__ == "__main__":
    main()
