"""Building blocks shared by the CNN families (CNN10, TFNet, PANNs CNN10).

Layout. The CNNs here run on ``[batch, mel, time, channels]`` maps: time on the inner (width) axis.
Upstream PyTorch holds ``(batch, channels, time, mel)``; on XLA:CPU the time-inner layout ran the
CNN10 stack 21-27% faster (docs/PERFORMANCE.md). Every kernel is square and every pooling window is
2x2, so the layout changes nothing but the order of a kernel's two spatial axes, which the converter
swaps once (``jaxnoise.convert.cnn``). Intermediates are sown back in the upstream orientation,
``[batch, time, mel, channels]``, so that they compare directly with PyTorch outputs.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

# PyTorch BatchNorm defaults: eps 1e-5 and momentum 0.1 on the NEW value, i.e. a Flax-style
# momentum of 0.9 on the running value.
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.9


class BatchNorm(nn.Module):
  """BatchNorm over the last axis, exactly as PyTorch's ``BatchNorm{1,2}d``.

  Variables carry Flax's names (params 'scale', 'bias'; batch_stats 'mean', 'var'). In training the
  batch statistics normalise the input and the running variance is updated with the UNBIASED batch
  variance (PyTorch's rule; ``flax.linen.BatchNorm`` uses the biased one).

  Attributes:
    momentum: weight of the old running value in the update.
    epsilon: added to the variance.
  """
  momentum: float = BATCH_NORM_MOMENTUM
  epsilon: float = BATCH_NORM_EPSILON

  @nn.compact
  def __call__(self, inputs: jax.Array, *, use_running_average: bool) -> jax.Array:
    features = inputs.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    if use_running_average:
      mean, var = running_mean.value, running_var.value
    else:
      reduce_axes = tuple(range(inputs.ndim - 1))
      mean = jnp.mean(inputs, axis=reduce_axes)
      var = jnp.mean(jnp.square(inputs - mean), axis=reduce_axes)
      if not self.is_initializing():
        count = inputs.size // features
        unbiased_var = var * (count / max(count - 1, 1))
        running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
        running_var.value = self.momentum * running_var.value + (1 - self.momentum) * unbiased_var
    return (inputs - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias


def _convolve_same(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
  """``[batch, height, width, in]`` * ``[3, 3, in, out]`` -> ``[batch, height, width, out]``."""
  return jax.lax.conv_general_dilated(inputs, kernel, (1, 1), ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


# Inputs this narrow (CNN10's first block: 1 and 64 channels) give each tap's product an output only
# `in` columns wide; the nine shifted views side by side, one [pixels, 9 x in] matrix per clip, make
# one product nine times as wide, which ran 1.3x (64 channels) and 1.7x (1 channel) faster than
# nine products. Wider inputs ran 1.1x faster as nine products (CNN10's layers, batch 32).
STACKED_VIEWS_MAX_COLUMNS = 9 * 64


def clip_groups(batch: int) -> int:
  """How many devices a batch of ``batch`` clips is split over: the size of the mesh the caller
  traces under (``jax.sharding.use_abstract_mesh``, as the training step does), 1 without one or
  where it does not divide the batch."""
  mesh = jax.sharding.get_abstract_mesh()
  size = 1 if mesh.empty else mesh.size
  return size if batch % size == 0 else 1


def kernel_gradient_by_shifts(inputs: jax.Array, output_gradient: jax.Array) -> jax.Array:
  """The kernel gradient of ``_convolve_same`` as shifted matrix products per clip.

  ``inputs`` ``[batch, height, width, in]``, ``output_gradient`` ``[batch, height, width, out]``
  -> ``[3, 3, in, out]``. XLA:CPU computes this gradient as a convolution whose window is the whole
  map, and on CNN10's larger maps it ran at a tenth to a third of the forward convolution's FLOP/s
  (``benchmarks/conv_gradients.py``). Here tap (i, j) is the sum over clips of
  ``gradient^T @ input[shifted by (i, j)]``, one clip per step of a loop: a clip's shifted views
  stay in cache, and each product ``[out, height x width] @ [height x width, in]`` is one the
  matrix kernels run well (a single product over all clips contracts hundreds of thousands of rows
  into a 64 x 64 block, which they do not split across threads). The gradient is the left operand,
  transposed once per clip into a matrix of its own: with the shifted input on the left, XLA copied
  each of the nine shifted views into a transposed copy (as slow as the products), and with the
  transpose fused into the product the product ran 1.2x slower. Narrow inputs stack their nine
  views into one product (``STACKED_VIEWS_MAX_COLUMNS``). Sums are float32 whatever the inputs'
  dtype (bfloat16 mode), as XLA's own gradient accumulates.

  Under a mesh of several devices (``clip_groups``) the loop runs over ``[batch / devices,
  devices]`` and keeps one sum per device, added after the loop: a loop over the sharded batch axis
  itself made the partitioner gather every clip onto every device, and each device computed the
  whole batch's gradient.
  """
  batch, height, width, in_channels = inputs.shape
  out_channels = output_gradient.shape[-1]
  groups = clip_groups(batch)
  padded = jnp.pad(inputs, ((0, 0), (1, 1), (1, 1), (0, 0)))
  # [steps, groups, ...]: group g holds clips g * steps ... (g + 1) * steps - 1, a device's own.
  padded = jnp.swapaxes(padded.reshape((groups, batch // groups) + padded.shape[1:]), 0, 1)
  gradient = output_gradient.reshape(groups, batch // groups, height * width, out_channels)
  gradient = jnp.swapaxes(gradient, 0, 1)

  def add_clip(taps, clip):
    padded_clip, clip_gradient = clip  # [groups, height + 2, width + 2, in], [groups, pixels, out]
    views = [padded_clip[:, row:row + height, column:column + width].reshape(
        groups, -1, in_channels) for row in range(3) for column in range(3)]
    gradient_rows = jnp.swapaxes(clip_gradient, 1, 2)  # [groups, out, pixels]
    if 9 * in_channels <= STACKED_VIEWS_MAX_COLUMNS:
      stacked = jnp.einsum("gop,gpi->goi", gradient_rows, jnp.concatenate(views, axis=-1),
                           preferred_element_type=jnp.float32)  # [groups, out, 9 x in]
      stacked = stacked.reshape(groups, out_channels, 9, in_channels)
      return taps + stacked.transpose(0, 2, 1, 3), None
    gradient_rows = jax.lax.optimization_barrier(gradient_rows)  # a matrix, not a fused transpose
    return taps + jnp.stack([jnp.einsum("gop,gpi->goi", gradient_rows, view,
                                        preferred_element_type=jnp.float32)
                             for view in views], axis=1), None

  taps, _ = jax.lax.scan(add_clip, jnp.zeros((groups, 9, out_channels, in_channels), jnp.float32),
                         (padded, gradient))
  return jnp.swapaxes(jnp.sum(taps, axis=0), 1, 2).reshape(3, 3, in_channels, out_channels)


@jax.custom_vjp
def convolve_same_3x3(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
  """3x3 convolution, stride 1, zero padding 1: ``[batch, height, width, in]`` * ``[3, 3, in, out]``
  -> ``[batch, height, width, out]``.

  The forward pass and the input gradient are XLA's; the kernel gradient is
  ``kernel_gradient_by_shifts`` on maps of at least ``SHIFTED_KERNEL_GRADIENT_MIN_AREA`` pixels.
  """
  return _convolve_same(inputs, kernel)


# Below this map area (height x width) XLA's own kernel gradient was as fast or faster: on CNN10's
# block 4 (5 x 31, batch 32) XLA 179 GFLOP/s, the shifted products 151; on blocks 1-3 (40 x 250,
# 20 x 125, 10 x 62) XLA 17, 61 and 72, the shifted products 62, 162 and 206
# (benchmarks/conv_gradients.py, 2026-12-02; on an earlier machine XLA's led on block 3 as well).
SHIFTED_KERNEL_GRADIENT_MIN_AREA = 500


def _convolve_same_forward(inputs, kernel):
  return _convolve_same(inputs, kernel), (inputs, kernel)


def _convolve_same_backward(residuals, output_gradient):
  inputs, kernel = residuals
  _, input_vjp = jax.vjp(lambda x: _convolve_same(x, kernel), inputs)
  (input_gradient,) = input_vjp(output_gradient)
  if inputs.shape[1] * inputs.shape[2] >= SHIFTED_KERNEL_GRADIENT_MIN_AREA:
    kernel_gradient = kernel_gradient_by_shifts(inputs, output_gradient)
  else:
    _, kernel_vjp = jax.vjp(lambda k: _convolve_same(inputs, k), kernel)
    (kernel_gradient,) = kernel_vjp(output_gradient)
  return input_gradient, kernel_gradient.astype(kernel.dtype)


convolve_same_3x3.defvjp(_convolve_same_forward, _convolve_same_backward)


class Conv3x3(nn.Module):
  """3x3 convolution, stride 1, zero padding 1 on both axes, no bias (the CNNs' only 3x3 conv).

  The parameter is ``nn.Conv``'s (``kernel``, ``[3, 3, in, out]``); only the kernel gradient is
  computed differently (``convolve_same_3x3``).
  """
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features), jnp.float32)
    x, kernel = nn.dtypes.promote_dtype(x, kernel)
    return convolve_same_3x3(x, kernel)


def conv3x3(features: int, name: str) -> nn.Module:
  """3x3 convolution, stride 1, zero padding 1 on both axes, no bias (the CNNs' only 3x3 conv)."""
  return Conv3x3(features, name=name)


def avg_pool_2x2(x: jax.Array) -> jax.Array:
  """PyTorch ``avg_pool2d(kernel_size=2)``: stride 2, odd sizes drop their last row (floor)."""
  return nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")


class ConvBlock(nn.Module):
  """PANNs/TFNet-repo ``ConvBlock``: (conv3x3 -> BatchNorm -> ReLU) x 2 -> 2x2 average pooling.

  ``[batch, mel, time, in]`` -> ``[batch, mel // 2, time // 2, features]``.
  """
  features: int

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    for index in (1, 2):
      x = conv3x3(self.features, name=f"conv{index}")(x)
      x = BatchNorm(name=f"bn{index}")(x, use_running_average=not train)
      x = nn.relu(x)
    return avg_pool_2x2(x)


def to_mel_time(features: jax.Array) -> jax.Array:
  """Frontend output ``[batch, time, mel]`` -> network layout ``[batch, mel, time, 1]``."""
  return jnp.swapaxes(features, 1, 2)[..., None]


def sow_time_mel(module: nn.Module, name: str, x: jax.Array) -> None:
  """Sows a ``[batch, mel, time, ...]`` map as ``[batch, time, mel, ...]`` into 'intermediates'.

  The transpose is only built when the caller asked for intermediates.
  """
  if module.is_mutable_collection("intermediates"):
    module.sow("intermediates", name, jnp.swapaxes(x, 1, 2))


def global_pool(x: jax.Array, *, mean_over_time: bool) -> jax.Array:
  """``[batch, mel, time, channels]`` -> ``[batch, channels]``: mean over mel, then max over time.

  With ``mean_over_time`` the mean over time is added to the max (PANNs); the TFNet repo's CNN10
  and TFNet use the max alone.
  """
  x = jnp.mean(x, axis=1)
  pooled = jnp.max(x, axis=1)
  if mean_over_time:
    pooled = pooled + jnp.mean(x, axis=1)
  return pooled
