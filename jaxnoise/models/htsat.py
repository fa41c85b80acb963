"""HTS-AT, the Hierarchical Token-Semantic Audio Transformer (RetroCirce/HTS-Audio-Transformer), in Flax.

Waveform at 32 kHz -> torchlibrosa log-mel (64 mels, 50-14000 Hz) -> BatchNorm over the mel bins
(``bn0``) -> [training: SpecAugment stripes] -> the spectrogram reshaped into a 256 x 256 "image"
-> 4x4 patch embedding -> four Swin stages (``swin.py``) -> token-semantic head: a (2, 3) convolution
over the final token grid gives a class map over 32 time steps, whose mean is the clip's logits.

The image. The model's window is 1024 frames (``spec_size * freq_ratio``, freq_ratio = 256 / 64 = 4).
Shorter spectrograms are stretched along time to 1024 frames with PyTorch's bicubic resize
(``align_corners=True``, cubic coefficient -0.75, borders clamped; ``jax.image.resize`` uses -0.5 and
half-pixel centres, so the kernel is written out here as a host-built matrix). The 1024 x 64 map is
then folded into 4 chunks of 256 frames stacked along the image rows: ``image[k*64 + f, c] =
spec[k*256 + c, f]``.

Clip length. Upstream's ESC-50 pipeline concatenates each 5-s clip with itself to fill the 10-s
window the model was trained on (1001 frames, then stretched to 1024). Here the spec's frontend does
that for every clip: anything shorter than 10 s is repeated (and cut) to exactly 10 s, so clips are
loaded and mixed with noise at their own length (``clip_seconds``, 5 s by default as for every model
of the study; set 10 for AudioSet clips) and the model sees the repeated clip. With
``short_clip_repeat='spectrogram'`` the frontend leaves the clip alone and the network instead tiles
the spectrogram ``floor(1024 / frames)`` times, which is upstream's ``infer_mode`` (predict.py).
Clips longer than 1024 frames (10.24 s), where upstream's inference crashes, are classified by
overlapping 10-s windows (hop ``long_clip_hop_seconds``) whose scores are averaged; in training a
random 1024-frame crop is used, as upstream.

Outputs (a dict): 'logits' [batch, classes] (pre-activation clipwise values; the spec's
``output_activation`` - softmax for 'clip_ce' heads, sigmoid for 'clip_bce' heads - turns them into
scores), 'clipwise_output' [batch, classes] exactly as upstream returns it (the raw logits for
'clip_ce', their sigmoid for 'clip_bce'), 'framewise_output' [batch, 1024, classes] (sigmoid, each
of the 32 steps repeated 32 times; for long clips averaged onto the clip's own frames,
[batch, frames, classes]) and 'latent_output' [batch, 8 * embed_dim] (mean of the final tokens).

Upstream keeps an unused ``head`` Linear(classes, classes) beside the token-semantic head; it is not
part of this model (the converter skips it). With ``enable_tscam=False`` the head is a Linear on the
mean token, and upstream then always returns sigmoided clipwise scores.
"""
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.audio import frontends
from jaxnoise.data import labels
from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.models import layers, swin
from jaxnoise.models.cnn10 import head_labels
from jaxnoise.models.spec import ModelSpec

SAMPLE_RATE = 32000
HOP = 320
BAND = (50.0, 14000.0)
# The model's window: 10 s of audio, 1001 frames of the centred STFT.
WINDOW_SECONDS = 10.0
WINDOW_SAMPLES = int(WINDOW_SECONDS * SAMPLE_RATE)
WINDOW_FRAMES = 1 + WINDOW_SAMPLES // HOP
# PyTorch's bicubic kernel coefficient (Keys' a); not the -0.5 of jax.image.resize.
BICUBIC_A = -0.75

AUDIOSET_CLASSES = labels.AUDIOSET_NUM_CLASSES
LOSS_ACTIVATIONS = {"clip_ce": "softmax", "clip_bce": "sigmoid"}
SHORT_CLIP_MODES = ("waveform", "spectrogram")

DEFAULT_CONFIG = {
    # The published AudioSet model (config.py); ESC-50 fine-tuning sets num_classes (19 or 50).
    "num_classes": AUDIOSET_CLASSES,
    # Class names in output order; None: AudioSet names for a 527-class head, class_i otherwise.
    "labels": None,
    # 'clip_ce' (single-label, softmax scores) or 'clip_bce' (multi-label, sigmoid scores);
    # None: clip_bce for a 527-class AudioSet head, clip_ce otherwise (upstream's two configs).
    "loss_type": None,
    "embed_dim": 96,
    "depths": [2, 2, 6, 2],
    "num_heads": [4, 8, 16, 32],
    "window_size": 8,
    "patch_size": 4,
    "patch_stride": [4, 4],
    "spec_size": 256,
    "mel_bins": 64,
    "mlp_ratio": 4.0,
    "qkv_bias": True,
    "patch_norm": True,
    "enable_tscam": True,
    "drop_rate": 0.0,
    "attn_drop_rate": 0.0,
    "drop_path_rate": 0.1,
    # Upstream's training-time SpecAugment after bn0 (stripes zeroed, widths drawn below the max).
    "spec_augment": True,
    "time_stripes": 2,
    "time_stripe_width": 64,
    "freq_stripes": 2,
    "freq_stripe_width": 8,
    # How a clip shorter than 10 s fills the window: 'waveform' (repeat the audio, upstream's ESC-50
    # pipeline) or 'spectrogram' (tile the spectrogram, upstream's infer_mode).
    "short_clip_repeat": "waveform",
    # Hop between the overlapping 10-s windows of clips longer than 10.24 s.
    "long_clip_hop_seconds": 5.0,
    # Seconds of audio the loader pads or cuts clips to (see the module docstring).
    "clip_seconds": 5.0,
}


def cubic_weights(fraction: np.ndarray, a: float = BICUBIC_A):
  """Keys' cubic convolution weights of the 4 taps at offsets -1, 0, 1, 2 around ``floor(x)``."""
  def near(d):  # |d| <= 1
    return ((a + 2) * d - (a + 3)) * d * d + 1

  def far(d):  # 1 < |d| < 2
    return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

  return far(fraction + 1), near(fraction), near(1 - fraction), far(2 - fraction)


@functools.lru_cache(maxsize=64)
def bicubic_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
  """``[out_size, in_size]`` matrix of PyTorch ``interpolate(mode='bicubic', align_corners=True)``.

  Output sample i sits at input position ``i * (in - 1) / (out - 1)``; taps beyond the ends are
  clamped to the edge samples. Equal sizes give the identity.
  """
  matrix = np.zeros((out_size, in_size), np.float64)
  scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
  position = scale * np.arange(out_size)
  base = np.floor(position)
  for offset, weight in zip((-1, 0, 1, 2), cubic_weights(position - base)):
    taps = np.clip(base.astype(np.int64) + offset, 0, in_size - 1)
    np.add.at(matrix, (np.arange(out_size), taps), weight)
  matrix = matrix.astype(np.float32)
  matrix.setflags(write=False)
  return matrix


def long_clip_windows(frames: int, window: int, hop: int) -> np.ndarray:
  """Start frames of overlapping ``window``-frame windows covering ``frames``; the last ends at the end."""
  count = 1 + math.ceil((frames - window) / hop)
  return np.minimum(np.arange(count) * hop, frames - window)


def repeat_to_length(waveform: jax.Array, length: int) -> jax.Array:
  """``[batch, samples]`` repeated end to end and cut to ``length`` samples if shorter; else unchanged.

  A 5-s clip becomes the clip followed by itself, as upstream's ESC-50 dataset builds it.
  """
  samples = waveform.shape[-1]
  if samples >= length:
    return waveform
  if samples == 0:
    raise AudioError("cannot classify an empty waveform (0 samples): nothing to repeat to fill "
                     "HTS-AT's 10-s window")
  return jnp.tile(waveform, (1, -(-length // samples)))[:, :length]


def drop_stripes(rng: jax.Array, x: jax.Array, axis: int, stripes: int, max_width: int):
  """torchlibrosa ``DropStripes``: per example, ``stripes`` bands along ``axis`` set to zero.

  Each band has width ``randint(0, max_width)`` (the max itself is never drawn) and starts at
  ``randint(0, size - width)``.
  """
  batch, size = x.shape[0], x.shape[axis]
  width_key, start_key = jax.random.split(rng)
  widths = jax.random.randint(width_key, (batch, stripes), 0, max_width)
  starts = jax.random.randint(start_key, (batch, stripes), 0, size - widths)
  position = jnp.arange(size)
  inside = ((position >= starts[..., None]) & (position < (starts + widths)[..., None])).any(1)
  shape = [batch] + [1] * (x.ndim - 1)
  shape[axis] = size
  return jnp.where(inside.reshape(shape), 0.0, x)


def random_crops(rng: jax.Array, x: jax.Array, length: int) -> jax.Array:
  """A random ``length``-frame crop of each ``[time, mel]`` map (start in ``[0, T - length - 1]``)."""
  starts = jax.random.randint(rng, (x.shape[0],), 0, x.shape[1] - length)
  return jax.vmap(lambda item, start: jax.lax.dynamic_slice_in_dim(item, start, length))(x, starts)


class HTSAT(nn.Module):
  """``[batch, frames, mel_bins]`` log-mel (dB) -> dict of outputs (see the module docstring).

  Sown intermediates ('intermediates' collection): ``bn0_out`` [batch, frames, mel],
  ``image`` [batch, spec_size, spec_size], ``patch_embed_out`` [batch, tokens, embed_dim],
  ``stage{i}_out`` (after stage i and its patch merging) [batch, tokens_i, channels_i].
  """
  num_classes: int = AUDIOSET_CLASSES
  loss_type: str = "clip_bce"
  embed_dim: int = 96
  depths: tuple = (2, 2, 6, 2)
  num_heads: tuple = (4, 8, 16, 32)
  window_size: int = 8
  patch_size: int = 4
  patch_stride: tuple = (4, 4)
  spec_size: int = 256
  mel_bins: int = 64
  mlp_ratio: float = 4.0
  qkv_bias: bool = True
  patch_norm: bool = True
  enable_tscam: bool = True
  drop_rate: float = 0.0
  attn_drop_rate: float = 0.0
  drop_path_rate: float = 0.1
  spec_augment: bool = True
  time_stripes: int = 2
  time_stripe_width: int = 64
  freq_stripes: int = 2
  freq_stripe_width: int = 8
  short_clip_repeat: str = "waveform"
  long_clip_window_frames: int = WINDOW_FRAMES
  long_clip_hop_frames: int = 500

  @property
  def freq_ratio(self) -> int:
    return self.spec_size // self.mel_bins

  @property
  def target_frames(self) -> int:
    return self.spec_size * self.freq_ratio

  @property
  def patch_grid(self) -> tuple:
    padding = [(self.patch_size - stride) // 2 for stride in self.patch_stride]
    return tuple((self.spec_size + 2 * pad - self.patch_size) // stride + 1
                 for pad, stride in zip(padding, self.patch_stride))

  @nn.compact
  def __call__(self, features: jax.Array, *, train: bool = False) -> dict:
    x = layers.BatchNorm(name="bn0")(features, use_running_average=not train)
    self.sow("intermediates", "bn0_out", x)
    if train and self.spec_augment:
      time_key, freq_key = jax.random.split(self.make_rng("dropout"))
      x = drop_stripes(time_key, x, 1, self.time_stripes, self.time_stripe_width)
      x = drop_stripes(freq_key, x, 2, self.freq_stripes, self.freq_stripe_width)

    frames = x.shape[1]
    if frames <= self.target_frames:
      return self._classify(self._to_image(x), train)
    if train:
      crops = random_crops(self.make_rng("dropout"), x, self.target_frames)
      return self._classify(self._to_image(crops), train)
    return self._classify_long(x)

  def _to_image(self, x: jax.Array) -> jax.Array:
    """``[batch, frames <= 1024, mel]`` -> ``[batch, spec_size, spec_size]``."""
    if self.short_clip_repeat == "spectrogram":
      x = jnp.tile(x, (1, self.target_frames // x.shape[1], 1))
    target_mels = self.spec_size // self.freq_ratio
    precision = jax.lax.Precision.HIGHEST  # a resize, not a learned layer: keep float32 exact
    if x.shape[1] < self.target_frames:
      resize = bicubic_resize_matrix(x.shape[1], self.target_frames)
      x = jnp.einsum("ot,btm->bom", resize, x, precision=precision)
    if x.shape[2] < target_mels:
      resize = bicubic_resize_matrix(x.shape[2], target_mels)
      x = jnp.einsum("om,btm->bto", resize, x, precision=precision)
    batch, _, mels = x.shape
    x = x.reshape(batch, self.freq_ratio, self.spec_size, mels).transpose(0, 1, 3, 2)
    return x.reshape(batch, self.freq_ratio * mels, self.spec_size)

  def _classify(self, image: jax.Array, train: bool) -> dict:
    self.sow("intermediates", "image", image)
    tokens, grid = self._transformer(image, train)
    return self._head(tokens, grid)

  def _transformer(self, image: jax.Array, train: bool):
    """``[batch, 256, 256]`` -> final normalised tokens ``[batch, rows * cols, C]`` and ``(rows, cols)``."""
    # Token rows are the image's frequency-chunk rows, columns its time columns.
    x, (rows, cols) = swin.PatchEmbed(self.embed_dim, self.patch_size, self.patch_stride,
                                      self.patch_norm, name="patch_embed")(image)
    self.sow("intermediates", "patch_embed_out", x)
    x = nn.Dropout(self.drop_rate, deterministic=not train)(x)

    drop_path = np.linspace(0.0, self.drop_path_rate, sum(self.depths)).tolist()
    for index, depth in enumerate(self.depths):
      last = index == len(self.depths) - 1
      first_block = sum(self.depths[:index])
      x = swin.SwinStage(
          resolution=(rows, cols), depth=depth, num_heads=self.num_heads[index],
          window_size=self.window_size, mlp_ratio=self.mlp_ratio, qkv_bias=self.qkv_bias,
          dropout=self.drop_rate, attention_dropout=self.attn_drop_rate,
          drop_path=tuple(drop_path[first_block:first_block + depth]), downsample=not last,
          name=f"layers_{index}")(x, train=train)
      self.sow("intermediates", f"stage{index}_out", x)
      if not last:
        rows, cols = rows // 2, cols // 2
    return swin.layer_norm("norm")(x), (rows, cols)

  def _head(self, tokens: jax.Array, grid: tuple) -> dict:
    """Final tokens -> outputs. The token grid's rows are ``freq_ratio`` time chunks of
    ``rows / freq_ratio`` frequency rows each; unfolding them restores one time axis."""
    batch, _, channels = tokens.shape
    rows, cols = grid
    band_rows = rows // self.freq_ratio
    x = tokens.reshape(batch, self.freq_ratio, band_rows, cols, channels)
    x = x.transpose(0, 2, 1, 3, 4).reshape(batch, band_rows, self.freq_ratio * cols, channels)
    latent = jnp.mean(x, axis=(1, 2))
    repeat = 8 * self.patch_stride[1]  # upstream's fixed upsampling of the steps to frames
    if self.enable_tscam:
      class_map = nn.Conv(self.num_classes, (band_rows, 3), padding=((0, 0), (1, 1)),
                          kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                          name="tscam_conv")(x)[:, 0]  # [batch, steps, classes]
      logits = jnp.mean(class_map, axis=1)
      clipwise = logits if self.loss_type == "clip_ce" else jax.nn.sigmoid(logits)
    else:
      head = nn.Dense(self.num_classes, kernel_init=swin.dense_init, name="head")
      class_map = head(jnp.sum(x, axis=1))
      logits = head(latent)
      clipwise = jax.nn.sigmoid(logits)
    return {"logits": logits, "clipwise_output": clipwise,
            "framewise_output": jnp.repeat(jax.nn.sigmoid(class_map), repeat, axis=1),
            "latent_output": latent}

  def _classify_long(self, x: jax.Array) -> dict:
    """Eval on ``frames > 1024``: 10-s windows, one batch through the model, scores averaged."""
    batch, frames, mels = x.shape
    window = self.long_clip_window_frames
    starts = long_clip_windows(frames, window, self.long_clip_hop_frames)
    frame_index = starts[:, None] + np.arange(window)  # [windows, window]
    windows = x[:, frame_index].reshape(batch * len(starts), window, mels)
    outputs = self._classify(self._to_image(windows), train=False)
    outputs = jax.tree.map(lambda y: y.reshape((batch, len(starts)) + y.shape[1:]), outputs)

    if self.loss_type == "clip_ce":
      scores = jnp.mean(jax.nn.softmax(outputs["logits"], axis=-1), axis=1)
      logits = jnp.log(scores)  # softmax(log p) = p
    else:
      scores = jnp.mean(jax.nn.sigmoid(outputs["logits"]), axis=1)
      scores = jnp.clip(scores, 1e-7, 1 - 1e-7)
      logits = jnp.log(scores) - jnp.log1p(-scores)  # sigmoid(logit p) = p
    return {"logits": logits,
            "clipwise_output": jnp.mean(outputs["clipwise_output"], axis=1),
            "framewise_output": self._framewise_on_clip(outputs["framewise_output"], frame_index,
                                                        frames),
            "latent_output": jnp.mean(outputs["latent_output"], axis=1)}

  def _framewise_on_clip(self, framewise: jax.Array, frame_index: np.ndarray, frames: int):
    """Per-window framewise outputs ``[batch, windows, 1024, classes]`` averaged onto the clip's
    ``frames``: window frame j reads the stretched step nearest to it."""
    window = frame_index.shape[1]
    stretched = np.rint(np.arange(window) * (framewise.shape[2] - 1) / (window - 1)).astype(int)
    values = framewise[:, :, stretched]  # [batch, windows, window, classes]
    batch, classes = framewise.shape[0], framewise.shape[-1]
    total = jnp.zeros((batch, frames, classes), framewise.dtype)
    total = total.at[:, frame_index.reshape(-1)].add(values.reshape(batch, -1, classes))
    counts = np.bincount(frame_index.reshape(-1), minlength=frames)
    return total / counts[None, :, None]


def _as_int_tuple(config: dict, key: str, length=None) -> tuple:
  value = config[key]
  if isinstance(value, int) and not isinstance(value, bool):
    value = [value] * (length or 1)
  try:
    result = tuple(int(item) for item in value)
  except (TypeError, ValueError):
    raise ConfigError(f"htsat: {key} must be a list of integers, got {value!r}") from None
  if length is not None and len(result) != length:
    raise ConfigError(f"htsat: {key} must have {length} entries, got {value!r}")
  return result


def resolve_loss_type(config: dict) -> str:
  loss_type = config["loss_type"]
  if loss_type is None:
    return "clip_bce" if config["num_classes"] == AUDIOSET_CLASSES else "clip_ce"
  if loss_type not in LOSS_ACTIVATIONS:
    raise ConfigError(f"htsat: loss_type must be one of {sorted(LOSS_ACTIVATIONS)} or None, "
                      f"got {loss_type!r}")
  return loss_type


def build_network(config: dict) -> HTSAT:
  """The Flax module for a full config (``DEFAULT_CONFIG`` keys), with its geometry checked."""
  depths = _as_int_tuple(config, "depths")
  num_heads = _as_int_tuple(config, "num_heads", len(depths))
  patch_stride = _as_int_tuple(config, "patch_stride", 2)
  if config["short_clip_repeat"] not in SHORT_CLIP_MODES:
    raise ConfigError(f"htsat: short_clip_repeat must be one of {SHORT_CLIP_MODES}, got "
                      f"{config['short_clip_repeat']!r}")
  spec_size, mel_bins = config["spec_size"], config["mel_bins"]
  if not 0 < mel_bins <= spec_size:
    raise ConfigError(f"htsat: mel_bins ({mel_bins}) must lie in 1..spec_size ({spec_size})")
  hop_frames = int(round(config["long_clip_hop_seconds"] * SAMPLE_RATE / HOP))
  if hop_frames < 1:
    raise ConfigError(f"htsat: long_clip_hop_seconds must be positive, got "
                      f"{config['long_clip_hop_seconds']!r}")
  network = HTSAT(
      num_classes=config["num_classes"], loss_type=resolve_loss_type(config),
      embed_dim=config["embed_dim"], depths=depths, num_heads=num_heads,
      window_size=config["window_size"], patch_size=config["patch_size"],
      patch_stride=patch_stride, spec_size=spec_size, mel_bins=mel_bins,
      mlp_ratio=float(config["mlp_ratio"]), qkv_bias=bool(config["qkv_bias"]),
      patch_norm=bool(config["patch_norm"]), enable_tscam=bool(config["enable_tscam"]),
      drop_rate=float(config["drop_rate"]), attn_drop_rate=float(config["attn_drop_rate"]),
      drop_path_rate=float(config["drop_path_rate"]), spec_augment=bool(config["spec_augment"]),
      time_stripes=config["time_stripes"], time_stripe_width=config["time_stripe_width"],
      freq_stripes=config["freq_stripes"], freq_stripe_width=config["freq_stripe_width"],
      short_clip_repeat=config["short_clip_repeat"], long_clip_hop_frames=hop_frames)
  _check_geometry(network)
  return network


def _check_geometry(network: HTSAT) -> None:
  """Raises ConfigError when the stages' grids cannot be windowed, merged or folded."""
  rows, cols = network.patch_grid
  for index, heads in enumerate(network.num_heads):
    channels = network.embed_dim * 2 ** index
    window, _ = swin.effective_window((rows, cols), network.window_size, network.window_size // 2)
    last = index == len(network.depths) - 1
    if channels % heads or rows % window or cols % window or (not last and (rows % 2 or cols % 2)):
      raise ConfigError(
          f"htsat: stage {index} has a {rows}x{cols} grid of {channels} channels, which "
          f"{heads} heads and window {network.window_size} cannot split (check embed_dim, "
          "num_heads, spec_size, patch_size, patch_stride, window_size)")
    if not last:
      rows, cols = rows // 2, cols // 2
  if rows % network.freq_ratio:
    raise ConfigError(f"htsat: the final grid has {rows} rows, not a multiple of the "
                      f"frequency ratio spec_size // mel_bins = {network.freq_ratio}")


def htsat_frontend(waveform: jax.Array, *, mel_bins: int, repeat_waveform: bool) -> jax.Array:
  """``[batch, samples]`` at 32 kHz -> log-mel ``[batch, frames, mel_bins]`` (dB).

  With ``repeat_waveform`` a clip shorter than 10 s is first repeated to exactly 10 s.
  """
  if repeat_waveform:
    waveform = repeat_to_length(waveform, WINDOW_SAMPLES)
  return frontends.torchlibrosa_logmel(waveform, sample_rate=SAMPLE_RATE, hop=HOP,
                                       n_mels=mel_bins, fmin=BAND[0], fmax=BAND[1])


def build_spec(config: dict) -> ModelSpec:
  network = build_network(config)
  clip_seconds = config["clip_seconds"]
  if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, (int, float)) or not (
      clip_seconds > 0):
    raise ConfigError(f"htsat: clip_seconds must be a positive number, got {clip_seconds!r}")
  default = labels.audioset_labels() if config["num_classes"] == AUDIOSET_CLASSES else None
  return ModelSpec(
      arch="htsat",
      config=config,
      sample_rate=SAMPLE_RATE,
      clip_seconds=float(clip_seconds),
      band=BAND,
      frontend=functools.partial(htsat_frontend, mel_bins=config["mel_bins"],
                                 repeat_waveform=config["short_clip_repeat"] == "waveform"),
      network=network,
      output_activation=LOSS_ACTIVATIONS[network.loss_type],
      labels=head_labels(config, "htsat", default),
      # The frontend repeats a short clip to the 10-s window, as upstream's ESC-50 pipeline does.
      pad_short_clips=False)
