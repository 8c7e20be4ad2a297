"""Every benchmark on whatever backend JAX finds, saved as one JSON file and one table.

    python benchmarks/run_all.py            # full sizes (15 minutes or more on 2 cores)
    python benchmarks/run_all.py --quick    # small sizes: a smoke run

Runs, in one process: the device's triad bandwidth (`triad.py`, on a large array:
host memory on CPU, the GPU's own memory on GPU), the optimizer steps against
optax (`optimizers.py`: every optimizer, on one leaf and on the ResNet-50 tree,
then the fresh-process compile table, left out with --quick; then the glue
transforms on the tree against optax's equivalents and the plain optimizers), and
BatchNorm and dropout against flax (`layers.py`). Writes
`benchmarks/results/<date>-<platform>-<device>.json` (all figures, the device and
the versions of jax, jaxlib, optax and flax) and a `.md` file beside it with the
same figures as markdown tables. `benchmarks/results/`
is git-ignored: copy a table into benchmarks/README.md to publish it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

# layers, optimizers, triad: modules beside this script (its directory is on
# sys.path when it runs).
import layers
import optimizers
from triad import measure_bandwidth

import jaxnn

HERE = Path(__file__).resolve().parent
QUICK_OPTIMIZERS = ["sgd", "clip+adamw"]
# The cheapest glue to compile: a smoke test of the glue table.
QUICK_GLUE = ["partition"]


def environment() -> dict[str, Any]:
    """The device and the versions the figures were measured with."""
    device = jax.devices()[0]

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    cpu = _cpu_model()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": device.platform,
        # On CPU, jax's device kind is "cpu": the processor's model says more.
        "device": cpu if device.platform == "cpu" else device.device_kind,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": version("jaxlib"),
        "optax": version("optax"),
        "flax": version("flax"),
        "jaxnn": jaxnn.__version__,
        "git_commit": commit,
    }


def _cpu_model() -> str:
    """The host CPU's model name where Linux tells it, else its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _plain(obj: Any) -> Any:
    """Dataclasses (with their properties, e.g. `ratio`) as JSON-ready dicts."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        for name, value in vars(type(obj)).items():
            if isinstance(value, property):
                out[name] = getattr(obj, name)
        return out
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def run(quick: bool, compile_reps: int) -> dict[str, Any]:
    """Runs every benchmark; returns the figures as plain data."""
    env = environment()
    print(
        f"{env['device']} ({env['platform']}), jax {env['jax']}, jaxlib "
        f"{env['jaxlib']}, optax {env['optax']}, flax {env['flax']}"
    )
    start = time.perf_counter()
    # The device's bandwidth: one large triad, 3 arrays of 2**26 float32 (768 MB
    # per call; 12 MB with --quick).
    n = 2**20 if quick else 2**26
    device_gbps = measure_bandwidth(n, rounds=5 if quick else 25) / 1e9
    print(f"\n== device triad a = b + s*c on 2**{n.bit_length() - 1}: ", end="")
    print(f"{device_gbps:.1f} GB/s")
    cases, compile_rows = optimizers.run(
        QUICK_OPTIMIZERS if quick else list(optimizers.OPTIMIZERS),
        quick=quick,
        # Each fresh process imports jax and compiles the full-size tree: seconds
        # apiece, too slow for a smoke run.
        fresh_compile=[] if quick else list(optimizers.FRESH_DEFAULT),
        compile_reps=compile_reps,
    )
    glue = optimizers.run_glue(
        QUICK_GLUE if quick else list(optimizers.GLUE), quick=quick
    )
    print()
    layer_results = layers.run(quick=quick)
    return {
        "environment": env,
        "quick": quick,
        "seconds": time.perf_counter() - start,
        "device_triad": {"elements": n, "gbps": device_gbps},
        "optimizers": _plain(cases),
        "compile_fresh": _plain(compile_rows),
        "glue": _plain(glue),
        "layers": _plain(layer_results),
    }


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(r: dict[str, Any]) -> str:
    """The figures of `run` as markdown: a heading line, then one table per part."""
    env = r["environment"]
    lines = [
        f"# Benchmarks: {env['device']} ({env['platform']})",
        "",
        f"{env['date']}; {env['device_count']} device(s); host {env['cpu']}, "
        f"{env['cpu_count']} CPUs; Python {env['python']}; jax {env['jax']}, "
        f"jaxlib {env['jaxlib']}, optax {env['optax']}, flax {env['flax']}, "
        f"jaxnn {env['jaxnn']} (commit {env['git_commit']})"
        + ("; **--quick** (small sizes, not figures to quote)" if r["quick"] else "")
        + ".",
        "",
        f"Device triad a = b + s*c on {r['device_triad']['elements']:,} float32 "
        f"elements: **{r['device_triad']['gbps']:.1f} GB/s**. Ratios are jaxnn / "
        "reference: below 1, jaxnn is faster. %bw is the minimum bytes a step must "
        "move over its time, as a fraction of the triad timed in the same rounds "
        "on as many elements.",
    ]
    for case in r["optimizers"]:
        lines += [
            "",
            f"## Optimizer step vs optax: {case['label']}",
            "",
            f"{case['leaves']} leaves, {case['params']:,} float32 parameters; "
            f"triad {case['triad_gbps']:.1f} GB/s in the same rounds.",
            "",
        ]
        rows = []
        for row in case["rows"]:
            ms, bw, c = row["ms"], row["bandwidth_fraction"], row["compile_s"]
            rows.append(
                [
                    row["optimizer"],
                    f"{ms['jaxnn']:.3f}",
                    f"{ms['optax']:.3f}",
                    f"{row['ratio']:.2f}",
                    f"{bw['jaxnn']:.0%}",
                    f"{bw['optax']:.0%}",
                    f"{c['jaxnn']:.2f} / {c['optax']:.2f}",
                    f"{row['kernels']['jaxnn']}/{row['kernels']['optax']}",
                    f"{row['traffic']['jaxnn']:.1f}/{row['traffic']['optax']:.1f} "
                    f"({row['min_arrays']})",
                    f"{row['temp_mb']['jaxnn']:.1f}/{row['temp_mb']['optax']:.1f}",
                ]
            )
        header = [
            "optimizer",
            "jaxnn ms",
            "optax ms",
            "ratio",
            "jaxnn %bw",
            "optax %bw",
            "compile s j/o (in process)",
            "kernels j/o",
            "traffic j/o (min)",
            "temp MB j/o",
        ]
        lines += _table(header, rows)
    if r["compile_fresh"]:
        reps = r["compile_fresh"][0]["reps"]
        title = f"Compile time of the tree step, fresh processes, median of {reps}"
        lines += ["", f"## {title}", ""]
        lines += _table(
            ["optimizer", "jaxnn s", "optax s", "ratio"],
            [
                [
                    c["optimizer"],
                    f"{c['jaxnn_s']:.2f}",
                    f"{c['optax_s']:.2f}",
                    f"{c['ratio']:.2f}",
                ]
                for c in r["compile_fresh"]
            ],
        )
    glue = r["glue"]
    lines += [
        "",
        f"## Glue vs optax's equivalent and the plain optimizer: {glue['label']}",
        "",
        f"{glue['leaves']} leaves, {glue['params']:,} parameters; triad "
        f"{glue['triad_gbps']:.1f} GB/s in the same rounds. Targets: glue / optax "
        "<= 1, glue / plain <= 1.05. Traffic and min are in units of the "
        "parameter bytes; optax's apply_if_finite runs adamw inside a lax.cond, "
        "whose kernels the counts leave out.",
        "",
    ]
    three = "jaxnn", "optax", "plain"
    lines += _table(
        [
            "glue",
            "dtype",
            "jaxnn ms",
            "optax ms",
            "plain ms",
            "glue / optax",
            "glue / plain",
            "%bw j/o/p",
            "kernels j/o/p",
            "traffic j/o/p (min)",
            "temp MB j/o/p",
        ],
        [
            [
                row["glue"],
                row["dtype"],
                *(f"{row['ms'][k]:.3f}" for k in three),
                f"{row['ratio']:.3f}",
                f"{row['ratio_plain']:.3f}",
                "/".join(f"{row['bandwidth_fraction'][k]:.0%}" for k in three),
                "/".join(str(row["kernels"][k]) for k in three),
                "/".join(f"{row['traffic'][k]:.1f}" for k in three)
                + f" ({row['min_arrays']:.1f})",
                "/".join(f"{row['temp_mb'][k]:.1f}" for k in three),
            ]
            for row in glue["rows"]
        ],
    )
    lay = r["layers"]
    lines += [
        "",
        f"## Layers vs flax.linen (median of {lay['rounds']} rounds)",
        "",
        f"Triad {lay['triad_gbps']:.1f} GB/s on as many elements as the BatchNorm "
        "input.",
        "",
    ]
    lines += _table(
        ["layer", "jaxnn ms", "flax ms", "ratio", "jaxnn %bw", "flax %bw"],
        [
            [
                row["case"],
                f"{row['ms']['jaxnn']:.3f}",
                f"{row['ms']['flax']:.3f}",
                f"{row['ratio']:.2f}",
                f"{row['bandwidth_fraction']['jaxnn']:.0%}",
                f"{row['bandwidth_fraction']['flax']:.0%}",
            ]
            for row in lay["rows"]
        ],
    )
    err = lay["batchnorm_offset_error"]
    lines += [
        "",
        f"BatchNorm on x = 1e4 + N(0, 1): max |std(y) − 1| jaxnn {err['jaxnn']:.1e}, "
        f"flax {err['flax']:.1e}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, few rounds, two optimizers: a smoke run",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="directory for the JSON and markdown files (default benchmarks/results)",
    )
    parser.add_argument(
        "--compile-reps",
        type=int,
        default=5,
        help="fresh processes per library in the compile table (default 5)",
    )
    args = parser.parse_args()
    results = run(args.quick, args.compile_reps)
    env = results["environment"]
    device = re.sub(r"[^a-z0-9]+", "-", env["device"].lower()).strip("-")
    stem = f"{env['date'][:10]}-{env['platform']}-{device}"
    if args.quick:
        stem += "-quick"
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    md_path.write_text(markdown(results))
    print(f"\nwrote {json_path} and {md_path} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
