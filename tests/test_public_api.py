"""The public surface: every exported name is documented; the library stays clean."""

import ast
import inspect
import pathlib
import subprocess
import sys
import typing

import pytest

import jaxnn

ROOT = pathlib.Path(__file__).resolve().parents[1]
PUBLIC = sorted(jaxnn.__all__)


def test_all_is_sorted_unique_and_importable():
    assert list(jaxnn.__all__) == sorted(set(jaxnn.__all__))
    for name in jaxnn.__all__:
        assert hasattr(jaxnn, name), name


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_a_docstring_with_args_and_returns(name):
    obj = getattr(jaxnn, name)
    doc = inspect.getdoc(obj)
    assert doc and len(doc.splitlines()[0]) > 10, f"{name} has no docstring summary"
    if inspect.isclass(obj):
        if getattr(obj, "_fields", ()):
            assert "Attributes:" in doc, f"{name} does not document its fields"
        return
    if typing.get_origin(obj) is not None:  # a type alias (ScalarOrSchedule)
        return
    params = [
        p
        for p in inspect.signature(obj).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    if params:
        assert "Args:" in doc, f"{name} does not document its arguments"
    assert "Returns:" in doc, f"{name} does not document what it returns"


def test_library_never_imports_the_references():
    forbidden = {"optax", "flax", "haiku"}
    for path in (ROOT / "jaxnn").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for n in names:
                assert n.split(".")[0] not in forbidden, f"{path} imports {n}"


def test_runtime_dependency_is_jax_only():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["jax"]


def test_ruff_lint_and_format_are_clean():
    ruff = [sys.executable, "-m", "ruff"]
    lint = subprocess.run(
        [*ruff, "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(
        [*ruff, "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
