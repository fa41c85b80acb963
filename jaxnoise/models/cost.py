"""FLOPs of a model from XLA's cost analysis (what the report's complexity table and the sweep's
up-front work estimate quote)."""
import math

import jax
import jax.numpy as jnp


def cost_flops(function, *arguments, compiled: bool = True) -> float:
  """FLOPs of one call of ``function`` from XLA's cost analysis.

  ``compiled=False`` analyses the lowered program without compiling it (seconds faster on a CPU,
  and within a few percent: XLA's optimisations change little of a network's arithmetic).
  """
  lowered = jax.jit(function).lower(*arguments)
  cost = (lowered.compile() if compiled else lowered).cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax returned one dict per device program
    cost = cost[0]
  return float((cost or {}).get("flops", math.nan))


def clip_flops(spec, variables, *, compiled: bool = True) -> tuple[float, float]:
  """``(frontend + network, frontend)`` FLOPs of one clip of ``spec.clip_samples`` (eval mode)."""
  clip = jnp.zeros((1, spec.clip_samples), jnp.float32)
  total = cost_flops(lambda v, x: spec.apply(v, x, train=False)["logits"], variables, clip,
                     compiled=compiled)
  return total, cost_flops(spec.features, clip, compiled=compiled)
