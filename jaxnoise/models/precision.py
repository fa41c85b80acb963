"""How a network computes: ``config.sweep.precision`` and ``config.train.precision``.

  highest   float32 inputs, weights and results, matmuls and convolutions at full float32 precision
            on every backend (what a CPU does anyway): logits match the golden vectors.
  default   the backend's fast path for float32 matmuls (TF32 on recent GPUs, bfloat16 passes on
            TPUs; unchanged on a CPU).
  bfloat16  weights and activations of the network cast to bfloat16; the frontend, the mixing and
            the band powers stay float32, and logits are returned as float32. In training the
            optimiser keeps float32 weights and the BatchNorm statistics stay float32.

Without a setting JAX uses 'default', whose logits drift on accelerators beyond the golden
tolerances; jaxnoise therefore defaults to 'highest'.
"""
import jax
import jax.numpy as jnp

PRECISIONS = ("highest", "default", "bfloat16")
# What jax.default_matmul_precision is set to in each mode (bfloat16 inputs run at their own
# precision whatever this says).
MATMUL_PRECISION = {"highest": "highest", "default": "default", "bfloat16": "default"}


def check(name: str) -> str:
  if name not in PRECISIONS:
    raise ValueError(f"unknown precision {name!r}; expected one of {PRECISIONS}")
  return name


def compute_dtype(name: str):
  return jnp.bfloat16 if check(name) == "bfloat16" else jnp.float32


def cast_floats(tree, dtype):
  """Every floating-point leaf of ``tree`` as ``dtype`` (integer leaves untouched)."""
  return jax.tree.map(
      lambda leaf: leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf, tree)


def like(tree, reference):
  """``tree``'s leaves cast back to the dtypes of ``reference`` (e.g. BatchNorm statistics a
  bfloat16 step updated, kept float32 so the state's types never change between steps)."""
  return jax.tree.map(lambda leaf, ref: leaf.astype(ref.dtype), tree, reference)
