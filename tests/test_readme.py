"""The README's code blocks run, in order, on a small model."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]

PRELUDE = """
import jax
import jax.numpy as jnp
import jaxnn

key = jax.random.key(0)
x = jax.random.normal(key, (16, 128))
y = jnp.zeros((16, 4))
params = [jaxnn.dense_init(key, 128, 8), jaxnn.dense_init(key, 8, 4)]


def loss_fn(params, x, y):
    h = jaxnn.relu(jaxnn.dense(params[0], x))
    return jaxnn.mean_squared_error(jaxnn.dense(params[1], h), y)


grads = jax.grad(loss_fn)(params, x, y)
"""


def test_readme_python_blocks_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 8
    namespace: dict = {}
    exec(PRELUDE, namespace)
    stepped = False
    for block in blocks:
        exec(block, namespace)
        if "def step(" in block:
            _, _, norm = namespace["step"](
                namespace["params"],
                namespace["opt_state"],
                namespace["x"],
                namespace["y"],
            )
            assert float(norm) > 0
            stepped = True
    assert stepped
    assert namespace["report"].layer_norms.shape == (2,)
