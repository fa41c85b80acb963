"""EfficientAT's MobileNetV3 audio tagger ("mn": mn01 ... mn40, mn40_as_ext) in Flax.

The network EfficientAT builds with ``get_model(width_mult=w, head_type='mlp')``:
MobileNetV3-Large's block table with every channel count scaled by ``w`` and rounded to a multiple
of 8, squeeze-and-excitation gated by a logistic sigmoid (not torchvision's hard sigmoid), BatchNorm
with eps 1e-3, global average pooling and a two-layer MLP head. Upstream's released models differ
only in width: mn01 0.1, mn02 0.2, mn04 0.4, mn05 0.5, mn10 1.0, mn20 2.0, mn30 3.0, mn40(_ext) 4.0.

Layout: the frontend's ``[batch, frames, 128]`` log-mel becomes NHWC ``[batch, mels, frames, 1]``,
i.e. upstream's NCHW with H = mel bins and W = time. Every ``features.i`` output of upstream is sown
into the 'intermediates' collection as ``features_i_output`` ``[batch, mels', frames', channels]``.

Speed on XLA:CPU: depthwise convolutions through ``lax.conv_general_dilated`` with
``feature_group_count`` run 7-10x slower than PyTorch there, so by default a k x k depthwise
convolution is the sum of k^2 shifted, per-channel-scaled views of the padded input and a 1x1
convolution is a matmul (see ../shared/docs/PERFORMANCE.md). Parameters keep Flax's standard layout
either way (depthwise kernel ``(k, k, 1, channels)``), and ``conv_algorithm='feature_group_count'``
computes the same function with ``lax.conv_general_dilated``, the reference the tests compare to.
"""
import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.audio import frontends
from jaxnoise.data import labels as label_sets
from jaxnoise.errors import ConfigError
from jaxnoise.models import layers
from jaxnoise.models.cnn10 import head_labels
from jaxnoise.models.spec import ModelSpec

DEFAULT_CONFIG = {
    # mn40_as_ext, the study's model; the converter infers width and class count from a checkpoint.
    "width": 4.0,
    "num_classes": 527,
    "head_type": "mlp",
    "dropout_rate": 0.2,
    # 'shifted' (fast on CPU, the default) or 'feature_group_count' (lax.conv reference).
    "conv_algorithm": "shifted",
    # Class names of the head in output order; None: AudioSet's for 527 classes, else class_0 ...
    "labels": None,
}
CONV_ALGORITHMS = ("shifted", "feature_group_count")
HEAD_TYPES = ("mlp",)

SAMPLE_RATE = 32000
# EfficientAT's ESC-50 fine-tuning pads or cuts every clip to 5 s; AudioSet training used 10 s, but
# the network accepts any length and the study's clips are ESC-50's 5 s.
CLIP_SECONDS = 5.0
# The eval-mode mel band of the frontend (fmin 0, fmax 15 kHz), in which the study measures SNR.
BAND = (0.0, 15000.0)

# MobileNetV3-Large at width 1.0 as EfficientAT keeps it, one row per inverted-residual block:
# (kernel, expanded channels, output channels, squeeze-excitation, activation, stride).
BLOCK_TABLE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hard_swish", 2),
    (3, 200, 80, False, "hard_swish", 1),
    (3, 184, 80, False, "hard_swish", 1),
    (3, 184, 80, False, "hard_swish", 1),
    (3, 480, 112, True, "hard_swish", 1),
    (3, 672, 112, True, "hard_swish", 1),
    (5, 672, 160, True, "hard_swish", 2),
    (5, 960, 160, True, "hard_swish", 1),
    (5, 960, 160, True, "hard_swish", 1),
)
STEM_CHANNELS = 16
STEM_KERNEL = 3
STEM_STRIDE = 2
LAST_CONV_EXPANSION = 6
HEAD_HIDDEN_CHANNELS = 1280
SQUEEZE_REDUCTION = 4
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.99  # PyTorch's momentum 0.01: Flax keeps 0.99 of the old running stats.

ACTIVATIONS = {"relu": nn.relu, "hard_swish": jax.nn.hard_swish}


def round_channels(channels: float, divisor: int = 8) -> int:
  """EfficientAT's ``make_divisible``: the nearest multiple of 8 (at least 8), bumped by 8 if that
  lands more than 10% below ``channels``."""
  rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * channels:
    rounded += divisor
  return rounded


@dataclasses.dataclass(frozen=True)
class BlockConfig:
  """One inverted-residual block at a given width (channel counts already rounded)."""
  in_channels: int
  kernel: int
  expanded_channels: int
  out_channels: int
  squeeze_channels: int  # 0: no squeeze-and-excitation
  activation: str
  stride: int

  @property
  def has_expand(self) -> bool:
    # Upstream omits the expanding 1x1 conv when it would not change the width (features.1).
    return self.expanded_channels != self.in_channels

  @property
  def residual(self) -> bool:
    return self.stride == 1 and self.in_channels == self.out_channels


@dataclasses.dataclass(frozen=True)
class Architecture:
  """Every channel count of the network at one width."""
  stem_channels: int
  blocks: tuple
  last_conv_channels: int
  hidden_channels: int


def architecture(width: float) -> Architecture:
  """The channel plan EfficientAT derives from ``width_mult``."""
  blocks = []
  in_channels = round_channels(STEM_CHANNELS * width)
  for kernel, expanded, out, use_squeeze, activation, stride in BLOCK_TABLE:
    expanded_channels = round_channels(expanded * width)
    squeeze = round_channels(expanded_channels // SQUEEZE_REDUCTION) if use_squeeze else 0
    blocks.append(BlockConfig(in_channels, kernel, expanded_channels, round_channels(out * width),
                              squeeze, activation, stride))
    in_channels = blocks[-1].out_channels
  return Architecture(stem_channels=blocks[0].in_channels, blocks=tuple(blocks),
                      last_conv_channels=LAST_CONV_EXPANSION * in_channels,
                      hidden_channels=round_channels(HEAD_HIDDEN_CHANNELS * width))


# --- Convolutions ------------------------------------------------------------------------------
def output_size(size: int, kernel: int, stride: int) -> int:
  """PyTorch's output length with symmetric padding (k-1)//2: ``floor((n + 2p - k) / s) + 1``."""
  padding = (kernel - 1) // 2
  return (size + 2 * padding - kernel) // stride + 1


def lax_conv(inputs: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """Reference convolution: ``[batch, h, w, in]`` with a Flax ``(k, k, in/groups, out)`` kernel.

  Padding is PyTorch's symmetric (k-1)//2 on both sides, not 'SAME' (which pads (0, 1) / (1, 2) for
  stride 2 on even sizes and shifts the sampling grid). Groups follow from the kernel's input axis,
  so a ``(k, k, 1, channels)`` kernel is depthwise via ``feature_group_count``.
  """
  padding = (kernel.shape[0] - 1) // 2
  return jax.lax.conv_general_dilated(
      inputs, kernel, window_strides=(stride, stride), padding=((padding, padding),) * 2,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=inputs.shape[-1] // kernel.shape[2])


def tap_views(source: jax.Array, size: int, out_height: int, out_width: int, stride: int):
  """``(row, column, view)`` for each tap of a ``size`` x ``size`` kernel: ``view[b, i, j, ch] =
  source[b, row + stride*i, column + stride*j, ch]``, ``[batch, out_height, out_width, channels]``.
  """
  batch, channels = source.shape[0], source.shape[-1]
  for row in range(size):
    for column in range(size):
      yield row, column, jax.lax.slice(
          source, (0, row, column, 0),
          (batch, row + stride * (out_height - 1) + 1, column + stride * (out_width - 1) + 1,
           channels),
          (1, stride, stride, 1))


def tap_sum(source: jax.Array, kernel: jax.Array, out_height: int, out_width: int,
            stride: int) -> jax.Array:
  """The sum over taps (r, c) of ``tap_views``' view times ``kernel[r, c, 0]``.

  Args:
    source: ``[batch, height, width, channels]``, already padded (no padding is added here).
    kernel: ``(k, k, 1, out_channels)``; channels is 1 or out_channels.

  Returns:
    ``[batch, out_height, out_width, out_channels]``: XLA fuses the k^2 strided views into one
    elementwise loop.
  """
  total = None
  for row, column, view in tap_views(source, kernel.shape[0], out_height, out_width, stride):
    term = view * kernel[row, column, 0]
    total = term if total is None else total + term
  return total


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def shifted_products_conv(inputs: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """A k x k convolution in which each output channel reads a single input channel.

  That covers depthwise convolutions (``in == out`` channels, kernel ``(k, k, 1, channels)``) and
  the stem (one input channel, kernel ``(k, k, 1, out)``). The result is the sum over the k^2 taps
  of the strided view of the padded input at that tap's offset, scaled per channel: XLA fuses it
  into one elementwise loop, far faster on CPU than a grouped convolution. Its gradient
  (``_shifted_products_backward``) is written out too: XLA's own transpose of the strided views
  ran a 3x3 layer's backward pass 2-3x slower, and mn04's whole training step ~14% slower.

  Args:
    inputs: ``[batch, height, width, channels]`` with channels equal to 1 or to the kernel's output.
    kernel: ``(k, k, 1, out_channels)``.
    stride: the same along both axes.

  Returns:
    ``[batch, output_size(height), output_size(width), out_channels]``.
  """
  size = kernel.shape[0]
  padding = (size - 1) // 2
  _, height, width, _ = inputs.shape
  padded = jnp.pad(inputs, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  return tap_sum(padded, kernel, output_size(height, size, stride),
                 output_size(width, size, stride), stride)


def _shifted_products_forward(inputs, kernel, stride):
  return shifted_products_conv(inputs, kernel, stride), (inputs, kernel)


def kernel_gradient_taps(inputs: jax.Array, grad: jax.Array, size: int, stride: int) -> jax.Array:
  """``[batch, k*k, channels]``: per clip, the sum over positions of each tap's view of the padded
  ``inputs [batch, height, width, channels]`` times ``grad [batch, oh, ow, channels]``.

  All taps come from one variadic reduction, a single pass over the data: XLA:CPU hands a plain sum
  to a library kernel that cannot fuse the strided view, so each tap's view was first written out
  whole, k^2 extra passes over the layer's largest tensor.
  """
  padding = (size - 1) // 2
  padded = jnp.pad(inputs, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  products = tuple(view * grad for _, _, view in
                   tap_views(padded, size, grad.shape[1], grad.shape[2], stride))
  zeros = (jnp.zeros((), grad.dtype),) * len(products)
  sums = jax.lax.reduce(products, zeros, lambda totals, terms: tuple(
      total + term for total, term in zip(totals, terms)), (1, 2))
  return jnp.stack(sums, axis=1)


def _shifted_products_backward(stride, residuals, grad):
  """Gradients of ``shifted_products_conv`` for the output gradient ``grad [batch, oh, ow, out]``.

  The input's gradient is the transposed convolution: ``grad`` spread onto the stride's grid
  (``lax.pad`` with interior zeros), padded by ``k - 1 - padding`` in front, and summed over the
  taps of the flipped kernel, one fused loop as the forward pass. The kernel's gradient at tap
  (r, c) is the sum over batch and positions of that tap's view of the padded input times ``grad``
  (``kernel_gradient_taps``), a few clips at a time on CPU so that they stay in cache: with that
  and the 2-D 1x1 products, mn04's training step went from 0.70 to 0.99-1.28 steps/s
  (benchmarks/train.py, separate runs).
  """
  inputs, kernel = residuals
  size = kernel.shape[0]
  padding = (size - 1) // 2
  _, height, width, channels = inputs.shape
  out_height, out_width = grad.shape[1], grad.shape[2]
  front = size - 1 - padding
  spread = jax.lax.pad(grad, jnp.zeros((), grad.dtype), [
      (0, 0, 0),
      (front, height + padding - stride * (out_height - 1) - 1, stride - 1),
      (front, width + padding - stride * (out_width - 1) - 1, stride - 1),
      (0, 0, 0)])
  input_grad = tap_sum(spread, kernel[::-1, ::-1], height, width, 1)
  if channels != grad.shape[-1]:  # the stem: every output channel read the one input channel
    input_grad = input_grad.sum(axis=-1, keepdims=True)
  # The barrier keeps XLA from merging the views below with the forward pass's identical ones:
  # merged, every view became a tensor of its own and the forward pass no longer fused.
  per_clip = frontends.map_over_clips(
      functools.partial(kernel_gradient_taps, size=size, stride=stride),
      jax.lax.optimization_barrier(inputs), grad)
  taps = per_clip.sum(axis=0)
  return input_grad, taps.reshape(kernel.shape).astype(kernel.dtype)


shifted_products_conv.defvjp(_shifted_products_forward, _shifted_products_backward)


class Conv(nn.Module):
  """Bias-free convolution with PyTorch padding; kernel in Flax's ``(k, k, in/groups, out)`` layout.

  Attributes:
    features: output channels.
    kernel_size: k of the square kernel.
    stride: the same along both axes.
    depthwise: one group per channel (``groups = in = out`` upstream).
    algorithm: 'shifted' (1x1 as a matmul, single-input-channel k x k as shifted products) or
      'feature_group_count' (``lax.conv_general_dilated`` throughout).
  """
  features: int
  kernel_size: int
  stride: int = 1
  depthwise: bool = False
  algorithm: str = "shifted"

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    in_channels = inputs.shape[-1]
    kernel_inputs = 1 if self.depthwise else in_channels
    # Upstream's kaiming_normal_(mode='fan_out'): variance 2 / (out * k * k).
    kernel = self.param("kernel", nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                        (self.kernel_size, self.kernel_size, kernel_inputs, self.features))
    if self.algorithm == "feature_group_count":
      return lax_conv(inputs, kernel, self.stride)
    if self.kernel_size == 1 and self.stride == 1:
      flat = inputs.reshape(-1, in_channels) @ kernel[0, 0]
      return flat.reshape(*inputs.shape[:-1], self.features)
    if kernel_inputs == 1:
      return shifted_products_conv(inputs, kernel, self.stride)
    return lax_conv(inputs, kernel, self.stride)


class ConvNormActivation(nn.Module):
  """Conv, BatchNorm (eps 1e-3, PyTorch momentum 0.01, PyTorch's unbiased running variance),
  optional activation: upstream's ``ConvNormActivation`` (``.0`` conv, ``.1`` norm)."""
  features: int
  kernel_size: int
  stride: int = 1
  depthwise: bool = False
  activation: str | None = None
  algorithm: str = "shifted"

  @nn.compact
  def __call__(self, inputs: jax.Array, train: bool) -> jax.Array:
    outputs = Conv(self.features, self.kernel_size, self.stride, self.depthwise, self.algorithm,
                   name="conv")(inputs)
    outputs = layers.BatchNorm(momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON,
                               name="norm")(outputs, use_running_average=not train)
    return outputs if self.activation is None else ACTIVATIONS[self.activation](outputs)


def linear_init():
  # Upstream initialises every Linear with N(0, 0.01^2) and a zero bias.
  return nn.initializers.normal(stddev=0.01)


class SqueezeExcitation(nn.Module):
  """Channel squeeze-and-excitation: mean over (freq, time), fc1 + ReLU, fc2 + logistic sigmoid,
  then a per-channel gate. (Upstream's 'concurrent SE' wrapper takes a max over this single
  branch, an identity.)"""
  squeeze_channels: int

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    scale = jnp.mean(inputs, axis=(1, 2))
    scale = nn.relu(nn.Dense(self.squeeze_channels, kernel_init=linear_init(), name="fc1")(scale))
    scale = nn.sigmoid(nn.Dense(inputs.shape[-1], kernel_init=linear_init(), name="fc2")(scale))
    return inputs * scale[:, None, None, :]


class InvertedResidual(nn.Module):
  """Expand 1x1 (if it changes the width), depthwise k x k, optional SE, linear project 1x1, and a
  residual add when stride is 1 and the width is kept."""
  config: BlockConfig
  algorithm: str = "shifted"

  @nn.compact
  def __call__(self, inputs: jax.Array, train: bool) -> jax.Array:
    block = self.config
    outputs = inputs
    if block.has_expand:
      outputs = ConvNormActivation(block.expanded_channels, 1, activation=block.activation,
                                   algorithm=self.algorithm, name="expand")(outputs, train)
    outputs = ConvNormActivation(block.expanded_channels, block.kernel, block.stride,
                                 depthwise=True, activation=block.activation,
                                 algorithm=self.algorithm, name="depthwise")(outputs, train)
    if block.squeeze_channels:
      outputs = SqueezeExcitation(block.squeeze_channels, name="squeeze_excitation")(outputs)
    outputs = ConvNormActivation(block.out_channels, 1, algorithm=self.algorithm,
                                 name="project")(outputs, train)
    return inputs + outputs if block.residual else outputs


class MobileNet(nn.Module):
  """EfficientAT ``MN`` with the 'mlp' head.

  Attributes:
    width: EfficientAT's ``width_mult`` (0.1 ... 4.0 released).
    num_classes: output classes of the head.
    dropout_rate: dropout before the last Linear (active only with ``train=True``, rng 'dropout').
    conv_algorithm: 'shifted' or 'feature_group_count' (see ``Conv``); same function, same params.
  """
  width: float
  num_classes: int
  dropout_rate: float = 0.2
  conv_algorithm: str = "shifted"

  @nn.compact
  def __call__(self, features: jax.Array, train: bool = False) -> dict:
    """Log-mel ``[batch, frames, mels]`` -> {'logits': [batch, classes], 'embedding': [batch, C]}.

    ``embedding`` is upstream's second output: the global average of the last conv's output, which
    the head pools the same way.
    """
    plan = architecture(self.width)
    inputs = layers.to_mel_time(features)
    outputs = ConvNormActivation(plan.stem_channels, STEM_KERNEL, STEM_STRIDE,
                                 activation="hard_swish", algorithm=self.conv_algorithm,
                                 name="features_0")(inputs, train)
    self.sow("intermediates", "features_0_output", outputs)
    for index, block in enumerate(plan.blocks, start=1):
      outputs = InvertedResidual(block, self.conv_algorithm, name=f"features_{index}")(outputs,
                                                                                      train)
      self.sow("intermediates", f"features_{index}_output", outputs)
    last = len(plan.blocks) + 1
    outputs = ConvNormActivation(plan.last_conv_channels, 1, activation="hard_swish",
                                 algorithm=self.conv_algorithm, name=f"features_{last}")(outputs,
                                                                                         train)
    self.sow("intermediates", f"features_{last}_output", outputs)
    embedding = jnp.mean(outputs, axis=(1, 2))
    hidden = nn.Dense(plan.hidden_channels, kernel_init=linear_init(),
                      name="classifier_hidden")(embedding)
    hidden = nn.Dropout(self.dropout_rate, deterministic=not train)(jax.nn.hard_swish(hidden))
    logits = nn.Dense(self.num_classes, kernel_init=linear_init(),
                      name="classifier_output")(hidden)
    return {"logits": logits, "embedding": embedding}


def random_variables(spec: ModelSpec, seed: int = 0) -> dict:
  """Random variables of ``spec``'s shapes drawn in numpy, for tests and benchmarks.

  Compiling ``network.init`` (a hundred threefry draws) takes up to half a minute on a 2-core CPU;
  shapes from ``eval_shape`` and numpy draws take milliseconds. Kernels get He-scaled normals,
  BatchNorm random running statistics (so eval-mode normalisation is not the identity) and scales
  below 1, which keep activations O(1) through the residual stack.
  """
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(spec.init, jax.random.key(0))

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "'var'" in name:
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    if "'scale'" in name:
      return rng.uniform(0.2, 0.6, leaf.shape).astype(np.float32)
    if "'mean'" in name or "'bias'" in name:
      return rng.normal(0.0, 0.1, leaf.shape).astype(np.float32)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


# --- Spec ------------------------------------------------------------------------------------
def validate_config(config: dict) -> dict:
  """``config`` with types normalised; a ConfigError names the bad key and value."""
  config = dict(config)
  width = config["width"]
  if isinstance(width, bool) or not isinstance(width, (int, float)) or not (
      math.isfinite(width) and width > 0):
    raise ConfigError(f"mn config 'width' must be a positive number (0.1 ... 4.0 released), "
                      f"got {width!r}")
  config["width"] = float(width)
  if config["head_type"] not in HEAD_TYPES:
    raise ConfigError(f"mn config 'head_type' {config['head_type']!r} is not supported; expected "
                      f"one of {HEAD_TYPES} (the head of every released mn checkpoint)")
  rate = config["dropout_rate"]
  if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
    raise ConfigError(f"mn config 'dropout_rate' must be in [0, 1), got {rate!r}")
  if config["conv_algorithm"] not in CONV_ALGORITHMS:
    raise ConfigError(f"mn config 'conv_algorithm' must be one of {CONV_ALGORITHMS}, got "
                      f"{config['conv_algorithm']!r}")
  return config


def build_spec(config: dict) -> ModelSpec:
  """The spec of an mn model; 527-class heads are AudioSet taggers (sigmoid, AudioSet names)."""
  config = validate_config(config)
  audioset = config["num_classes"] == label_sets.AUDIOSET_NUM_CLASSES
  labels = head_labels(config, "mn", label_sets.audioset_labels() if audioset else None)
  network = MobileNet(width=config["width"], num_classes=config["num_classes"],
                      dropout_rate=config["dropout_rate"],
                      conv_algorithm=config["conv_algorithm"])
  return ModelSpec(
      arch="mn", config=config, sample_rate=SAMPLE_RATE, clip_seconds=CLIP_SECONDS, band=BAND,
      frontend=frontends.efficientat_logmel, network=network,
      output_activation="sigmoid" if audioset else "softmax", labels=labels)
