"""The bandwidth reference of every benchmark: a jitted, donated triad a = b + s*c.

The triad reads two float32 arrays and writes one, 12 bytes per element, in one
kernel: the most a bandwidth-bound step can hope for on the device JAX runs on
(host memory on CPU, the GPU's own memory on GPU). A benchmark reports the
fraction of it a step reaches: (the minimum bytes the step must move / its time)
over (triad bytes / triad time).

`a` is written into the donated buffer of `b`. Donating an input the computation
does not read lets XLA drop it, and every call would then page-fault a fresh
output buffer and measure the page faults, not the memory.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

BYTES_PER_ELEMENT = 3 * 4  # read b and c, write a; float32


class Triad:
    """The donated triad on n float32 elements, timed one blocking call at a time.

    Benchmarks call `run()` once per round next to the steps they time, so that
    load from other processes affects both alike; `bandwidth(since)` is then the
    median over the rounds from index `since` on.
    """

    def __init__(self, n: int):
        self.n = n
        self.b = jnp.ones((n,), jnp.float32)
        self.c = jnp.full((n,), 2.0, jnp.float32)
        self.s = jnp.float32(1e-3)
        self.fn = jax.jit(lambda b, c, s: b + s * c, donate_argnums=(0,))
        self.times: list[float] = []

    @property
    def nbytes(self) -> int:
        """Bytes one call moves."""
        return BYTES_PER_ELEMENT * self.n

    def run(self, record: bool = True) -> None:
        """One blocking triad; its time is kept if `record`."""
        t0 = time.perf_counter()
        self.b = self.fn(self.b, self.c, self.s).block_until_ready()
        if record:
            self.times.append(time.perf_counter() - t0)

    def bandwidth(self, since: int = 0) -> float:
        """Bytes per second: `nbytes` over the median time of the calls from `since`."""
        return self.nbytes / statistics.median(self.times[since:])


def measure_bandwidth(n: int, rounds: int, warmup: int = 3) -> float:
    """Bytes per second of the triad on n elements, median of `rounds` calls."""
    triad = Triad(n)
    for _ in range(warmup):
        triad.run(record=False)
    for _ in range(rounds):
        triad.run()
    return triad.bandwidth()
