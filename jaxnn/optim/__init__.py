"""Gradient transformations: the protocol, building blocks, optimizers, clipping.

Public names are re-exported flat from `jaxnn` (write `jaxnn.adamw`, not
`jaxnn.optim.optimizers.adamw`).
"""
