"""The documentation site (docs/, mkdocs.yml) says only what is true.

- Every ```python block of every page runs, page by page in order, each page in a
  fresh namespace (a page's blocks build on each other, as a reader runs them);
  none is skipped. Tracebacks point at the Markdown file and line.
- Every name of `jaxnn.__all__` has exactly one `::: jaxnn.<name>` entry in the API
  reference (docs/api/), and every entry names a public name.
- Every guide page shows its maths, a figure that exists and runnable code.
- The numbers the "coming from" pages claim are checked against optax and flax.
"""

import ast
import importlib
import inspect
import pathlib
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnn
from tests.helpers import TOL

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)
GUIDE = sorted((DOCS / "guide").glob("*.md"))
API = sorted((DOCS / "api").rglob("*.md"))

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\S*)\s*$")


def python_blocks(path):
    """The ```python blocks of a Markdown file as (first line number, code) pairs.

    Fences may be indented (inside list items); the code is dedented by the fence's
    indentation. An unclosed fence is an error.
    """
    lines = path.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m["lang"]:
            i += 1
            continue
        indent, lang = len(m["indent"]), m["lang"]
        start = i + 1
        j = start
        while j < len(lines) and lines[j].rstrip() != " " * indent + "```":
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path}:{i + 1}: unclosed ``` fence")
        if lang == "python":
            code = "\n".join(line[indent:] for line in lines[start:j])
            blocks.append((start + 1, code))
        i = j + 1
    return blocks


def run_page(path):
    namespace = {"__name__": f"docs_{path.stem}"}
    for first_line, code in python_blocks(path):
        # Pad so that tracebacks give the line numbers of the Markdown file.
        source = "\n" * (first_line - 1) + code
        exec(compile(source, str(path), "exec"), namespace)
    return namespace


PAGES_WITH_CODE = [p for p in PAGES if python_blocks(p)]


def test_pages_found():
    names = {p.relative_to(DOCS).as_posix() for p in PAGES}
    assert "index.md" in names
    assert len(GUIDE) >= 8
    assert len(API) >= 17
    # Every guide page and the migration pages have code that runs.
    assert set(GUIDE) <= set(PAGES_WITH_CODE)


@pytest.mark.parametrize(
    "path",
    PAGES_WITH_CODE,
    ids=[p.relative_to(DOCS).as_posix() for p in PAGES_WITH_CODE],
)
def test_code_blocks_run(path):
    run_page(path)


def test_fence_parser_sees_indented_blocks(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "text\n\n```python\nx = 1\n```\n\n- item\n\n    ```python\n    y = x + 1\n"
        "    ```\n\n```bash\nls\n```\n"
    )
    assert [code for _, code in python_blocks(page)] == ["x = 1", "y = x + 1"]
    assert run_page(page)["y"] == 2


# --- API reference -------------------------------------------------------------------

_ENTRY = re.compile(r"^::: (\S+)\s*$", re.M)


def api_entries():
    """(page, public name) for each `::: path` entry of the API pages.

    An entry names `jaxnn.<name>`, or `jaxnn.<module>.<name>` where the flat name
    is also a module's (`jaxnn.batchnorm`, `jaxnn.dropout`): the entry must then be
    the object `jaxnn.<name>` is.
    """
    entries = []
    for page in API:
        for path in _ENTRY.findall(page.read_text()):
            module, _, name = path.rpartition(".")
            obj = getattr(importlib.import_module(module), name)
            assert getattr(jaxnn, name, None) is obj, f"{page}: {path} is not public"
            entries.append((page, name))
    return entries


def test_every_public_name_is_in_the_api_reference():
    documented = [name for _, name in api_entries()]
    missing = sorted(set(jaxnn.__all__) - set(documented))
    assert not missing, f"public names without an API entry in docs/api/: {missing}"


def test_api_reference_names_only_public_names_once():
    documented = [name for _, name in api_entries()]
    assert sorted(set(documented) - set(jaxnn.__all__)) == []
    duplicates = sorted({n for n in documented if documented.count(n) > 1})
    assert duplicates == []


def test_api_pages_cover_the_module_layout():
    pages = {p.relative_to(DOCS / "api").as_posix() for p in API}
    for module in (
        "activations",
        "initializers",
        "batchnorm",
        "dropout",
        "regularizers",
        "losses",
        "layers",
        "diagnostics",
        "optim/base",
        "optim/transforms",
        "optim/adaptive",
        "optim/regularization",
        "optim/masking",
        "optim/clipping",
        "optim/optimizers",
        "optim/schedules",
        "optim/safety",
    ):
        assert f"{module}.md" in pages


# --- guide pages: maths, figure, code ------------------------------------------------

_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", GUIDE, ids=[p.name for p in GUIDE])
def test_guide_page_has_maths_and_a_figure(path):
    text = path.read_text()
    assert re.search(r"^\$\$$", text, re.M), f"{path.name}: no display formula"
    images = _IMAGE.findall(text)
    assert images, f"{path.name}: no figure"
    for image in images:
        assert (path.parent / image).resolve().is_file(), image


def test_every_image_exists():
    for page in PAGES:
        for image in _IMAGE.findall(page.read_text()):
            assert (page.parent / image).resolve().is_file(), f"{page}: {image}"


def test_figures_are_committed_pngs_of_the_examples():
    # Every figure a page shows lies in docs/ and names the example that makes it.
    for page in GUIDE:
        text = page.read_text()
        for image in _IMAGE.findall(text):
            assert image.startswith("../") and image.endswith(".png"), image
            assert "examples/" in text, f"{page.name}: no example named for {image}"


# --- "coming from optax" -------------------------------------------------------------


def section(path, heading, end_marker="\n## "):
    """The text of `path` from the line `heading` to the next level-2 heading."""
    text = path.read_text()
    start = text.index(heading + "\n")
    end = text.find(end_marker, start + len(heading))
    return text[start : end if end >= 0 else None]


def backticked_names(text):
    return re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", text)


OPTAX_PAGE = DOCS / "migrating" / "optax.md"


def test_optax_same_signature_table():
    import optax

    table = section(OPTAX_PAGE, "## Same name, same parameters")
    names = re.findall(r"\| `jaxnn\.(\w+)` \|", table)
    assert len(names) >= 10
    for name in names:
        ours = list(inspect.signature(getattr(jaxnn, name)).parameters.values())
        theirs = list(inspect.signature(getattr(optax, name)).parameters.values())
        assert len(ours) >= len(theirs), name
        for a, b in zip(ours[: len(theirs)], theirs, strict=True):
            assert (a.name, a.kind) == (b.name, b.kind), (name, a, b)
            assert a.default == b.default or (
                a.default is inspect.Parameter.empty
                and b.default is inspect.Parameter.empty
            ), (name, a, b)
        for extra in ours[len(theirs) :]:
            assert extra.kind is inspect.Parameter.KEYWORD_ONLY, (name, extra)
        # The optax call written in the table's first column has these defaults.
        row = next(line for line in table.splitlines() if f"`jaxnn.{name}`" in line)
        for p in theirs:
            if p.default is not inspect.Parameter.empty:
                written = re.search(rf"\b{p.name}=([^,)]+)", row)
                assert written, (name, p.name)
                assert ast.literal_eval(written[1]) == p.default, (name, p.name)


def _same_updates_cases():
    import optax

    sched = optax.constant_schedule(0.1)
    return {
        "sgd": dict(learning_rate=0.1, momentum=0.9),
        "adagrad": dict(learning_rate=0.1),
        "rmsprop": dict(learning_rate=0.1, centered=True),
        "adam": dict(learning_rate=0.1),
        "adamw": dict(learning_rate=0.1, weight_decay=0.1),
        "nadam": dict(learning_rate=0.1),
        "scale_by_learning_rate": dict(learning_rate=0.1),
        "scale_by_schedule": dict(step_size_fn=sched),
        "trace": dict(decay=0.9, nesterov=True),
        "scale_by_rss": dict(),
        "scale_by_rms": dict(decay=0.5),
        "scale_by_adam": dict(b1=0.5),
        "add_decayed_weights": dict(weight_decay=0.1),
        "clip_by_global_norm": dict(max_norm=0.1),
        "adaptive_grad_clip": dict(clipping=0.1),
    }


def test_optax_same_updates_list():
    import optax

    text = section(OPTAX_PAGE, "## Same updates")
    paragraph = text.split("Pass")[0]
    listed = backticked_names(paragraph)
    cases = _same_updates_cases()
    assert sorted(set(listed)) == sorted(set(cases) | {"masked"})
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), "b": jnp.ones(3)}
    grads = {"w": jnp.linspace(0.3, -0.7, 6).reshape(2, 3), "b": jnp.full(3, 0.2)}
    mask = {"w": True, "b": False}
    pairs = [
        (getattr(jaxnn, n)(**kw), getattr(optax, n)(**kw)) for n, kw in cases.items()
    ]
    pairs.append(
        (jaxnn.masked(jaxnn.adam(0.1), mask), optax.masked(optax.adam(0.1), mask))
    )
    for ours, theirs in pairs:
        s1, s2 = ours.init(params), theirs.init(params)
        for _ in range(3):
            u1, s1 = ours.update(grads, s1, params)
            u2, s2 = theirs.update(grads, s2, params)
            for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2), strict=True):
                np.testing.assert_allclose(a, b, **TOL["reduction"])
    # "the five schedules"
    for name, args in [
        ("constant_schedule", (0.3,)),
        ("exponential_decay", (0.3, 10, 0.5)),
        ("cosine_decay_schedule", (0.3, 50)),
        ("warmup_cosine_decay_schedule", (0.0, 0.3, 10, 50)),
        ("piecewise_constant_schedule", (0.3, {10: 0.5, 20: 0.1})),
    ]:
        ours, theirs = getattr(jaxnn, name)(*args), getattr(optax, name)(*args)
        for step in (0, 5, 10, 15, 30, 60):
            np.testing.assert_allclose(ours(step), theirs(step), **TOL["roundings"])


def _public_functions(module, names):
    """The public functions among `names`, leaving out deprecated ones (they warn)."""
    out = set()
    for name in names:
        if not name[0].islower():
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(module, name)
        if callable(value) and not caught:
            out.add(name)
    return out


def test_optax_names_jaxnn_lacks_are_listed():
    import optax

    text = section(OPTAX_PAGE, "## optax names jaxnn does not have")
    listed_part, jaxnn_part = text.split("The jaxnn functions optax has no")
    listed = set(backticked_names(listed_part.split("are listed below")[1]))
    for name in listed:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a deprecated optax name fails here
            assert callable(getattr(optax, name, None)), f"optax has no {name}"
        assert not hasattr(jaxnn, name), f"jaxnn has {name}: drop it from the list"
    missing = _public_functions(optax, optax.__all__) - set(jaxnn.__all__)
    assert sorted(missing - listed) == [], (
        "optax functions jaxnn does not have, missing from docs/migrating/optax.md"
    )
    # And the converse list: jaxnn's functions without an optax namesake.
    jaxnn_only = set(backticked_names(jaxnn_part))
    expected = {
        n for n in _public_functions(jaxnn, jaxnn.__all__) if not hasattr(optax, n)
    }
    assert jaxnn_only == expected


# --- "coming from flax" --------------------------------------------------------------


def test_flax_defaults_and_conventions():
    import flax.linen as nn
    from flax import nnx

    def defaults(fn):
        return {
            k: p.default
            for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    linen_bn, nnx_bn, ours = (
        defaults(nn.BatchNorm),
        defaults(nnx.BatchNorm.__init__),
        defaults(jaxnn.batchnorm),
    )
    assert linen_bn["momentum"] == nnx_bn["momentum"] == ours["momentum"] == 0.99
    assert linen_bn["epsilon"] == nnx_bn["epsilon"] == ours["eps"] == 1e-5
    assert linen_bn["axis"] == ours["axis"] == -1
    assert linen_bn["use_fast_variance"] is True
    params, state = jaxnn.batchnorm_init(3)
    variables = nn.BatchNorm(use_running_average=False).init(
        jax.random.key(0), jnp.ones((2, 3))
    )
    for ours_leaf, name in [(params.scale, "scale"), (params.bias, "bias")]:
        np.testing.assert_array_equal(ours_leaf, variables["params"][name])
    for ours_leaf, name in [(state.mean, "mean"), (state.var, "var")]:
        np.testing.assert_array_equal(ours_leaf, variables["batch_stats"][name])

    # Dropout: rate is the drop probability, kept units scaled by 1/(1 - rate).
    x = jnp.ones((100_000,))
    y = nn.Dropout(0.25, deterministic=False).apply(
        {}, x, rngs={"dropout": jax.random.key(1)}
    )
    assert abs(float((y == 0).mean()) - 0.25) < 0.01
    np.testing.assert_allclose(y.max(), 1 / 0.75, **TOL["roundings"])
    assert defaults(nn.Dropout)["broadcast_dims"] == ()

    # Dense: (in, out) kernel; flax's default init is jax's lecun_normal; jaxnn's He.
    key = jax.random.key(2)
    kernel = nn.Dense(4).init(key, jnp.ones((1, 3)))["params"]["kernel"]
    assert kernel.shape == (3, 4)
    default_init = inspect.signature(nn.Dense).parameters["kernel_init"].default
    np.testing.assert_array_equal(
        default_init(key, (64, 32)),
        jaxnn.variance_scaling(1.0, "fan_in", "truncated_normal")(key, (64, 32)),
    )
    w_init = inspect.signature(jaxnn.dense_init).parameters["w_init"].default
    np.testing.assert_array_equal(
        w_init(key, (64, 32)), jaxnn.he_normal()(key, (64, 32))
    )
    # flax's uniform is [0, scale) with scale 1e-2; jaxnn's is symmetric, 0.05.
    assert defaults(nn.initializers.uniform)["scale"] == 0.01
    assert float(nn.initializers.uniform()(key, (1000,)).min()) >= 0.0
    assert defaults(jaxnn.uniform)["epsilon"] == 0.05
    assert float(jaxnn.uniform()(key, (1000,)).min()) < 0.0
    # Activations: same values; leaky_relu's gradient at 0 differs.
    assert float(jax.grad(nn.leaky_relu)(0.0)) == 1.0
    assert jax.grad(jaxnn.leaky_relu)(0.0) == jnp.float32(0.01)


# --- "coming from PyTorch" ------------------------------------------------------------
#
# PyTorch is not a dependency. Its defaults below were read from the signatures of
# PyTorch 2.13.0, and the NumPy functions transcribe its update rules
# (torch/optim/{sgd,adam,adamw,rmsprop,adagrad}.py, the single-tensor paths;
# torch/nn/utils/clip_grad.py; torch/nn/modules/batchnorm.py). Both were checked
# against PyTorch 2.13.0 itself when the page was written (same iterates to float32
# rounding where the page says "nothing" differs). The tests check that the page states
# these facts and that jaxnn relates to them as the page says.

PYTORCH_PAGE = DOCS / "migrating" / "pytorch.md"
TORCH_2_13 = {
    "SGD(params, lr, momentum=0, dampening=0, nesterov=False)",
    "Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)",
    "AdamW(params, lr=1e-3, weight_decay=1e-2)",
    "RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8)",
    "Adagrad(params, lr=1e-2, initial_accumulator_value=0, eps=1e-10)",
    "NAdam(params, lr=2e-3, momentum_decay=4e-3)",
    "BatchNorm1d(num_features, eps=1e-5, momentum=0.1)",
    "nn.Dropout(p=0.5)",
    "F.leaky_relu(x, negative_slope=0.01)",
}


def _torch_sgd(p, grads, lr, momentum, nesterov=False):
    buf = None
    for g in grads:
        buf = g if buf is None else momentum * buf + g
        p = p - lr * (g + momentum * buf if nesterov else buf)
    return p


def _torch_adam(p, grads, lr, b1=0.9, b2=0.999, eps=1e-8, l2=0.0, decoupled=0.0):
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        p = p * (1 - lr * decoupled)  # AdamW decays first, scaled by lr
        g = g + l2 * p  # Adam's weight_decay is L2 on the gradient
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def _torch_rmsprop(p, grads, lr, alpha, eps):
    v = np.zeros_like(p)
    for g in grads:
        v = alpha * v + (1 - alpha) * g * g
        p = p - lr * g / (np.sqrt(v) + eps)
    return p


def _torch_adagrad(p, grads, lr, initial, eps):
    s = np.full_like(p, initial)
    for g in grads:
        s = s + g * g
        p = p - lr * g / (np.sqrt(s) + eps)
    return p


def _run(tx, p, grads):
    p = jnp.asarray(p)
    state = tx.init(p)
    for g in grads:
        updates, state = tx.update(jnp.asarray(g), state, p)
        p = jaxnn.apply_updates(p, updates)
    return np.asarray(p)


def test_pytorch_page_states_the_defaults():
    text = PYTORCH_PAGE.read_text()
    for fact in TORCH_2_13:
        assert fact in text, fact
    ours = {
        name: {
            k: p.default
            for k, p in inspect.signature(getattr(jaxnn, name)).parameters.items()
        }
        for name in ("sgd", "adam", "adamw", "rmsprop", "adagrad", "batchnorm")
    }
    assert ours["sgd"]["momentum"] is None and ours["sgd"]["nesterov"] is False
    assert (ours["adam"]["b1"], ours["adam"]["b2"], ours["adam"]["eps"]) == (
        0.9,
        0.999,
        1e-8,
    )
    assert ours["adamw"]["weight_decay"] == 1e-4
    assert (ours["rmsprop"]["decay"], ours["rmsprop"]["eps"]) == (0.9, 1e-8)
    assert ours["adagrad"]["initial_accumulator_value"] == 0.1
    assert ours["adagrad"]["eps"] == 1e-7
    assert (ours["batchnorm"]["momentum"], ours["batchnorm"]["eps"]) == (0.99, 1e-5)


def test_pytorch_optimizer_equivalences():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=5).astype(np.float32)
    grads = [rng.normal(size=5).astype(np.float32) for _ in range(6)]
    close = TOL["trajectory"]

    # "nothing" differs.
    for nesterov in (False, True):
        expected = _torch_sgd(p0, grads, 0.01, 0.9, nesterov)
        np.testing.assert_allclose(
            _run(jaxnn.sgd(0.01, momentum=0.9, nesterov=nesterov), p0, grads),
            expected,
            **close,
        )
    np.testing.assert_allclose(
        _run(jaxnn.momentum(0.01, beta=0.9), p0, grads),
        _torch_sgd(p0, grads, 0.01, 0.9),
        **close,
    )
    np.testing.assert_allclose(
        _run(jaxnn.adam(0.01, eps=1e-3), p0, grads),
        _torch_adam(p0, grads, 0.01, eps=1e-3),
        **close,
    )
    np.testing.assert_allclose(
        _run(jaxnn.chain(jaxnn.add_decayed_weights(0.1), jaxnn.adam(0.01)), p0, grads),
        _torch_adam(p0, grads, 0.01, l2=0.1),
        **close,
    )
    np.testing.assert_allclose(
        _run(jaxnn.adamw(0.01, weight_decay=1e-2), p0, grads),
        _torch_adam(p0, grads, 0.01, decoupled=1e-2),
        **close,
    )
    # Where eps goes: PyTorch outside the root, jaxnn inside.
    ours = _run(jaxnn.rmsprop(0.01, decay=0.9, eps=1e-3), p0, grads)
    assert not np.allclose(ours, _torch_rmsprop(p0, grads, 0.01, 0.9, 1e-3), **close)
    v, p = np.zeros_like(p0), p0.copy()
    for g in grads:
        v = 0.9 * v + 0.1 * g * g
        p = p - 0.01 * g / np.sqrt(v + 1e-3)
    np.testing.assert_allclose(ours, p, **close)
    ours = _run(jaxnn.adagrad(0.01, initial_accumulator_value=0.0, eps=1e-3), p0, grads)
    assert not np.allclose(ours, _torch_adagrad(p0, grads, 0.01, 0.0, 1e-3), **close)


def test_pytorch_clip_and_batchnorm_conventions():
    # clip_grad_norm_: factor max_norm / (norm + 1e-6); jaxnn max_norm / norm.
    g = jnp.array([3.0, 4.0])  # norm 5
    tx = jaxnn.clip_by_global_norm(1.0)
    clipped, state = tx.update(g, tx.init(g))
    np.testing.assert_allclose(
        clipped, np.array([3.0, 4.0]) / 5.0, **TOL["one_rounding"]
    )
    torch_clipped = np.array([3.0, 4.0]) * (1.0 / (5.0 + 1e-6))
    np.testing.assert_allclose(clipped, torch_clipped, **TOL["roundings"])
    assert float(state.norm) == 5.0  # what clip_grad_norm_ returns

    # BatchNorm: PyTorch momentum m == jaxnn momentum 1 - m; unbiased running var.
    rng = np.random.default_rng(1)
    x = (2.0 * rng.normal(size=(8, 3)) + 1.0).astype(np.float32)
    params, state = jaxnn.batchnorm_init(3)
    y, new = jaxnn.batchnorm(params, state, jnp.asarray(x), training=True, momentum=0.9)
    torch_mean = (1 - 0.1) * 0.0 + 0.1 * x.mean(0)
    torch_var = (1 - 0.1) * 1.0 + 0.1 * x.var(0, ddof=1)
    np.testing.assert_allclose(new.mean, torch_mean, **TOL["reduction"])
    np.testing.assert_allclose(new.var, 0.9 + 0.1 * x.var(0), **TOL["reduction"])
    assert not np.allclose(new.var, torch_var, **TOL["distinct"])
    # Training outputs use the biased variance in both.
    torch_y = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    np.testing.assert_allclose(y, torch_y, **TOL["batch_normalized"])


def test_pytorch_init_and_activation_conventions():
    key = jax.random.key(0)
    n_in, n_out = 512, 256
    # kaiming_normal_ (a=0, leaky_relu, fan_in): std = sqrt(2) / sqrt(fan_in).
    w = jaxnn.he_normal()(key, (n_in, n_out))
    np.testing.assert_allclose(float(w.var()), 2.0 / n_in, **TOL["sampling_variance"])
    # kaiming_uniform_: bound sqrt(3) * sqrt(2) / sqrt(fan_in) = sqrt(6 / fan_in).
    w = jaxnn.he_uniform()(key, (n_in, n_out))
    assert float(jnp.abs(w).max()) <= np.sqrt(6 / n_in)
    assert float(jnp.abs(w).max()) > 0.99 * np.sqrt(6 / n_in)
    # xavier_uniform_ / xavier_normal_ with gain 1.
    w = jaxnn.xavier_uniform()(key, (n_in, n_out))
    assert float(jnp.abs(w).max()) <= np.sqrt(6 / (n_in + n_out))
    w = jaxnn.xavier_normal()(key, (n_in, n_out))
    np.testing.assert_allclose(
        float(w.var()), 2.0 / (n_in + n_out), **TOL["sampling_variance"]
    )
    # Gradients at 0: ReLU 0, Leaky ReLU its slope (PyTorch's x > 0 ? 1 : slope).
    assert float(jax.grad(jaxnn.relu)(0.0)) == 0.0
    assert jax.grad(lambda z: jaxnn.leaky_relu(z, 0.1))(0.0) == jnp.float32(0.1)
    assert (
        inspect.signature(jaxnn.leaky_relu).parameters["negative_slope"].default == 0.01
    )


def test_code_lines_fit_the_page():
    # Longer lines scroll sideways in the rendered code blocks.
    for page in PAGES:
        for first_line, code in python_blocks(page):
            for i, line in enumerate(code.splitlines()):
                assert len(line) <= 80, f"{page}:{first_line + i}: {len(line)} chars"
