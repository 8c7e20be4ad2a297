"""What a compiled step does, read from XLA: kernels launched, bytes moved, temp memory.

`step_stats(compiled)` takes a `jax.stages.Compiled` and returns `HloStats`:

- `fusions`: the fusion instructions of the entry computation, i.e. the kernels one
  call launches (kernels inside a `lax.cond` branch that ordinary steps skip are
  not counted);
- `kernel_bytes`: the bytes those kernels read and write, summed over each
  fusion's array operands and output (scalars ignored). An elementwise kernel
  streams each operand once, so this is the traffic the compiled program implies,
  to be compared with the minimum an optimizer must move;
- `temp_bytes`: `compiled.memory_analysis().temp_size_in_bytes`, the scratch
  memory XLA allocates besides arguments and outputs (a materialized intermediate
  shows up here).

The parser reads the optimized HLO text (`compiled.as_text()`): each entry
instruction's name and result shape, then each fusion's operands by name.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

_DTYPE_BYTES = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "bf16": 2,
    "f16": 2,
    "s16": 2,
    "u16": 2,
    "f32": 4,
    "s32": 4,
    "u32": 4,
    "f64": 8,
    "s64": 8,
    "u64": 8,
}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (\S+) (\w[\w\-]*)\((.*)$")
_ARRAY = re.compile(r"^(\w+)\[([\d,]*)\]")


class HloStats(NamedTuple):
    """Counts read from one compiled step (see the module docstring)."""

    fusions: int
    kernel_bytes: int
    temp_bytes: int


def _array_bytes(shape: str) -> int:
    """Bytes of an array shape such as `f32[3,3,64]{2,1,0}`; 0 for scalars, tuples."""
    m = _ARRAY.match(shape)
    if m is None or not m.group(2) or m.group(1) not in _DTYPE_BYTES:
        return 0
    return _DTYPE_BYTES[m.group(1)] * math.prod(int(d) for d in m.group(2).split(","))


def step_stats(compiled) -> HloStats:
    """Returns the `HloStats` of a compiled jitted function."""
    text = compiled.as_text()
    entry = text[text.index("\nENTRY") :].split("\n}", 1)[0]
    shapes: dict[str, str] = {}
    fusions = []
    for line in entry.splitlines():
        m = _INSTRUCTION.match(line)
        if m is None:
            continue
        name, shape, op, rest = m.groups()
        shapes[name] = shape
        if op == "fusion":
            operands = re.findall(r"%([\w.\-]+)", rest.split("), kind=")[0])
            fusions.append((shape, operands))
    kernel_bytes = sum(
        _array_bytes(shape) + sum(_array_bytes(shapes.get(o, "")) for o in operands)
        for shape, operands in fusions
    )
    temp = compiled.memory_analysis().temp_size_in_bytes
    return HloStats(len(fusions), kernel_bytes, temp)
