"""gj.random: normal, uniform, bernoulli in graphs and eager, seeded, from a counter-based
generator; TF1's random_normal/truncated_normal/random_uniform; dropout."""

from __future__ import annotations

__all__: list[str] = []
