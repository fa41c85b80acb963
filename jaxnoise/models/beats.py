"""BEATs (microsoft/unilm ``beats/``, "Audio Pre-Training with Acoustic Tokenizers"), in Flax.

Waveform at 16 kHz -> Kaldi fbank (128 mels, 25 ms / 10 ms, normalised; ``frontends.beats_fbank``)
-> 16 x 16 patches of the (time, mel) image, flattened time-major (token ``8 t + f`` for 128 mels)
-> LayerNorm -> projection to the encoder width -> convolutional positional embedding (a grouped
Conv1d over the token axis, added back after GELU) -> LayerNorm -> post-LN transformer layers with
DeepNorm residual scaling and a gated relative position bias -> the fine-tuned predictor, a Linear
on every token whose logits are averaged over the tokens.

Outputs (a dict): 'logits' [batch, classes] (the mean over the unpadded tokens; upstream returns
its sigmoid), 'token_logits' [batch, tokens, classes] (every token, padded ones included) and
'encoder_out' [batch, tokens, encoder_embed_dim].

Relative positions. Distances are differences of token indices on the flattened sequence, so 1 is
the neighbouring mel patch and 8 the same mel patch one time step on. They fall into
``num_buckets`` log-spaced buckets (``relative_position_buckets``); layer 0's table of one bias per
bucket and head serves every layer, and each layer scales it per query and head by a gate computed
from its unscaled queries.

Padding. ``padding_mask`` [batch, frames] (True on padded frames, from ``frame_padding_mask``)
marks the padded part of files of different lengths batched together (``apply_padded``). As upstream, masked tokens
are zeroed before the positional convolution, never attended to, and left out of the token mean.
Upstream's masks come from plain reshapes (``reduce_padding_mask``), which can mark up to a time
patch of real audio as padded; that is reproduced, not corrected. Where every token of a clip is
masked, upstream divides by zero; here the clip's logits are 0.

Config. Keys are upstream's ``BEATsConfig`` names (read from a checkpoint's 'cfg' by the converter),
with ``num_classes`` for ``predictor_class``; the defaults are the released AS2M fine-tuned model.
Training-only settings act as upstream: dropouts, layer drop (each layer skipped with probability
``encoder_layerdrop``) and layer-wise gradient decay (gradients shrink by the ratio at the input of
every layer, so layer i of L gets ratio^(L - i)).
"""
import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxnoise.audio import frontends
from jaxnoise.data import labels
from jaxnoise.errors import AudioError, ConfigError
from jaxnoise.models.cnn10 import head_labels
from jaxnoise.models.spec import ModelSpec

SAMPLE_RATE = frontends.BEATS_SAMPLE_RATE
# The Kaldi mel bank spans 20 Hz to Nyquist: the model sees nothing outside it.
BAND = (frontends.KALDI_FMIN, SAMPLE_RATE / 2)
LAYER_NORM_EPSILON = 1e-5
# The relative-bias gate's Linear has 8 outputs, summed in two groups of 4 before each sigmoid.
GATE_FEATURES = 8
AUDIOSET_CLASSES = labels.AUDIOSET_NUM_CLASSES
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")

DEFAULT_CONFIG = {
    # BEATs iter3+ fine-tuned on AudioSet-2M (527 classes); ESC-50 fine-tuning sets num_classes.
    "num_classes": AUDIOSET_CLASSES,
    # Class names in output order; None: AudioSet names for a 527-class head, class_i otherwise.
    "labels": None,
    # 'sigmoid' or 'softmax'; None: sigmoid for a 527-class AudioSet head (upstream's), softmax for
    # any other head (the ESC heads jaxnoise trains with softmax cross-entropy).
    "output_activation": None,
    "input_patch_size": 16,
    "embed_dim": 512,
    "conv_bias": False,
    "encoder_layers": 12,
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "deep_norm": True,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "relative_position_embedding": True,
    "num_buckets": 320,
    "max_distance": 800,
    "gru_rel_pos": True,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "dropout_input": 0.0,
    "encoder_layerdrop": 0.05,
    "predictor_dropout": 0.0,
    "layer_wise_gradient_decay_ratio": 0.6,
    # The study's clip length; any length from 2800 samples (one time patch) on is accepted.
    "clip_seconds": 5.0,
}


def layer_norm(name: str) -> nn.LayerNorm:
  """PyTorch's LayerNorm epsilon (1e-5; Flax's default is 1e-6)."""
  return nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, name=name)


def gelu(x: jax.Array) -> jax.Array:
  """Exact (erf) GELU, as torch's default; Flax's default is the tanh approximation."""
  return nn.gelu(x, approximate=False)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def scale_gradient(x: jax.Array, factor: float) -> jax.Array:
  """The identity whose gradient is multiplied by ``factor`` (upstream's GradMultiply)."""
  return x


def _scale_gradient_forward(x, factor):
  del factor
  return x, None


def _scale_gradient_backward(factor, _, gradient):
  return (gradient * factor,)


scale_gradient.defvjp(_scale_gradient_forward, _scale_gradient_backward)


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
  """Bucket of each (query i, key j) offset ``j - i``: ``[length, length]`` int32.

  Half the buckets hold positive offsets (keys after the query), half the rest. Within a half,
  offsets below a quarter of ``num_buckets`` get one bucket each; larger ones share log-spaced
  buckets up to ``max_distance``, beyond which they saturate.
  """
  half = num_buckets // 2
  exact = half // 2
  offset = np.arange(length)[None, :] - np.arange(length)[:, None]
  distance = np.abs(offset)
  # float32 log and truncation, as upstream (the same buckets as exact arithmetic up to 20000);
  # distances below ``exact`` take the other branch, so the clamp to 1 only avoids log(0).
  ratio = (np.log(np.maximum(distance, 1).astype(np.float32) / np.float32(exact))
           / np.float32(math.log(max_distance / exact)))
  far = exact + (ratio * np.float32(half - exact)).astype(np.int64)
  far = np.minimum(far, half - 1)
  bucket = np.where(distance < exact, distance, far) + np.where(offset > 0, half, 0)
  return bucket.astype(np.int32)


def reduce_padding_mask(mask: jax.Array, length: int) -> jax.Array:
  """Upstream's ``forward_padding_mask``: ``[batch, n]`` -> ``[batch, length]``.

  The last ``n mod length`` entries are dropped, the rest split into ``length`` equal runs, and a
  run is padded when all its entries are. Used for samples -> frames and frames -> tokens.
  """
  batch, size = mask.shape
  if size < length:
    raise AudioError(f"a padding mask of {size} entries cannot cover {length} positions")
  usable = size - size % length
  return jnp.all(mask[:, :usable].reshape(batch, length, usable // length), axis=-1)


def frame_padding_mask(sample_mask: jax.Array) -> jax.Array:
  """Padded samples ``[batch, samples]`` (True = padding) -> padded fbank frames
  ``[batch, frames]``."""
  samples = sample_mask.shape[-1]
  frames = 1 + (samples - frontends.KALDI_FRAME_LENGTH) // frontends.KALDI_HOP
  return reduce_padding_mask(sample_mask, frames)


def lengths_padding_mask(lengths, samples: int) -> np.ndarray:
  """Sample mask ``[batch, samples]`` of files of ``lengths`` zero-padded to ``samples``."""
  return np.arange(samples)[None, :] >= np.asarray(lengths)[:, None]


def apply_padded(spec: ModelSpec, variables, waveforms: jax.Array, lengths) -> dict:
  """Eval outputs for files of different ``lengths`` zero-padded into ``waveforms [batch, samples]``,
  each file's padding masked as upstream's ``padding_mask`` does."""
  mask = frame_padding_mask(lengths_padding_mask(lengths, waveforms.shape[-1]))
  return spec.network.apply(variables, spec.features(waveforms), train=False, padding_mask=mask)


class SelfAttention(nn.Module):
  """Multi-head self-attention with an optional gated relative position bias.

  ``x [batch, tokens, dim]``, ``bias [heads, tokens, tokens]`` (ungated, or None),
  ``key_padding [batch, tokens]`` (True = masked, or None) -> ``[batch, tokens, dim]``.
  """
  num_heads: int
  gated_bias: bool
  attention_dropout: float

  @nn.compact
  def __call__(self, x, bias, key_padding, *, train: bool):
    batch, tokens, dim = x.shape
    head_dim = dim // self.num_heads
    split = lambda y: y.reshape(batch, tokens, self.num_heads, head_dim)
    query = split(nn.Dense(dim, name="q_proj")(x))
    key = split(nn.Dense(dim, name="k_proj")(x))
    value = split(nn.Dense(dim, name="v_proj")(x))
    logits = jnp.einsum("bqhd,bkhd->bhqk", query * head_dim ** -0.5, key)
    if bias is not None:
      if self.gated_bias:
        # One gate per query row and head, from the unscaled query; the same Linear for all heads.
        gate_in = nn.Dense(GATE_FEATURES, name="grep_linear")(query)  # [batch, tokens, heads, 8]
        self.sow("intermediates", "grep_linear_out", jnp.transpose(gate_in, (0, 2, 1, 3)))
        gates = jax.nn.sigmoid(gate_in.reshape(batch, tokens, self.num_heads, 2, -1).sum(-1))
        grep_a = self.param("grep_a", nn.initializers.ones, (self.num_heads,), jnp.float32)
        gate = gates[..., 0] * (gates[..., 1] * grep_a - 1.0) + 2.0  # [batch, tokens, heads]
        logits = logits + jnp.transpose(gate, (0, 2, 1))[..., None] * bias
      else:
        logits = logits + bias
    if key_padding is not None:
      # The most negative float instead of upstream's -inf: a clip with every key masked gets
      # uniform weights rather than NaN.
      logits = jnp.where(key_padding[:, None, None, :], jnp.finfo(logits.dtype).min, logits)
    weights = jax.nn.softmax(logits, axis=-1)
    weights = nn.Dropout(self.attention_dropout)(weights, deterministic=not train)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, value).reshape(batch, tokens, dim)
    return nn.Dense(dim, name="out_proj")(out)


class EncoderLayer(nn.Module):
  """Post-LN transformer layer with DeepNorm: ``LN(alpha x + f(x))`` around attention and FFN."""
  num_heads: int
  ffn_dim: int
  residual_scale: float
  gated_bias: bool
  dropout: float
  attention_dropout: float
  activation_dropout: float

  @nn.compact
  def __call__(self, x, bias, key_padding, *, train: bool):
    attention = SelfAttention(self.num_heads, self.gated_bias, self.attention_dropout,
                              name="self_attn")(x, bias, key_padding, train=train)
    self.sow("intermediates", "attn_out", attention)
    attention = nn.Dropout(self.dropout)(attention, deterministic=not train)
    x = layer_norm("self_attn_layer_norm")(self.residual_scale * x + attention)
    self.sow("intermediates", "after_attn_ln", x)
    hidden = gelu(nn.Dense(self.ffn_dim, name="fc1")(x))
    hidden = nn.Dropout(self.activation_dropout)(hidden, deterministic=not train)
    hidden = nn.Dense(x.shape[-1], name="fc2")(hidden)
    hidden = nn.Dropout(self.dropout)(hidden, deterministic=not train)
    return layer_norm("final_layer_norm")(self.residual_scale * x + hidden)


@dataclasses.dataclass(frozen=True)
class EncoderSettings:
  """The transformer encoder's architecture and training-only settings (BEATsConfig's names in
  ``build_network``)."""
  num_layers: int
  num_heads: int
  ffn_dim: int
  deep_norm: bool
  conv_pos: int
  conv_pos_groups: int
  relative_position_embedding: bool
  num_buckets: int
  max_distance: int
  gated_bias: bool
  dropout: float = 0.0
  attention_dropout: float = 0.0
  activation_dropout: float = 0.0
  layerdrop: float = 0.0
  gradient_decay: float = 1.0


class Encoder(nn.Module):
  """Positional convolution, LayerNorm and the layers: ``[batch, tokens, dim]`` -> same shape."""
  settings: EncoderSettings

  @nn.compact
  def __call__(self, x, key_padding, *, train: bool):
    settings = self.settings
    batch, tokens, dim = x.shape
    # Upstream's weight-normalised conv; the converter folds its gain and direction into one kernel.
    positional = nn.Conv(dim, (settings.conv_pos,), padding=[(settings.conv_pos // 2,) * 2],
                         feature_group_count=settings.conv_pos_groups, name="pos_conv")(x)
    positional = gelu(positional[:, :tokens])  # an even kernel gives one extra position at the end
    self.sow("intermediates", "pos_conv_out", positional)
    x = layer_norm("layer_norm")(x + positional)
    self.sow("intermediates", "encoder_ln_out", x)
    x = nn.Dropout(settings.dropout)(x, deterministic=not train)

    bias = None
    if settings.relative_position_embedding:
      buckets = relative_position_buckets(tokens, settings.num_buckets, settings.max_distance)
      table = nn.Embed(settings.num_buckets, settings.num_heads, name="relative_attention_bias")
      bias = jnp.transpose(table(buckets), (2, 0, 1))  # [heads, tokens, tokens]
      self.sow("intermediates", "rel_pos_bias", bias)
    residual_scale = (2.0 * settings.num_layers) ** 0.25 if settings.deep_norm else 1.0
    for index in range(settings.num_layers):
      if train and settings.gradient_decay != 1.0:
        x = scale_gradient(x, settings.gradient_decay)
      layer = EncoderLayer(settings.num_heads, settings.ffn_dim, residual_scale,
                           settings.gated_bias, settings.dropout, settings.attention_dropout,
                           settings.activation_dropout, name=f"layers_{index}")
      out = layer(x, bias, key_padding, train=train)
      if train and settings.layerdrop > 0:
        keep = jax.random.uniform(self.make_rng("dropout")) >= settings.layerdrop
        out = jnp.where(keep, out, x)
      x = out
      self.sow("intermediates", "layer_outputs", x)
    return x


class BEATs(nn.Module):
  """The fine-tuned BEATs model: ``fbank [batch, frames, mels]`` -> output dict (module docstring).

  ``padding_mask`` [batch, frames] marks padded frames (True), or None for none.
  """
  num_classes: int
  patch_size: int
  embed_dim: int
  conv_bias: bool
  encoder_dim: int
  encoder: EncoderSettings
  dropout_input: float = 0.0
  predictor_dropout: float = 0.0

  @nn.compact
  def __call__(self, features: jax.Array, *, train: bool = False, padding_mask=None):
    batch, frames, mels = features.shape
    patch = self.patch_size
    if frames < patch or mels < patch:
      raise AudioError(f"BEATs needs at least {patch} frames and {patch} mel bins (one patch; "
                       f"2800 samples at 16 kHz), got features of shape {features.shape}")
    x = nn.Conv(self.embed_dim, (patch, patch), strides=(patch, patch), padding="VALID",
                use_bias=self.conv_bias, name="patch_embedding")(features[..., None])
    self.sow("intermediates", "patch_conv_out", x)  # [batch, time patches, mel patches, embed]
    x = x.reshape(batch, -1, self.embed_dim)  # time-major: token = t * mel_patches + f
    x = layer_norm("layer_norm")(x)
    self.sow("intermediates", "patch_embed_out", x)
    if self.embed_dim != self.encoder_dim:
      x = nn.Dense(self.encoder_dim, name="post_extract_proj")(x)
    self.sow("intermediates", "encoder_input", x)
    x = nn.Dropout(self.dropout_input)(x, deterministic=not train)

    token_padding = None
    if padding_mask is not None:
      token_padding = reduce_padding_mask(jnp.asarray(padding_mask, bool), x.shape[1])
      self.sow("intermediates", "token_padding_mask", token_padding)
      x = jnp.where(token_padding[..., None], 0.0, x)
    x = Encoder(self.encoder, name="encoder")(x, token_padding, train=train)

    hidden = nn.Dropout(self.predictor_dropout)(x, deterministic=not train)
    token_logits = nn.Dense(self.num_classes, name="predictor")(hidden)
    if token_padding is None:
      logits = jnp.mean(token_logits, axis=1)
    else:
      kept = (~token_padding)[..., None]
      logits = (jnp.sum(jnp.where(kept, token_logits, 0.0), axis=1)
                / jnp.maximum(jnp.sum(kept, axis=1), 1))
    return {"logits": logits, "token_logits": token_logits, "encoder_out": x}


def _check_config(config: dict) -> None:
  integers = ("input_patch_size", "embed_dim", "encoder_layers", "encoder_embed_dim",
              "encoder_ffn_embed_dim", "encoder_attention_heads", "conv_pos", "conv_pos_groups",
              "num_buckets", "max_distance")
  for key in integers:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"beats: {key} must be a positive integer, got {value!r}")
  if config["encoder_embed_dim"] % config["encoder_attention_heads"]:
    raise ConfigError(f"beats: encoder_embed_dim ({config['encoder_embed_dim']}) must be a "
                      f"multiple of encoder_attention_heads ({config['encoder_attention_heads']})")
  if config["encoder_embed_dim"] % config["conv_pos_groups"]:
    raise ConfigError(f"beats: encoder_embed_dim ({config['encoder_embed_dim']}) must be a "
                      f"multiple of conv_pos_groups ({config['conv_pos_groups']})")
  if config["num_buckets"] < 4 or config["num_buckets"] % 4:
    raise ConfigError(f"beats: num_buckets must be a positive multiple of 4 (half per direction, "
                      f"half of that exact), got {config['num_buckets']!r}")
  if frontends.BEATS_MELS < config["input_patch_size"]:
    raise ConfigError(f"beats: input_patch_size {config['input_patch_size']} exceeds the "
                      f"{frontends.BEATS_MELS} mel bins")
  activation = config["output_activation"]
  if activation is not None and activation not in OUTPUT_ACTIVATIONS:
    raise ConfigError(f"beats: output_activation must be one of {OUTPUT_ACTIVATIONS} or None, "
                      f"got {activation!r}")
  clip_seconds = config["clip_seconds"]
  if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, (int, float)) or not (
      clip_seconds > 0):
    raise ConfigError(f"beats: clip_seconds must be a positive number, got {clip_seconds!r}")


def build_network(config: dict) -> BEATs:
  """The Flax module for a full config (``DEFAULT_CONFIG`` keys), checked."""
  _check_config(config)
  encoder = EncoderSettings(
      num_layers=config["encoder_layers"], num_heads=config["encoder_attention_heads"],
      ffn_dim=config["encoder_ffn_embed_dim"], deep_norm=bool(config["deep_norm"]),
      conv_pos=config["conv_pos"], conv_pos_groups=config["conv_pos_groups"],
      relative_position_embedding=bool(config["relative_position_embedding"]),
      num_buckets=config["num_buckets"], max_distance=config["max_distance"],
      gated_bias=bool(config["gru_rel_pos"]), dropout=float(config["dropout"]),
      attention_dropout=float(config["attention_dropout"]),
      activation_dropout=float(config["activation_dropout"]),
      layerdrop=float(config["encoder_layerdrop"]),
      gradient_decay=float(config["layer_wise_gradient_decay_ratio"]))
  return BEATs(
      num_classes=config["num_classes"], patch_size=config["input_patch_size"],
      embed_dim=config["embed_dim"], conv_bias=bool(config["conv_bias"]),
      encoder_dim=config["encoder_embed_dim"], encoder=encoder,
      dropout_input=float(config["dropout_input"]),
      predictor_dropout=float(config["predictor_dropout"]))


def output_activation(config: dict) -> str:
  if config["output_activation"] is not None:
    return config["output_activation"]
  return "sigmoid" if config["num_classes"] == AUDIOSET_CLASSES else "softmax"


def build_spec(config: dict) -> ModelSpec:
  network = build_network(config)
  default = labels.audioset_labels() if config["num_classes"] == AUDIOSET_CLASSES else None
  return ModelSpec(
      arch="beats",
      config=config,
      sample_rate=SAMPLE_RATE,
      clip_seconds=float(config["clip_seconds"]),
      band=BAND,
      frontend=frontends.beats_fbank,
      network=network,
      output_activation=output_activation(config),
      labels=head_labels(config, "beats", default))
