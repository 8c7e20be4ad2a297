"""The benchmarks run (`run_all.py --quick`: small sizes; timings are not checked)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_run_all_quick_writes_every_figure(tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run_all.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    (json_path,) = tmp_path.glob("*.json")
    (md_path,) = tmp_path.glob("*.md")
    r = json.loads(json_path.read_text())

    env = r["environment"]
    for key in ("platform", "device", "jax", "jaxlib", "optax", "flax"):
        assert env[key], key
    assert r["device_triad"]["gbps"] > 0

    leaf, tree = r["optimizers"]
    assert leaf["leaves"] == 1
    assert tree["label"].startswith("ResNet-50") and tree["leaves"] > 1
    for case in (leaf, tree):
        rows = {row["optimizer"]: row for row in case["rows"]}
        assert set(rows) == {"sgd", "clip+adamw"}
        for row in rows.values():
            assert row["ratio"] > 0 and row["compile_ratio"] > 0
            assert all(0 < f for f in row["bandwidth_fraction"].values())
        # From the compiled program, deterministic: the clip adds one read of g to
        # adamw's traffic for jaxnn, a written and re-read clipped copy for optax.
        traffic = rows["clip+adamw"]["traffic"]
        assert traffic["jaxnn"] < traffic["optax"]

    glue = r["glue"]
    assert glue["label"].startswith("ResNet-50") and glue["leaves"] == tree["leaves"]
    (row,) = glue["rows"]
    assert row["glue"] == "partition" and row["dtype"] == "float32"
    assert row["ratio"] > 0 and row["ratio_plain"] > 0
    assert all(0 < f for f in row["bandwidth_fraction"].values())
    # From the compiled program: the partition streams what its two groups
    # stream when written by hand, and allocates no more scratch.
    assert row["traffic"]["jaxnn"] <= row["traffic"]["plain"]
    assert row["temp_mb"]["jaxnn"] <= row["temp_mb"]["plain"]

    layers = {row["case"]: row for row in r["layers"]["rows"]}
    assert set(layers) == {"batchnorm", "dropout"}
    assert all(row["ratio"] > 0 for row in layers.values())

    table = md_path.read_text()
    assert env["device"] in table
    assert "clip+adamw" in table and "dropout" in table and "partition" in table
