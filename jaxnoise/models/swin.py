"""Swin Transformer pieces (Liu et al. 2021) as HTS-AT uses them, in Flax.

Tokens live on an ``[height, width]`` grid. A block attends within non-overlapping ``window x window``
windows; every second block first rolls the grid by half a window so that information crosses window
borders, and masks attention between tokens that the roll brought together from opposite edges.

Every window of every clip is processed by one batched einsum: windows are an array axis
(``[batch, windows, tokens, channels]``), never a Python loop, so XLA sees a handful of large
contractions. Index and mask tables are host constants computed once per shape.

Conventions that matter for converted PyTorch weights: LayerNorm eps 1e-5 (PyTorch's, Flax's default
is 1e-6), exact erf GELU (Flax's default is the tanh approximation), q scaled before ``q k^T``, and
the shift mask is -100 rather than -inf.
"""
import functools
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LAYER_NORM_EPSILON = 1e-5
# Masked logits get this added, not -inf: exp(-100) is already 0 in float32, and it is upstream's.
MASK_VALUE = -100.0
# Upstream initialises Linear weights and the bias tables with a truncated normal of std 0.02.
dense_init = nn.initializers.truncated_normal(stddev=0.02)


def layer_norm(name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, name=name)


def effective_window(resolution: Sequence[int], window_size: int, shift_size: int):
  """``(window, shift)`` a block really uses on a grid of ``resolution``.

  A grid no larger than the window is one window, and then there is nothing to shift.
  """
  if min(resolution) <= window_size:
    return min(resolution), 0
  return window_size, shift_size


@functools.lru_cache(maxsize=None)
def relative_position_index(window_size: int) -> np.ndarray:
  """``[N, N]`` row of the bias table for query token i and key token j, N = window_size**2.

  Tokens are row-major in the window, token = y * window + x; the index is
  ``(y_i - y_j + w - 1) * (2w - 1) + (x_i - x_j + w - 1)``.
  """
  rows, cols = np.meshgrid(np.arange(window_size), np.arange(window_size), indexing="ij")
  rows, cols = rows.reshape(-1), cols.reshape(-1)
  row_offset = rows[:, None] - rows[None, :] + window_size - 1
  col_offset = cols[:, None] - cols[None, :] + window_size - 1
  index = row_offset * (2 * window_size - 1) + col_offset
  index.setflags(write=False)
  return index


def partition_windows(x: jax.Array, window_size: int) -> jax.Array:
  """``[batch, H, W, C]`` -> ``[batch, windows, window_size**2, C]``.

  Windows are row-major over the grid of windows; tokens row-major inside a window.
  """
  batch, height, width, channels = x.shape
  x = x.reshape(batch, height // window_size, window_size, width // window_size, window_size,
                channels)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, -1, window_size * window_size, channels)


def merge_windows(windows: jax.Array, height: int, width: int) -> jax.Array:
  """Inverse of ``partition_windows``: ``[batch, windows, N, C]`` -> ``[batch, H, W, C]``."""
  batch, _, tokens, channels = windows.shape
  window_size = int(round(tokens ** 0.5))
  x = windows.reshape(batch, height // window_size, width // window_size, window_size,
                      window_size, channels)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, height, width, channels)


@functools.lru_cache(maxsize=None)
def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int) -> np.ndarray:
  """``[windows, N, N]`` additive mask of a shifted block: -100 between tokens of different regions.

  After the cyclic roll, the last ``window_size`` rows (and columns) of the grid hold two regions:
  tokens that were already there and tokens that wrapped around from the opposite edge. Labelling
  the 3 x 3 regions and comparing labels inside each window says which pairs must not attend.
  """
  def region(size):
    labels = np.zeros(size, np.int32)
    labels[size - window_size:size - shift_size] = 1
    labels[size - shift_size:] = 2
    return labels

  labels = region(height)[:, None] * 3 + region(width)[None, :]
  windows = partition_windows(labels[None, :, :, None], window_size)[0, :, :, 0]
  mask = np.where(windows[:, :, None] != windows[:, None, :], MASK_VALUE, 0.0).astype(np.float32)
  mask.setflags(write=False)
  return mask


class PatchEmbed(nn.Module):
  """``[batch, H, W]`` image -> ``[batch, rows * cols, embed_dim]`` tokens (row-major) and ``(rows, cols)``.

  A ``patch_size`` convolution with stride ``patch_stride`` (padding ``(patch - stride) // 2``), then
  LayerNorm when ``norm``.
  """
  embed_dim: int
  patch_size: int
  patch_stride: tuple
  norm: bool = True

  @nn.compact
  def __call__(self, image: jax.Array):
    padding = [((self.patch_size - stride) // 2,) * 2 for stride in self.patch_stride]
    x = nn.Conv(self.embed_dim, (self.patch_size, self.patch_size), strides=self.patch_stride,
                padding=padding, name="proj")(image[..., None])
    batch, rows, cols, channels = x.shape
    x = x.reshape(batch, rows * cols, channels)
    if self.norm:
      x = layer_norm("norm")(x)
    return x, (rows, cols)


class DropPath(nn.Module):
  """Stochastic depth: in training, zero a whole residual branch per example with prob ``rate``.

  Kept branches are scaled by ``1 / (1 - rate)`` so that the expectation is unchanged. Uses the
  'dropout' rng.
  """
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if not train or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    kept = jax.random.bernoulli(self.make_rng("dropout"), keep, shape)
    return jnp.where(kept, x / keep, 0.0)


class WindowAttention(nn.Module):
  """Multi-head self-attention inside each window, with a learned relative position bias.

  ``[batch, windows, N, C]`` (+ optional mask ``[windows, N, N]``) -> ``[batch, windows, N, C]``.
  """
  num_heads: int
  window_size: int
  qkv_bias: bool = True
  attention_dropout: float = 0.0
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, mask: Optional[np.ndarray], *, train: bool) -> jax.Array:
    channels = x.shape[-1]
    head_dim = channels // self.num_heads
    tokens = self.window_size * self.window_size
    qkv = nn.Dense(3 * channels, use_bias=self.qkv_bias, kernel_init=dense_init, name="qkv")(x)
    # Output features are [q | k | v], each split into heads as contiguous head_dim chunks.
    qkv = qkv.reshape(x.shape[:-1] + (3, self.num_heads, head_dim))
    query, key, value = qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]
    query = query * head_dim ** -0.5
    logits = jnp.einsum("bwqhd,bwkhd->bwhqk", query, key)

    table = self.param("relative_position_bias_table", dense_init,
                       ((2 * self.window_size - 1) ** 2, self.num_heads), jnp.float32)
    bias = table[relative_position_index(self.window_size).reshape(-1)]
    logits = logits + bias.reshape(tokens, tokens, self.num_heads).transpose(2, 0, 1)
    if mask is not None:
      logits = logits + jnp.asarray(mask)[:, None]  # the same mask for every clip and head
    weights = jax.nn.softmax(logits, axis=-1)
    weights = nn.Dropout(self.attention_dropout, deterministic=not train)(weights)

    out = jnp.einsum("bwhqk,bwkhd->bwqhd", weights, value).reshape(x.shape)
    out = nn.Dense(channels, kernel_init=dense_init, name="proj")(out)
    return nn.Dropout(self.dropout, deterministic=not train)(out)


class Mlp(nn.Module):
  """``Linear(c -> hidden)`` -> exact GELU -> dropout -> ``Linear(hidden -> c)`` -> dropout."""
  hidden: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    channels = x.shape[-1]
    x = nn.Dense(self.hidden, kernel_init=dense_init, name="fc1")(x)
    x = nn.gelu(x, approximate=False)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(channels, kernel_init=dense_init, name="fc2")(x)
    return nn.Dropout(self.dropout, deterministic=not train)(x)


class SwinBlock(nn.Module):
  """Pre-norm Swin block on ``[batch, H*W, C]`` tokens of a ``resolution = (H, W)`` grid.

  ``x + attention(LN(x))`` then ``x + MLP(LN(x))``, each branch under drop-path.
  """
  resolution: tuple
  num_heads: int
  window_size: int
  shift_size: int = 0
  mlp_ratio: float = 4.0
  qkv_bias: bool = True
  dropout: float = 0.0
  attention_dropout: float = 0.0
  drop_path: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    height, width = self.resolution
    window, shift = effective_window(self.resolution, self.window_size, self.shift_size)
    batch, _, channels = x.shape
    drop_path = DropPath(self.drop_path)

    y = layer_norm("norm1")(x).reshape(batch, height, width, channels)
    if shift:
      y = jnp.roll(y, (-shift, -shift), axis=(1, 2))
    mask = shifted_window_mask(height, width, window, shift) if shift else None
    y = WindowAttention(self.num_heads, window, self.qkv_bias, self.attention_dropout,
                        self.dropout, name="attn")(partition_windows(y, window), mask, train=train)
    y = merge_windows(y, height, width)
    if shift:
      y = jnp.roll(y, (shift, shift), axis=(1, 2))
    x = x + drop_path(y.reshape(x.shape), train=train)

    y = Mlp(int(channels * self.mlp_ratio), self.dropout, name="mlp")(
        layer_norm("norm2")(x), train=train)
    return x + drop_path(y, train=train)


class PatchMerging(nn.Module):
  """``[batch, H*W, C]`` -> ``[batch, H/2 * W/2, 2C]``: 2x2 neighbours concatenated, LN, linear.

  The concatenation order is upstream's: (even row, even col), (odd row, even col),
  (even row, odd col), (odd row, odd col). The projection has no bias.
  """
  resolution: tuple

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    height, width = self.resolution
    batch, _, channels = x.shape
    x = x.reshape(batch, height, width, channels)
    x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                        axis=-1)
    x = x.reshape(batch, -1, 4 * channels)
    x = layer_norm("norm")(x)
    return nn.Dense(2 * channels, use_bias=False, kernel_init=dense_init, name="reduction")(x)


class SwinStage(nn.Module):
  """``depth`` blocks (even ones unshifted, odd ones shifted by half a window), then optional merging.

  Attributes:
    drop_path: the drop-path rate of each block (``depth`` values).
  """
  resolution: tuple
  depth: int
  num_heads: int
  window_size: int
  mlp_ratio: float = 4.0
  qkv_bias: bool = True
  dropout: float = 0.0
  attention_dropout: float = 0.0
  drop_path: tuple = ()
  downsample: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for index in range(self.depth):
      x = SwinBlock(
          resolution=self.resolution, num_heads=self.num_heads, window_size=self.window_size,
          shift_size=0 if index % 2 == 0 else self.window_size // 2, mlp_ratio=self.mlp_ratio,
          qkv_bias=self.qkv_bias, dropout=self.dropout, attention_dropout=self.attention_dropout,
          drop_path=self.drop_path[index] if self.drop_path else 0.0,
          name=f"blocks_{index}")(x, train=train)
    if self.downsample:
      x = PatchMerging(self.resolution, name="downsample")(x)
    return x
